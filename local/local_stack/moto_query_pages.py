"""An index query's page found the way moto walks to it, without moto walking the whole partition
(`moto_fixes._query_the_partition_only` hands moto only these items; `tests/.../test_local_moto_query_pages.py`
compares the answers with moto's own).

moto 5.2.5's `Table.query` on an index sorts every item of the partition, then walks them in order: it skips the
items up to the ExclusiveStartKey (`_item_comes_before_dct`: three DynamoTypes built per item), then appends
each item that passes the range condition (`DynamoType.compare`) until the `Limit` or the 1 MB page is reached,
where the item it is looking at ends the page (that item's test is never made). The plan's key pages and COUNT
pages of a 100,000-contact account cost the whole partition at each page, the segments' range queries compare
every contact of it.

`page_walk` walks the same sorted sequence with cast values (a string is its own cast value, a number a Decimal:
what DynamoType compares) and returns what moto's walk looks at and can act on: the items it appends and the
item that ends the page. moto, handed those (it sorts them again and applies every rule of its own), answers
the same page: the items it skipped at the start are gone (none of them is before the start key, so its skip
stops at once), and an item that fails the range test changes nothing in moto's walk unless it ends the page,
which is kept. The proof holds when each sort key position holds one of S or N and the start key gives each of
them the same type (then moto's skip is "every key up to the start key": a prefix of the sorted sequence), there
is one hash condition and at most one range condition, and no legacy QueryFilter (whose every item moto
counts); anything else returns None and moto walks the partition as before.

An item that fails the range test is sized only when the page so far plus the largest item DynamoDB stores could
pass 1 MB (moto refuses items over 405,000 bytes, on every write path, as `_NARROWED_BYTES` reasons); and when the
items that pass can neither reach the `Limit` nor bring the page that close to 1 MB (a segment's 500 contacts),
no item that fails can end the page, and those that pass are the answer without a walk of the others.

Measured in-process, CPU, on 102,000 contacts (a 100,000-contact account, random ids, ~4,100 contacts a 1 MB
page, load ~4), before -> after: the first key page 1.36 s -> 0.35 s, a key page at 50% 1.28 s -> 0.33 s, a COUNT
page (Limit 1,000) at 50% 1.10 s -> 0.15 s, a segment's range query (500 contacts) 0.28-0.31 s -> 0.15 s. Metered
as on the moto server (`dynamodb_capacity`, which hands moto's query its arguments by position: the partition fix
did not apply there before), the segment's query 2.0-2.4 s -> 0.16 s. What remains is the walk of the table to
find the partition, its sort, and moto's own work on the page.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

_LARGEST_ITEM = 409_600  # DynamoDB's 400 KB; moto refuses more than 405,000 bytes
_SORTABLE = {"S", "N"}


def _cast(kind: str, value: Any) -> Any:
    """A DynamoType's cast value, from its type and value (S or N)."""
    return value if kind == "S" else Decimal(value)


