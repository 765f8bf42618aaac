"""moto's attribute sizes, the same numbers without rebuilding the values they measure (a patch applied in moto's
process with `moto_fixes`).

moto sizes an item for its 400 KB limit (each attribute set by an update sums the whole item again), for a query's
1 MB pages and a BatchGetItem's 16 MB, and the local capacity meter sizes each written item twice. `DynamoType.size`
measures a map's member by building a new `DynamoType` of it first, which converts the member's own maps and lists
again, level by level: a contact's outbox (a map of maps) was rebuilt whole for every size, ~10% of the moto
server's CPU on the push bench's fan-out (profiled 2026-12-05). Here `size_of` walks the value once and gives the
number moto's own method gives (a Hypothesis test compares them over random attribute values). Imported by
`moto_fixes` when it patches, so that importing the local stack does not import moto.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.utilities import bytesize

_MARK = "_account_sync_size"
_SETS = ("SS", "NS", "BS")


def _scalar_size(kind: str, value: Any) -> int:
    """moto's size of a value that is neither a set, a list nor a map (its last three branches)."""
    if kind == "N":
        return len(str(value))
    if isinstance(value, bool):
        return 1
    return bytesize(value)


def size_of(attribute: Any) -> int:
    """`attribute.size()` as moto computes it, for a `DynamoType`."""
    kind, value = attribute.type, attribute.value
    if kind in _SETS:
        return sum(_scalar_size(kind[0], member) for member in value)  # moto: DynamoType({"S": member}).size()
    if kind == "L":
        return sum(size_of(member) if type(member) is DynamoType else member.size() for member in value)
    if kind == "M":
        return sum(bytesize(name) + _converted_size(member) for name, member in value.items())
    return _scalar_size(kind, value)


def _converted_size(value: Any) -> int:
    """`DynamoType(value).size()`: moto's size of a map's member, which it converts first. Converting a `DynamoType`
    copies it with its lists' and maps' members converted too, so the copy's size is its own with each member's
    size taken that way; anything else (a plain AttributeValue dict) goes through moto's conversion."""
    if type(value) is not DynamoType:
        return DynamoType(value).size()  # type: ignore[no-any-return]
    if value.type == "L":
        return sum(_converted_size(member) for member in value.value)
    if value.type == "M":
        return sum(bytesize(name) + _converted_size(member) for name, member in value.value.items())
    return size_of(value)


def apply_size_speedup() -> None:
    """`DynamoType.size` is `size_of` (idempotent; moto's own stays reachable as `__wrapped__`)."""
    original = DynamoType.size
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def size(self: Any) -> int:
        return size_of(self)

    setattr(size, _MARK, True)
    DynamoType.size = size  # type: ignore[method-assign]
