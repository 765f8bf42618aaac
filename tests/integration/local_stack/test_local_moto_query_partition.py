"""moto's Query started from only the items its key condition can match (`moto_fixes._query_the_partition_only`)
and sorting by cast values (`_sorted_as_moto_sorts`) answer as moto's own Query and Scan do: the same items,
order, pages, counts, LastEvaluatedKey and errors, on random tables after random writes through every write path
(index keys added, changed and removed, items deleted). The fix keeps no state of its own (it reads moto's items
at each query), so there is nothing that table deletion, CloudFormation or a restore could leave behind."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.table import Table

from tests.support.index_tables import create_index_table

_PKS = ["p1", "p2", "p3"]
_SKS = ["1", "2", "10", "2.0"]  # "2" and "2.0" are one number: one item
_G = {"S": ["a", "b"], "N": ["1", "1.0", "7"]}  # "1" and "1.0" are one index partition
_R = ["x", "xy", "y"]
_PAYLOAD = [0, 5, 300_000]  # 300 KB items: a 1 MB page holds three


def _schema(draw: Any) -> dict[str, Any]:
    return {
        "range": draw(st.booleans()),
        "g_type": draw(st.sampled_from(["S", "N"])),
        "index_range": draw(st.booleans()),
        "projection": draw(st.sampled_from(["ALL", "KEYS_ONLY", "INCLUDE"])),
    }


@st.composite
def _scenarios(draw: Any) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    schema = _schema(draw)
    key = st.fixed_dictionaries(
        {"pk": st.sampled_from(_PKS), **({"sk": st.sampled_from(_SKS)} if schema["range"] else {})}
    )
    g = st.sampled_from(_G[schema["g_type"]])
    put = st.tuples(
        st.just("put"),
        key,
        st.one_of(st.none(), g),
        st.one_of(st.none(), st.sampled_from(_R)),
        st.sampled_from(_PAYLOAD),
    )
    update = st.tuples(st.just("update"), key, st.sampled_from(["set_g", "remove_g", "set_r", "remove_r"]), g)
    delete = st.tuples(st.just("delete"), key)
    write = st.one_of(put, update, delete)
    batch = st.tuples(st.just("batch"), st.lists(st.one_of(put, delete), min_size=1, max_size=4))
    transact = st.tuples(st.just("transact"), st.lists(write, min_size=1, max_size=3))
    operations = draw(st.lists(st.one_of(write, write, batch, transact), max_size=25))
    return schema, operations


def _key(key: dict[str, str]) -> dict[str, Any]:
    return {"pk": {"S": key["pk"]}, **({"sk": {"N": key["sk"]}} if "sk" in key else {})}


def _item(operation: tuple[Any, ...], g_type: str) -> dict[str, Any]:
    _, key, g, r, payload = operation
    item = {**_key(key), "payload": {"S": "p" * payload} if payload else {"S": "-"}}
    if g is not None:
        item["g"] = {g_type: g}
    if r is not None:
        item["r"] = {"S": r}
    return item


_UPDATES = {
    "set_g": ("SET g = :v", True),
    "remove_g": ("REMOVE g", False),
    "set_r": ("SET r = :r", False),
    "remove_r": ("REMOVE r", False),
}


def _update(operation: tuple[Any, ...], g_type: str) -> dict[str, Any]:
    _, key, kind, g = operation
    expression, uses_g = _UPDATES[kind]
    values = {":v": {g_type: g}} if uses_g else {":r": {"S": "xz"}} if kind == "set_r" else {}
    return {
        "Key": _key(key),
        "UpdateExpression": expression,
        **({"ExpressionAttributeValues": values} if values else {}),
    }


def _write(client: Any, table: str, operation: tuple[Any, ...], g_type: str) -> None:
    kind = operation[0]
    if kind == "put":
        client.put_item(TableName=table, Item=_item(operation, g_type))
    elif kind == "update":
        client.update_item(TableName=table, **_update(operation, g_type))
    elif kind == "delete":
        client.delete_item(TableName=table, Key=_key(operation[1]))
    elif kind == "batch":
        requests = [
            {"PutRequest": {"Item": _item(entry, g_type)}}
            if entry[0] == "put"
            else {"DeleteRequest": {"Key": _key(entry[1])}}
            for entry in operation[1]
        ]
        client.batch_write_item(RequestItems={table: requests})
    else:
        items = []
        for entry in operation[1]:
            if entry[0] == "put":
                items.append({"Put": {"TableName": table, "Item": _item(entry, g_type)}})
            elif entry[0] == "update":
                items.append({"Update": {"TableName": table, **_update(entry, g_type)}})
            else:
                items.append({"Delete": {"TableName": table, "Key": _key(entry[1])}})
        client.transact_write_items(TransactItems=items)


def _queries(schema: dict[str, Any]) -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = []
    for forward, limit in itertools.product([True, False], [None, 1, 2]):
        paging = {"ScanIndexForward": forward, **({"Limit": limit} if limit else {})}
        for g in [*_G[schema["g_type"]], "9" if schema["g_type"] == "N" else "zz"]:
            values = {":g": {schema["g_type"]: g}}
            queries.append(
                {"IndexName": "by_g", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": values}
            )
            if schema["index_range"]:
                # the fan-out's segment queries: (after, through], ( , through], (after, )
                for condition, bounds in [
                    ("begins_with(r, :x)", {":x": "x"}),
                    ("r BETWEEN :lo AND :hi", {":lo": "x", ":hi": "xy"}),
                    ("r <= :hi", {":hi": "xy"}),
                    ("r > :lo", {":lo": "x"}),
                ]:
                    queries.append(
                        {
                            "IndexName": "by_g",
                            "KeyConditionExpression": f"g = :g AND {condition}",
                            "ExpressionAttributeValues": {**values, **{k: {"S": v} for k, v in bounds.items()}},
                            **paging,
                        }
                    )
            queries[-1] = {**queries[-1], **paging}
        for pk in [*_PKS, "p9"]:
            values = {":p": {"S": pk}}
            queries.append({"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": values, **paging})
            if schema["range"]:
                queries.append(
                    {
                        "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
                        "ExpressionAttributeValues": {**values, ":lo": {"N": "2"}, ":hi": {"N": "10"}},
                        **paging,
                    }
                )
            queries.append(
                {
                    "KeyConditionExpression": "pk = :p",
                    "FilterExpression": "attribute_exists(g)",
                    "ExpressionAttributeValues": values,
                    **paging,
                }
            )
    queries.append(
        {"IndexName": "nope", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "a"}}}
    )
    queries.append(
        {
            "IndexName": "by_g",
            "ConsistentRead": True,
            "KeyConditionExpression": "g = :g",
            "ExpressionAttributeValues": {":g": {schema["g_type"]: _G[schema["g_type"]][0]}},
        }
    )
    return queries


def _scans(client: Any, table: str) -> list[Any]:
    """A Scan of the table and of its index, page by page (moto sorts both the way a Query does)."""
    answers = []
    for index in ({}, {"IndexName": "by_g"}):
        for limit in ({}, {"Limit": 2}):
            start: dict[str, Any] | None = None
            while True:
                page = client.scan(TableName=table, **index, **limit, **({"ExclusiveStartKey": start} if start else {}))
                page.pop("ResponseMetadata")
                answers.append(page)
                start = page.get("LastEvaluatedKey")
                if start is None or len(answers) > 200:
                    break
    return answers


def _answers(client: Any, table: str, queries: list[dict[str, Any]]) -> list[Any]:
    """Every page of every query (the response without its metadata), or the error it raised."""
    answers: list[Any] = []
    for query in queries:
        pages: list[Any] = []
        start: dict[str, Any] | None = None
        try:
            while len(pages) < 60:
                page = client.query(TableName=table, **query, **({"ExclusiveStartKey": start} if start else {}))
                page.pop("ResponseMetadata")
                pages.append(page)
                start = page.get("LastEvaluatedKey")
                if start is None:
                    break
        except ClientError as error:
            pages.append(("error", error.response["Error"]))
        answers.append(pages)
    return answers


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=_scenarios())
def test_a_query_answers_as_moto_s_own_query_after_any_writes(aws, scenario) -> None:
    schema, operations = scenario
    client = aws.client("dynamodb")
    table = create_index_table(client, schema, "partition")
    for operation in operations:
        with contextlib.suppress(ClientError):  # a write moto refuses (a transaction naming a key twice): for both
            _write(client, table, operation, schema["g_type"])
    queries = _queries(schema)
    patched = _answers(client, table, queries), _scans(client, table)
    with pytest.MonkeyPatch.context() as undo:
        query = Table.query  # under the capacity meter when a test of this worker installed it
        while query.__code__.co_name != "query_the_partition":
            query = query.__wrapped__
        undo.setattr(Table, "query", query.__wrapped__)  # moto's query (with the projection fix, tested apart)
        undo.setattr(Table, "all_items", Table.all_items.__wrapped__)
        undo.setattr(Table, "sorted_items", Table.sorted_items.__wrapped__)
        original = _answers(client, table, queries), _scans(client, table)
    client.delete_table(TableName=table)
    assert patched == original
