"""The in-process functions' botocore parses DynamoDB's wire-form AttributeValues as they are (the local runtime
applies it; on AWS nothing here runs).

Profiled in the functions' process on the push bench's fan-out (py-spy, 2026-12-05): a fifth of the fan-out's CPU
was botocore's response parser walking every attribute of every item of a BatchGetItem or a Query page through the
AttributeValue shape, member by member, to give back the same dicts. A map of AttributeValues that are all in their
wire form (`moto_fixes.is_wire_attribute_value`: one type key, strings, booleans, lists and maps of such; no binary,
which the parser decodes) is taken as it is; anything else takes botocore's path. botocore's JSON parser has no
handler of its own for strings, numbers and booleans, so its walk returns such a map unchanged: a Hypothesis test
compares the two (`test_local_botocore_wire.py`).
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_account_sync_wire"
_DYNAMODB_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


@functools.lru_cache(maxsize=64)
def _is_dynamodb_attribute_value(shape: Any) -> bool:
    """DynamoDB's (and DynamoDB Streams') AttributeValue union, by its members: another service's shape of that
    name is parsed by botocore as it is."""
    return getattr(shape, "type_name", None) == "structure" and set(shape.members) == _DYNAMODB_MEMBERS


def apply_botocore_wire_speedup() -> None:
    """Patch botocore's JSON response parser (idempotent)."""
    from botocore.parsers import BaseJSONParser

    from local_stack.moto_fixes import is_wire_attribute_value

    handle_map = BaseJSONParser._handle_map
    if getattr(handle_map, _MARK, False):
        return

    @functools.wraps(handle_map)
    def handle_wire_maps(self: Any, shape: Any, value: Any) -> Any:
        value_shape = shape.value
        if (
            getattr(value_shape, "name", None) == "AttributeValue"
            and type(value) is dict
            and _is_dynamodb_attribute_value(value_shape)
            and all(type(name) is str and is_wire_attribute_value(member) for name, member in value.items())
        ):
            return dict(value)
        return handle_map(self, shape, value)

    setattr(handle_wire_maps, _MARK, True)
    BaseJSONParser._handle_map = handle_wire_maps  # type: ignore[method-assign]
