"""botocore with `botocore_wire` parses DynamoDB's responses and validates and serializes its requests as botocore
does: BatchGetItem, Query and GetItem bodies, UpdateItem, PutItem and BatchGetItem requests (the same body bytes,
the same validation errors) over random attribute values (binary ones too, which botocore encodes and decodes,
and invalid ones), and another service's shape named AttributeValue is left to botocore."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
from botocore.parsers import BaseJSONParser, create_parser
from botocore.serialize import JSONSerializer
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st
from local_stack.botocore_wire import apply_botocore_wire_speedup

from tests.support.attribute_values import attribute_values

apply_botocore_wire_speedup()
_botocore_handle_map = BaseJSONParser._handle_map.__wrapped__  # type: ignore[attr-defined]
_botocore_serialize_map = JSONSerializer._serialize_type_map.__wrapped__  # type: ignore[attr-defined]
_botocore_validate_map = ParamValidator._validate_map.__wrapped__  # type: ignore[attr-defined]
_dynamodb = botocore.session.get_session().get_service_model("dynamodb")

_text = st.text(max_size=4)
_values = attribute_values(binary_sets=False)
_items = st.dictionaries(_text, _values, max_size=4)


def _parsed(operation: str, body: dict[str, Any], patched: bool) -> Any:
    parser = create_parser("json")
    if not patched:
        parser._handle_map = lambda shape, value: _botocore_handle_map(parser, shape, value)  # type: ignore[method-assign]
    response = {"body": json.dumps(body).encode(), "headers": {}, "status_code": 200}
    return parser.parse(response, _dynamodb.operation_model(operation).output_shape)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(items=st.lists(_items, max_size=4), last=_items)
def test_a_response_is_parsed_as_botocore_parses_it(items, last) -> None:
    bodies = {
        "BatchGetItem": {"Responses": {"contacts": items}, "UnprocessedKeys": {}},
        "Query": {"Items": items, "Count": len(items), "LastEvaluatedKey": last},
        "GetItem": {"Item": last},
    }
    for operation, body in bodies.items():
        assert _parsed(operation, body, patched=True) == _parsed(operation, body, patched=False)


def test_another_service_s_attribute_value_is_left_to_botocore() -> None:
    # SimpleDB-like shapes elsewhere: EC2's AttributeValue is a structure with a `Value` member
    ec2 = botocore.session.get_session().get_service_model("ec2")
    assert ec2.shape_for("AttributeValue").type_name == "structure"
    from local_stack.botocore_wire import _is_dynamodb_attribute_value

    assert not _is_dynamodb_attribute_value(ec2.shape_for("AttributeValue"))
    assert _is_dynamodb_attribute_value(_dynamodb.shape_for("AttributeValue"))


_invalid = st.one_of(
    st.just({"S": 1}),
    st.just({"N": None}),
    st.just({}),
    st.just({"S": "a", "N": "1"}),
    st.just({"X": "y"}),
    st.just({"SS": "not a list"}),
    st.just({"M": {"k": {"BOOL": "no"}}}),
    st.just("text"),
)
_maybe_invalid = st.one_of(_values, _values, _invalid)
_request_maps = st.one_of(
    st.dictionaries(_text, _values, max_size=4), st.dictionaries(_text, _maybe_invalid, max_size=3)
)


def _request(operation: str, params: dict[str, Any], patched: bool) -> Any:
    validator, serializer = ParamValidator(), JSONSerializer()
    if not patched:
        validator._validate_map = lambda p, shape, errors, name: _botocore_validate_map(  # type: ignore[method-assign]
            validator, p, shape, errors, name
        )
        serializer._serialize_type_map = lambda out, value, shape, key: _botocore_serialize_map(  # type: ignore[method-assign]
            serializer, out, value, shape, key
        )
    model = _dynamodb.operation_model(operation)
    report = validator.validate(params, model.input_shape)
    if report.has_errors():
        return "invalid", report.generate_report()
    return serializer.serialize_to_request(params, model)["body"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(key=_request_maps, values=_request_maps, item=_request_maps, keys=st.lists(_request_maps, max_size=2))
def test_a_request_is_validated_and_serialized_as_botocore_does(key, values, item, keys) -> None:
    update = {"TableName": "t", "Key": key, "UpdateExpression": "SET a = :v", "ExpressionAttributeValues": values}
    put = {"TableName": "t", "Item": item}
    batch = {"RequestItems": {"t": {"Keys": keys}}}
    for operation, params in (("UpdateItem", update), ("PutItem", put), ("BatchGetItem", batch)):
        assert _request(operation, params, patched=True) == _request(operation, params, patched=False)
