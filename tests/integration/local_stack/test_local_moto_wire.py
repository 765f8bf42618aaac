"""moto's DynamoDB request parser and result conversion with `moto_wire`'s shortcuts give what moto's own give: the
parsed parameters of UpdateItem, PutItem and BatchGetItem requests over random attribute values (binary ones
too, which moto decodes), and the converted results over random mixes of plain data, `DynamoType`s, items and
datetimes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from local_stack.moto_fixes import apply_moto_fixes
from local_stack.moto_wire import plain_copy
from moto.core.parse import BaseJSONParser, JSONParser
from moto.core.utils import get_service_model
from moto.dynamodb import responses
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from tests.support.attribute_values import attribute_values

apply_moto_fixes()
_moto_parse_map = BaseJSONParser._parse_map.__wrapped__  # type: ignore[attr-defined]
_moto_dynamo_to_dict = responses.dynamo_to_dict.__wrapped__  # type: ignore[attr-defined]

_text = st.text(max_size=4)
_values = attribute_values(nulls=st.booleans())
_maps = st.dictionaries(_text, _values, max_size=4)


def _parsed(operation: str, body: dict[str, Any], patched: bool) -> Any:
    parser = JSONParser(get_service_model("dynamodb").operation_model(operation))
    if not patched:
        parser._parse_map = lambda shape, value: _moto_parse_map(parser, shape, value)  # type: ignore[method-assign]
    return parser.parse({"body": json.dumps(body).encode(), "headers": {}, "method": "POST"})  # type: ignore[typeddict-item]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(key=_maps, values=_maps, item=_maps, keys=st.lists(_maps, max_size=3))
def test_a_request_is_parsed_as_moto_parses_it(key, values, item, keys) -> None:
    update = {
        "TableName": "t",
        "Key": key,
        "UpdateExpression": "SET a = :v",
        "ExpressionAttributeValues": values,
    }
    put = {"TableName": "t", "Item": item}
    batch = {"RequestItems": {"t": {"Keys": keys}}} if keys else {"RequestItems": {}}
    for operation, body in (("UpdateItem", update), ("PutItem", put), ("BatchGetItem", batch)):
        assert _parsed(operation, body, patched=True) == _parsed(operation, body, patched=False)


_plain = st.recursive(
    st.one_of(_text, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=10,
)
_results = st.recursive(
    st.one_of(
        _plain,
        _values.map(DynamoType),
        _maps.map(lambda attrs: Item(DynamoType({"S": "k"}), None, {"pk": {"S": "k"}, **attrs})),
        st.just(datetime(2026, 12, 5, tzinfo=UTC)),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(result=_results)
def test_a_result_is_converted_as_moto_converts_it(result) -> None:
    assert plain_copy(result, _moto_dynamo_to_dict) == _moto_dynamo_to_dict(result)
    assert responses.dynamo_to_dict(result) == _moto_dynamo_to_dict(result)
