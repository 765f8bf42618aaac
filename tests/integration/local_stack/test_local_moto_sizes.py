"""moto's attribute sizes (`moto_sizes`) are moto's own numbers: over random attribute values (every type, maps and
lists nested, members that are plain AttributeValue dicts as moto sometimes holds them), and on the items an update
sizes against the 400 KB limit."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from local_stack.moto_fixes import apply_moto_fixes
from local_stack.moto_sizes import size_of
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from tests.support.attribute_values import attribute_values

apply_moto_fixes()
_moto_size = DynamoType.size.__wrapped__  # type: ignore[attr-defined]

_text = st.text(max_size=6)  # non-ASCII too: sizes are UTF-8 bytes
_number = st.one_of(
    st.integers(-(10**20), 10**20).map(str), st.decimals(allow_nan=False, allow_infinity=False).map(str)
)
_values = attribute_values(text=_text, numbers=_number, binary=st.binary(max_size=6), max_leaves=12)


def _with_plain_members(value: DynamoType, plain: bool) -> DynamoType:
    """The value with its maps' members left as plain dicts (as an update's executor can leave them), or not."""
    if plain and value.type == "M":
        value.value = {name: member.to_regular_json() for name, member in value.value.items()}
    return value


@settings(max_examples=400, deadline=None, derandomize=True)
@given(value=_values, plain=st.booleans())
def test_an_attribute_is_sized_as_moto_sizes_it(value: dict[str, Any], plain: bool) -> None:
    attribute = _with_plain_members(DynamoType(value), plain)
    assert size_of(attribute) == _moto_size(attribute)
    assert attribute.size() == _moto_size(attribute)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(attrs=st.dictionaries(_text.filter(bool), _values, max_size=5))
def test_an_item_is_sized_as_moto_sizes_it(attrs: dict[str, Any]) -> None:
    item = Item(DynamoType({"S": "k"}), None, {"pk": {"S": "k"}, **attrs})
    assert item.size() == sum(len(name.encode()) + _moto_size(value) for name, value in item.attrs.items())


def test_an_update_past_the_item_limit_is_still_refused(aws: Any) -> None:
    client = aws.client("dynamodb")
    client.create_table(
        TableName="sizes",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    nested = {"M": {f"k{n}": {"M": {"v": {"S": "x" * 1000}}} for n in range(200)}}  # ~200 KB
    client.put_item(TableName="sizes", Item={"pk": {"S": "p"}, "a": nested})
    with pytest.raises(ClientError, match="Item size"):
        client.update_item(
            TableName="sizes",
            Key={"pk": {"S": "p"}},
            UpdateExpression="SET b = :b, c = :b",
            ExpressionAttributeValues={":b": nested},
        )