def _order(table: Any, index: Any) -> list[str]:
    """The attributes moto sorts an index query by, built as `Table.query` builds them."""
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    hash_keys = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
    range_keys = [key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE"]
    if range_keys:
        range_attrs: list[str | None] = [*range_keys, table.range_key_attr]
    elif isinstance(index, GlobalSecondaryIndex) and table.range_key_attr:
        range_attrs = [table.range_key_attr, table.range_key_attr]
    else:
        range_attrs = [table.hash_key_attr, table.range_key_attr]
    names: list[str] = table._generate_attr_to_sort_by([*hash_keys, table.hash_key_attr], range_attrs)
    return names


def page_walk(table: Any, given: dict[str, Any]) -> Callable[[list[Any]], list[Any] | None] | None:
    """For an index query (moto's `Table.query` arguments, bound), a function from the items that pass its
    hash-key condition to the items moto's walk appends plus the one that ends its page; None (from either) when
    the query is not one whose answer that provably keeps (module docstring)."""
    from moto.dynamodb.comparisons import get_comparison_func
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

    limit = given.get("limit")
    if (
        given.get("filter_kwargs")
        or len(given.get("hash_key_conditions") or ()) != 1
        or len(given.get("range_key_conditions") or ()) > 1
        or not (limit is None or (type(limit) is int and limit >= 1))
    ):
        return None
    index = next((i for i in table.all_indexes() if i.name == given.get("index_name")), None)
    if index is None:
        return None
    names = _order(table, index)
    range_keys = [key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE"]
    comparison = given.get("range_comparison")
    hit: Callable[[Any], bool] | None = None
    attribute = ""
    if comparison:
        test = get_comparison_func(comparison)
        if test is None or not range_keys:
            return None  # moto's own error
        conditions = given.get("range_key_conditions")
        attribute = conditions[-1][0] if conditions else range_keys[0]  # the attribute moto compares
        try:
            bounds = [bound.cast_value for bound in given.get("range_objs") or ()]
        except (InvalidOperation, TypeError, ValueError):
            return None

        def hit(value: Any) -> bool:
            """moto's `DynamoType.compare` of the attribute's cast value (S: its value; N: a Decimal)."""
            return bool(test(value, *bounds))

    hash_name, expected = (given.get("hash_key_conditions") or [("", None)])[0]
    # moto's order after the hash key (constant in the partition); an attribute sorted twice decides once
    rest = [name for name in dict.fromkeys(names) if name != hash_name]
    if names[0] != hash_name or getattr(expected, "type", None) not in _SORTABLE or not rest:
        return None
    start = given.get("exclusive_start_key")
    forward = given.get("scan_index_forward") is not False

    def walk(found: list[Any]) -> list[Any] | None:
        members = _indexed(found, range_keys)
        if attribute and attribute not in rest:
            return None  # moto compares an attribute it does not sort by: not found here
        try:
            columns = [[item.attrs[name] for item in members] for name in rest]
        except KeyError:
            return None  # moto's sort raises it
        types = []
        for column in columns:
            kinds = {value.type for value in column}
            if len(kinds) > 1 or not kinds <= _SORTABLE:
                return None
            types.append(next(iter(kinds), "S"))
        try:
            cast = [
                [v.value for v in c] if t == "S" else [Decimal(v.value) for v in c]
                for c, t in zip(columns, types, strict=True)
            ]
        except InvalidOperation:
            return None  # not a number moto stores: moto's sort says what it does with it
        keys: list[Any] = cast[0] if len(cast) == 1 else list(zip(*cast, strict=True))
        order = sorted(range(len(members)), key=keys.__getitem__)
        if start is None:
            skipped = kept = 0 if forward else len(order)
        else:
            edges = _start_bounds(start, [keys[i] for i in order], hash_name, expected, rest, types)
            if edges is None:
                return None
            skipped, kept = edges
        walked = order[skipped:] if forward else order[kept - 1 :: -1] if kept else []
        try:  # every member tested at once (a comparison per value): moto tests those it walks
            hits = [hit(value) for value in cast[rest.index(attribute)]] if hit is not None else None
        except Exception:  # moto's own comparison raises it, or not (it tests fewer): moto's walk decides
            return None
        return _walk(members, walked, limit, hits, RESULT_SIZE_LIMIT)

    return walk


def _start_bounds(
    start: Any, ordered: list[Any], hash_name: str, expected: Any, rest: list[str], types: list[str]
) -> tuple[int, int] | None:
    """How many of the sorted keys are at most the start key, and how many below it: moto's skip going forward
    (every key up to the start key), and what it leaves going backward (every key below it). None when the start
    key does not give each sorted attribute one value of its type (moto compares it otherwise)."""
    key = []
    for name, kind in zip([hash_name, *rest], [expected.type, *types], strict=True):
        value = start.get(name) if isinstance(start, dict) else None
        if not isinstance(value, dict) or list(value) != [kind] or not isinstance(value[kind], str):
            return None
        try:
            key.append(_cast(kind, value[kind]))
        except InvalidOperation:
            return None
    partition = expected.cast_value
    if key[0] != partition:  # every key of the partition is below the start key, or above it
        return (len(ordered), len(ordered)) if key[0] > partition else (0, 0)
    within = key[1] if len(key) == 2 else tuple(key[1:])
    return bisect_right(ordered, within), bisect_left(ordered, within)


def _indexed(found: list[Any], range_keys: list[str]) -> list[Any]:
    """The items moto's index query keeps: those with every range key of the index."""
    if not range_keys:
        return found
    if len(range_keys) == 1:
        name = range_keys[0]
        return [item for item in found if name in item.attrs]
    return [item for item in found if all(name in item.attrs for name in range_keys)]


def _walk(
    members: list[Any], walked: list[int], limit: int | None, hits: list[bool] | None, page_bytes: int
) -> list[Any]:
    """moto's walk of a page: the items it appends and the one it stops at (it checks the `Limit` and the page's
    size against each item before testing it; an item that fails the test changes nothing otherwise)."""
    if hits is not None:  # the segments' case: the items that pass, when none that fails can end the page
        passing = [members[i] for i in walked if hits[i]]
        if _never_full(passing, limit, page_bytes):
            return passing
    seen: list[Any] = []
    appended = size = 0
    for i in walked:
        item = members[i]
        if appended == limit:
            seen.append(item)
            break
        if hits is not None and not hits[i]:
            if size + _LARGEST_ITEM > page_bytes and size + item.size() > page_bytes:
                seen.append(item)
                break
            continue
        item_size = item.size()
        seen.append(item)
        if size + item_size > page_bytes:
            break
        appended += 1
        size += item_size
    return seen


def _never_full(items: list[Any], limit: int | None, page_bytes: int) -> bool:
    """Whether moto, appending these items in turn, never reaches the `Limit` nor a page that an item of
    DynamoDB's largest size could fill (the count and the size only grow): then no item, passing the test or not,
    ends the page, and moto appends them all."""
    if limit is not None and len(items) >= limit:
        return False
    return sum(item.size() for item in items) + _LARGEST_ITEM <= page_bytes
