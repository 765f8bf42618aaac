"""The moto server charges DynamoDB capacity units as DynamoDB does (what `make bench` reports; moto's own
ConsumedCapacity is a constant per request)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from local_stack.dynamodb_capacity import _entry, index_write_units, read_units, write_units
from local_stack.moto_fixes import apply_moto_fixes
from local_stack.moto_server import MotoServer, fake_aws_env, reset_pynamodb_connections


@pytest.mark.parametrize(
    ("size", "units"), [(0, 1), (1, 1), (1024, 1), (1025, 2), (2048, 2), (2049, 3), (400 * 1024, 400)]
)
def test_a_write_unit_is_1_kb_rounded_up_and_never_less_than_one(size, units):
    assert write_units(size) == units


@pytest.mark.parametrize(
    ("size", "strong", "eventual"), [(0, 1, 0.5), (4096, 1, 0.5), (4097, 2, 1.0), (8192, 2, 1.0), (8193, 3, 1.5)]
)
def test_a_read_unit_is_4_kb_rounded_up_strongly_consistent_and_half_of_it_eventually(size, strong, eventual):
    assert (read_units(size, consistent=True), read_units(size, consistent=False)) == (strong, eventual)


@given(st.integers(0, 10**6))
def test_an_eventually_consistent_read_costs_half_a_strong_one(size):
    assert read_units(size, consistent=False) * 2 == read_units(size, consistent=True)


def test_an_index_is_written_only_when_its_entry_changes():
    entry, other_value, moved = (100, "k1\nA"), (2000, "k1\nB"), (2000, "k2\nB")
    assert index_write_units(None, None) == 0
    assert index_write_units(entry, entry) == 0  # a write that changes no projected attribute
    assert index_write_units(None, entry) == 1 and index_write_units(entry, None) == 1
    assert index_write_units(entry, other_value) == 2  # updated in place: the larger entry
    assert index_write_units(entry, moved) == 1 + 2  # the index key changed: a delete and a put


def _entry_by_projection(index: Any, item: Any) -> tuple[int, str] | None:
    """The index entry's size and fingerprint from moto's own projection (what `_entry` computed before its
    shortcut for string-only entries)."""
    keys = [k["AttributeName"] for k in index.schema]
    if any(name not in item.attrs for name in keys):
        return None
    entry = index.project(item)
    attributes = entry.to_json()["Attributes"]
    index_key = json.dumps([attributes.get(name) for name in keys], sort_keys=True)
    return entry.size(), index_key + "\n" + json.dumps(attributes, sort_keys=True)


_string = st.text(max_size=4).map(lambda s: {"S": s})
_attribute = st.one_of(
    _string,
    st.integers(-99, 99).map(lambda n: {"N": str(n)}),
    st.just({"N": "1.50"}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.lists(st.text(max_size=2).map(lambda s: {"S": s}), max_size=2).map(lambda members: {"L": members}),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    projection=st.sampled_from(
        [
            {"ProjectionType": "KEYS_ONLY"},
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b"]},
            {},
            {"ProjectionType": "ALL"},
        ]
    ),
    keys=st.dictionaries(st.sampled_from(["account_id", "sort"]), st.one_of(_string, _string, _attribute)),
    attrs=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.one_of(_string, _attribute)),
    contact=st.one_of(_string, _attribute),
)
def test_an_index_entry_is_sized_and_told_apart_as_moto_projects_it(projection, keys, attrs, contact):
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    apply_moto_fixes()  # the item projection the moto server uses
    schema = [{"AttributeName": "account_id", "KeyType": "HASH"}, {"AttributeName": "sort", "KeyType": "RANGE"}]
    index = GlobalSecondaryIndex("by_account", schema, projection, ["contact_id"])
    item = Item(None, None, {"contact_id": contact, **keys, **attrs})  # type: ignore[arg-type]
    assert _entry(index, item) == _entry_by_projection(index, item)


@pytest.fixture
def server(monkeypatch):
    for name in fake_aws_env():
        monkeypatch.delenv(name, raising=False)
    with MotoServer() as running:
        running.apply_env()
        yield running
    reset_pynamodb_connections()


def _units(server: MotoServer) -> dict[tuple[str, str], list[float]]:
    """{(action, target): [read, write]} since the last reset."""
    out: dict[tuple[str, str], list[float]] = {}
    for row in server.request_counts():
        for target, (read, write) in row.get("units", {}).items():
            total = out.setdefault((row["action"], target), [0.0, 0.0])
            total[0] += read
            total[1] += write
    return out


def test_writes_and_reads_are_charged_by_item_size_on_the_table_and_each_index(server):
    # given a table with a keys-only index and an index projecting everything
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="people",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "group", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": "group", "KeyType": "HASH"},
                    {"AttributeName": "id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": projection},
            }
            for name, projection in (("keys", "KEYS_ONLY"), ("everything", "ALL"))
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"id": {"S": "p1"}}
    big = "x" * 3000  # the item is about 3 KB: 3 write units, 1 read unit
    server.reset_request_counts()
    # when an item enters both indexes, then a non-key attribute changes, then a read, a query and a failed write
    dynamodb.put_item(TableName="people", Item={**key, "group": {"S": "g"}, "note": {"S": big}})
    assert _units(server) == {
        ("PutItem", "people"): [0, 3],
        ("PutItem", "people/keys"): [0, 1],
        ("PutItem", "people/everything"): [0, 3],
    }
    server.reset_request_counts()
    dynamodb.update_item(
        TableName="people", Key=key, UpdateExpression="SET note = :n", ExpressionAttributeValues={":n": {"S": "y"}}
    )
    # then the keys-only index is not written: only the table (its larger image) and the index projecting `note`
    assert _units(server) == {("UpdateItem", "people"): [0, 3], ("UpdateItem", "people/everything"): [0, 3]}
    server.reset_request_counts()
    dynamodb.get_item(TableName="people", Key=key, ConsistentRead=True)
    dynamodb.get_item(TableName="people", Key={"id": {"S": "absent"}})
    dynamodb.batch_get_item(RequestItems={"people": {"Keys": [key], "ConsistentRead": True}})
    dynamodb.query(
        TableName="people",
        IndexName="keys",
        KeyConditionExpression="#g = :g",
        ExpressionAttributeNames={"#g": "group"},
        ExpressionAttributeValues={":g": {"S": "g"}},
        Select="COUNT",
    )
    assert _units(server) == {
        ("GetItem", "people"): [1 + 0.5, 0],
        ("BatchGetItem", "people"): [1, 0],
        ("Query", "people/keys"): [0.5, 0],
    }
    server.reset_request_counts()
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(
            TableName="people", Item={**key, "note": {"S": big * 2}}, ConditionExpression="attribute_not_exists(id)"
        )
    # a failed condition is charged the item as it stands, and writes no index
    assert _units(server) == {("PutItem", "people"): [0, 1]}
