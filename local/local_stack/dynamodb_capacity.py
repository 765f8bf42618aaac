"""DynamoDB capacity units of the requests the moto server answers, computed from the items as DynamoDB bills them.

moto's own `ConsumedCapacity` is a constant per request (1.0 per write, 0.5 per read, whatever the item's size, and
nothing for an index), so the benchmark cannot use it. Here moto's DynamoDB backend is wrapped, in the server's
process, and each request is charged (on-demand rules, cited in docs/decisions.md, the entry on the benchmark):

* a write (PutItem, UpdateItem, DeleteItem, each entry of a BatchWriteItem): ⌈larger of the item before and after /
  1 KB⌉ write units on the table, at least 1, also when its condition fails (the item as it stands is charged);
* and on each global secondary index whose entry the write changes: ⌈entry / 1 KB⌉ for an entry put or removed,
  ⌈larger entry / 1 KB⌉ for one updated in place, both when the index key changes (a delete and a put); a write that
  changes no projected attribute writes nothing to the index. An entry's size is its attributes' (the table's and
  the index's keys plus the projected attributes);
* a GetItem, and each key of a BatchGetItem: ⌈item / 4 KB⌉ read units, at least 1 (an absent item too), halved for
  an eventually consistent read;
* a Query: ⌈the items (or index entries) it reads, before any filter, / 4 KB⌉, at least 1, halved when eventually
  consistent (a query on a global secondary index always is). `Select=COUNT` reads as much as returning them.

Scans and transactions are not charged (no function issues them). Item sizes are moto's (`Item.size()`: the
attribute names' and values' UTF-8 bytes, a number as its decimal text), close to DynamoDB's own rules.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
_MARK = "_account_sync_capacity_meter"
_current = threading.local()


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def index_write_units(old: tuple[int, str] | None, new: tuple[int, str] | None) -> int:
    """Write units on one index for a table write that turns its entry `old` into `new` (size, fingerprint; None:
    no entry, the item lacking the index's key). The fingerprint holds the index's key first, then the entry."""
    if old is None and new is None:
        return 0
    if old is None or new is None:
        return write_units((old or new or (0, ""))[0])
    if old[1] == new[1]:
        return 0
    if old[1].split("\n", 1)[0] != new[1].split("\n", 1)[0]:
        return write_units(old[0]) + write_units(new[0])  # the entry moves: a delete and a put
    return write_units(max(old[0], new[0]))


@dataclass
class Consumed:
    """The units one request consumed: {target: [read, write]}, the target a table or `table/index`."""

    action: str
    payload: dict[str, Any]
    units: dict[str, list[float]] = field(default_factory=dict)

    def read(self, target: str, units: float) -> None:
        self.units.setdefault(target, [0.0, 0.0])[0] += units

    def write(self, target: str, units: float) -> None:
        self.units.setdefault(target, [0.0, 0.0])[1] += units

    def consistent(self, table: str) -> bool:
        if self.action == "BatchGetItem":
            return bool((self.payload.get("RequestItems") or {}).get(table, {}).get("ConsistentRead"))
        return bool(self.payload.get("ConsistentRead"))


@contextmanager
def metered(action: str, payload: dict[str, Any]) -> Iterator[Consumed]:
    """Charge what the backend does on this thread, until the block ends, to one request."""
    consumed = Consumed(action, payload)
    _current.consumed = consumed
    try:
        yield consumed
    finally:
        _current.consumed = None


def _consumed() -> Consumed | None:
    return getattr(_current, "consumed", None)


def install() -> None:
    """Wrap moto's DynamoDB backend (idempotent). Outside `metered`, the wrappers only pass the call on."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    if getattr(DynamoDBBackend, _MARK, False):
        return
    DynamoDBBackend.put_item = _charging_writes(DynamoDBBackend.put_item, _put_key)  # type: ignore[method-assign]
    DynamoDBBackend.update_item = _charging_writes(DynamoDBBackend.update_item, _given_key)  # type: ignore[method-assign]
    DynamoDBBackend.delete_item = _charging_writes(DynamoDBBackend.delete_item, _given_key)  # type: ignore[method-assign]
    DynamoDBBackend.get_item = _charging_reads(DynamoDBBackend.get_item)  # type: ignore[method-assign]
    Table.query = _charging_queries(Table.query)  # type: ignore[method-assign]
    setattr(DynamoDBBackend, _MARK, True)


def _put_key(table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    item = args[0] if args else kwargs["item_attrs"]
    return {name: item[name] for name in (table.hash_key_attr, table.range_key_attr) if name and name in item}


def _given_key(table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return dict(args[0] if args else kwargs["key"])


def _image(table: Any, key: dict[str, Any]) -> tuple[int, dict[str, tuple[int, str] | None]] | None:
    """The stored item's size and its entry in each global secondary index (None: no item)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    try:
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        item = table.get_item(hash_key, range_key)
    except Exception:  # a malformed key: moto answers the request with its own error
        return None
    if item is None:
        return None
    return item.size(), {index.name: _entry(index, item) for index in table.global_indexes or []}


def _entry(index: Any, item: Any) -> tuple[int, str] | None:
    keys = [k["AttributeName"] for k in index.schema]
    if any(name not in item.attrs for name in keys):
        return None  # sparse: not in the index
    strings = _projected_strings(index, item)
    if strings is not None:
        attributes: dict[str, Any] = {name: {"S": value} for name, value in strings.items()}
        size = sum(len(name.encode()) + len(value.encode()) for name, value in strings.items())
    else:
        entry = index.project(item)
        attributes, size = entry.to_json()["Attributes"], entry.size()
    index_key = json.dumps([attributes.get(name) for name in keys], sort_keys=True)
    return size, index_key + "\n" + json.dumps(attributes, sort_keys=True)


def _projected_strings(index: Any, item: Any) -> dict[str, str] | None:
    """The entry of a KEYS_ONLY or INCLUDE index whose projected attributes are all strings, as {name: value},
    without building it: what `index.project(item)` holds then (a string's wire form is its value, its size the
    UTF-8 bytes of name and value), at a fraction of the cost (each write is metered twice). None otherwise."""
    projection = index.projection or {}
    kind = projection.get("ProjectionType")
    if kind not in ("KEYS_ONLY", "INCLUDE"):
        return None
    names = [*index.table_key_attrs, *(k["AttributeName"] for k in index.schema)]
    if kind == "INCLUDE":
        names += projection.get("NonKeyAttributes", [])
    strings = {}
    for name in names:
        value = item.attrs.get(name)
        if value is None:
            continue
        if value.type != "S" or type(value.value) is not str:
            return None
        strings[name] = value.value
    return strings


def _charging_writes(original: Any, key_of: Any) -> Any:
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    @functools.wraps(original)
    def charged(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        consumed = _consumed()
        if consumed is None:
            return original(self, table_name, *args, **kwargs)
        table = self.get_table(table_name)
        key = key_of(table, args, kwargs)
        before = _image(table, key)
        try:
            result = original(self, table_name, *args, **kwargs)
        except ConditionalCheckFailed:
            consumed.write(table.name, write_units(before[0] if before else 0))
            raise
        after = _image(table, key)
        consumed.write(table.name, write_units(max(before[0] if before else 0, after[0] if after else 0)))
        for index in table.global_indexes or []:
            units = index_write_units(
                before[1][index.name] if before else None, after[1][index.name] if after else None
            )
            if units:
                consumed.write(f"{table.name}/{index.name}", units)
        return result

    return charged


def _charging_reads(original: Any) -> Any:
    @functools.wraps(original)
    def charged(self: Any, table_name: str, keys: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        consumed = _consumed()
        result = original(self, table_name, keys, *args, **kwargs)
        if consumed is not None and consumed.action in ("GetItem", "BatchGetItem"):
            table = self.get_table(table_name)
            image = _image(table, keys)  # the whole item is read, whatever the projection
            consumed.read(table.name, read_units(image[0] if image else 0, consumed.consistent(table.name)))
        return result

    return charged


def _charging_queries(original: Any) -> Any:
    """Query pages before the filter and the projection (what DynamoDB reads and charges), then both as moto
    applies them (the last steps of its `Table.query`)."""

    signature = inspect.signature(original)

    @functools.wraps(original)
    def charged(self: Any, *args: Any, **kwargs: Any) -> Any:
        consumed = _consumed()
        if consumed is None or consumed.action != "Query":
            return original(self, *args, **kwargs)
        call = signature.bind(self, *args, **kwargs)
        given = call.arguments
        filter_expression, projection = given.get("filter_expression"), given.get("projection_expressions")
        given["filter_expression"], given["projection_expressions"] = None, None
        results, scanned, last_key = original(*call.args, **call.kwargs)
        index_name = given.get("index_name")
        target = f"{self.name}/{index_name}" if index_name else self.name
        global_index = bool(index_name) and any(i.name == index_name for i in self.global_indexes or [])
        consistent = bool(given.get("consistent_read")) and not global_index
        consumed.read(target, read_units(sum(item.size() for item in results), consistent))
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection:
            results = [item.project(projection) for item in results]
        return results, scanned, last_key

    return charged
