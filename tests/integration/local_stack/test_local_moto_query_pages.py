"""An index query handed only the items moto's walk looks at (`moto_query_pages`) answers as moto's own query:
the same items, order, Count, ScannedCount, LastEvaluatedKey and errors, for any start key (a page's
LastEvaluatedKey, or any key, of an item or not, of the right types or not), Limit, direction, range condition
and 1 MB page (300 KB items), with a GSI sort key shared by several items. And it is a page's work: moto sorts
and walks no more than the page and the item that ends it."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pytest
from botocore.config import Config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from local_stack import dynamodb_capacity
from moto.dynamodb.models.table import Table

from tests.support.index_tables import create_index_table

_PKS = ["a", "b", "c", "d", "e", "f"]
_SKS = ["1", "2", "10"]
_G = {"S": ["g", "h"], "N": ["1", "2"]}
_R = {"S": ["", "m", "ma", "mb", "n", "z"], "N": ["-1", "0", "2", "2.5", "10"]}  # few values: shared sort keys
_PAYLOAD = [0, 0, 0, 5, 300_000]  # 300 KB items: a 1 MB page holds three
_NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})  # moto's 500 for a start key it cannot read
_OPERATORS = [None, "=", "<", "<=", ">", ">=", "BETWEEN", "begins_with"]


@st.composite
def _scenarios(draw: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    schema = {
        "range": draw(st.booleans()),
        "g_type": draw(st.sampled_from(["S", "N"])),
        "r_type": draw(st.sampled_from(["S", "N"])),
        "index_range": draw(st.booleans()),
        "projection": draw(st.sampled_from(["ALL", "KEYS_ONLY"])),
    }
    item = st.fixed_dictionaries(
        {
            "pk": st.sampled_from(_PKS),
            "sk": st.sampled_from(_SKS),
            "g": st.one_of(st.none(), st.sampled_from(_G[schema["g_type"]])),
            "r": st.one_of(st.none(), st.sampled_from(_R[schema["r_type"]])),
            "payload": st.sampled_from(_PAYLOAD),
        }
    )
    items = draw(st.lists(item, max_size=30))
    any_key = st.fixed_dictionaries(  # a start key: any values, of the right type or not, some attributes left out
        {
            name: st.one_of(
                st.sampled_from([{kind: value} for value in values]),
                st.sampled_from([{"S": "zz"}, {"N": "5"}]),
            )
            for name, kind, values in [
                ("pk", "S", [*_PKS, "b0"]),
                ("sk", "N", [*_SKS, "3"]),
                ("g", schema["g_type"], _G[schema["g_type"]]),
                ("r", schema["r_type"], _R[schema["r_type"]] + (["mab"] if schema["r_type"] == "S" else ["3"])),
            ]
        }
    )
    some_key = any_key.flatmap(
        lambda key: st.sets(st.sampled_from(sorted(key))).map(
            lambda left_out: {k: key[k] for k in key if k not in left_out}
        )
    )
    query = st.fixed_dictionaries(
        {
            "g": st.sampled_from(_G[schema["g_type"]]),
            "operator": st.sampled_from(_OPERATORS if schema["index_range"] else [None]),
            "bounds": st.lists(st.sampled_from(_R[schema["r_type"]]), min_size=2, max_size=2).map(sorted),
            "forward": st.booleans(),
            "limit": st.sampled_from([None, None, 1, 2, 3]),
            "start": st.one_of(st.just("pages"), st.just("pages"), any_key, some_key),
            "count": st.booleans(),
        }
    )
    return schema, items, draw(st.lists(query, min_size=1, max_size=6))


def _query(operator: str | None, bound: str, forward: bool) -> dict[str, Any]:
    return {"g": "g", "operator": operator, "bounds": [bound, bound], "forward": forward, "limit": None}


# Five 300 KB items in one partition: a page ends on an item that passes the test (the fourth), or on one that
# fails it (after three that pass: `r <= mb` meets `n`); both directions.
_FULL_PAGES = (
    {"range": False, "g_type": "S", "r_type": "S", "index_range": True, "projection": "ALL"},
    [
        {"pk": pk, "sk": "1", "g": "g", "r": r, "payload": 300_000}
        for pk, r in zip("abcde", ["m", "ma", "mb", "n", "z"], strict=True)
    ],
    [
        {**_query(operator, bound, forward), "start": "pages", "count": count}
        for operator, bound, forward in [(None, "m", True), ("<=", "mb", True), (">=", "ma", False), (None, "m", False)]
        for count in (False, True)
    ],
)

# A page of as many passing items as the Limit, then one that fails the test: moto ends the page on it.
_LIMIT_THEN_MISS = (
    {"range": False, "g_type": "S", "r_type": "S", "index_range": True, "projection": "KEYS_ONLY"},
    [{"pk": pk, "sk": "1", "g": "g", "r": r, "payload": 0} for pk, r in zip("abc", ["m", "n", "z"], strict=True)],
    [
        {**_query("<=", bound, True), "limit": limit, "start": "pages", "count": False}
        for bound, limit in [("m", 1), ("n", 2), ("n", 1)]
    ],
)


def _put(client: Any, table: str, schema: dict[str, Any], item: dict[str, Any]) -> None:
    attributes: dict[str, Any] = {"pk": {"S": item["pk"]}, "payload": {"S": "p" * item["payload"] or "-"}}
    if schema["range"]:
        attributes["sk"] = {"N": item["sk"]}
    if item["g"] is not None:
        attributes["g"] = {schema["g_type"]: item["g"]}
    if item["r"] is not None and (item["r"] or schema["r_type"] == "N" or not schema["index_range"]):
        attributes["r"] = {schema["r_type"]: item["r"]}  # an empty string cannot be an index key
    client.put_item(TableName=table, Item=attributes)


def _request(table: str, schema: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    kind = schema["r_type"]
    values: dict[str, Any] = {":g": {schema["g_type"]: query["g"]}}
    condition = "g = :g"
    operator, (low, high) = query["operator"], query["bounds"]
    if operator == "BETWEEN":
        condition += " AND r BETWEEN :lo AND :hi"
        values.update({":lo": {kind: low}, ":hi": {kind: high}})
    elif operator == "begins_with":
        condition += " AND begins_with(r, :lo)"
        values[":lo"] = {"S": low or "m"}  # moto's begins_with on a number raises: asked with a string
    elif operator:
        condition += f" AND r {operator} :lo"
        values[":lo"] = {kind: low}
    return {
        "TableName": table,
        "IndexName": "by_g",
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": query["forward"],
        **({"Limit": query["limit"]} if query["limit"] else {}),
        **({"Select": "COUNT"} if query["count"] else {}),
    }


def _answers(client: Any, table: str, schema: dict[str, Any], queries: list[dict[str, Any]]) -> list[Any]:
    """Every page of every query (its pages from the first, or one page from the given start key), or the error
    it raised."""
    answers: list[Any] = []
    for query in queries:
        request = _request(table, schema, query)
        start = None if query["start"] == "pages" else query["start"]
        pages: list[Any] = []
        try:
            while len(pages) < 40:
                page = client.query(**request, **({"ExclusiveStartKey": start} if start else {}))
                page.pop("ResponseMetadata")
                pages.append(page)
                start = page.get("LastEvaluatedKey")
                if start is None or query["start"] != "pages":
                    break
        except Exception as error:  # moto's answer to a start key it cannot compare, the same either way
            pages.append(("error", type(error).__name__, str(error)))
        answers.append(pages)
    return answers


def _moto_s_own(undo: pytest.MonkeyPatch) -> None:
    """moto's query as it is without the partition and page fixes (the projection fix kept, tested apart), found
    under whatever wraps it (the capacity meter, when a test of this worker installed it)."""
    query = Table.query
    while query.__code__.co_name != "query_the_partition":
        query = query.__wrapped__
    undo.setattr(Table, "query", query.__wrapped__)
    undo.setattr(Table, "all_items", Table.all_items.__wrapped__)
    undo.setattr(Table, "sorted_items", Table.sorted_items.__wrapped__)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=_scenarios())
@example(scenario=_FULL_PAGES)
@example(scenario=_LIMIT_THEN_MISS)
def test_an_index_query_answers_as_moto_s_own_from_any_start_key(aws, scenario) -> None:
    schema, items, queries = scenario
    client = aws.client("dynamodb", config=_NO_RETRIES)
    table = create_index_table(client, schema, "pages")
    for item in items:
        _put(client, table, schema, item)
    patched = _answers(client, table, schema, queries)
    with pytest.MonkeyPatch.context() as undo:
        _moto_s_own(undo)
        original = _answers(client, table, schema, queries)
    client.delete_table(TableName=table)
    assert patched == original


def _walked(undo: pytest.MonkeyPatch) -> list[int]:
    """How many items moto sorts for each index query from now on (what its walk can look at)."""
    sizes: list[int] = []
    sorted_items = Table.sorted_items

    def counting(self: Any, hash_key_attrs: Any, range_key_attrs: Any, found: list[Any]) -> Any:
        sizes.append(len(found))
        return sorted_items(self, hash_key_attrs, range_key_attrs, found)

    undo.setattr(Table, "sorted_items", counting)
    return sizes


@pytest.mark.parametrize("metered", [False, True])
def test_a_deep_page_and_a_segment_are_a_page_s_work(aws, metered) -> None:
    """Metered too, as on the moto server: the capacity meter hands moto's query its arguments by position."""
    client = aws.client("dynamodb")
    schema = {"range": False, "g_type": "S", "r_type": "S", "index_range": True, "projection": "KEYS_ONLY"}
    table = create_index_table(client, schema, "pages")
    for n in range(400):
        _put(client, table, schema, {"pk": f"p{n:03}", "sk": "1", "g": "g", "r": f"r{n:03}", "payload": 0})
    key = {"TableName": table, "IndexName": "by_g", "ExpressionAttributeValues": {":g": {"S": "g"}}}
    start = {"pk": {"S": "p299"}, "g": {"S": "g"}, "r": {"S": "r299"}}
    with pytest.MonkeyPatch.context() as undo, ExitStack() as meter:
        walked = _walked(undo)
        if metered:
            undo.setattr(Table, "query", dynamodb_capacity._charging_queries(Table.query))
            meter.enter_context(dynamodb_capacity.metered("Query", {}))
        deep = client.query(**key, KeyConditionExpression="g = :g", Limit=10, ExclusiveStartKey=start)
        back = client.query(
            **key, KeyConditionExpression="g = :g", Limit=10, ExclusiveStartKey=start, ScanIndexForward=False
        )
        segment = client.query(
            **{**key, "ExpressionAttributeValues": {":g": {"S": "g"}, ":lo": {"S": "r100"}, ":hi": {"S": "r104"}}},
            KeyConditionExpression="g = :g AND r BETWEEN :lo AND :hi",
        )
    assert [item["r"]["S"] for item in deep["Items"]] == [f"r{n}" for n in range(300, 310)]
    assert [item["r"]["S"] for item in back["Items"]] == [f"r{n}" for n in range(298, 288, -1)]
    assert [item["r"]["S"] for item in segment["Items"]] == [f"r{n}" for n in range(100, 105)]
    assert walked == [11, 11, 5]  # the page, and the item that ends it (a LastEvaluatedKey); the segment alone


def test_a_query_the_walk_cannot_prove_is_left_to_moto(aws) -> None:
    """A legacy QueryFilter (moto counts every item it walks): moto sorts the whole partition, as before."""
    client = aws.client("dynamodb")
    schema = {"range": False, "g_type": "S", "r_type": "S", "index_range": True, "projection": "ALL"}
    table = create_index_table(client, schema, "pages")
    for n in range(50):
        _put(client, table, schema, {"pk": f"p{n:03}", "sk": "1", "g": "g", "r": f"r{n:03}", "payload": 0})
    with pytest.MonkeyPatch.context() as undo:
        walked = _walked(undo)
        page = client.query(
            TableName=table,
            IndexName="by_g",
            KeyConditions={"g": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "g"}]}},
            QueryFilter={"payload": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "-"}]}},
            Limit=5,
        )
    assert page["Count"] == 5
    assert walked == [50]
