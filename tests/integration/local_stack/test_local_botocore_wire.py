"""botocore's DynamoDB responses parsed with `botocore_wire` are what botocore's own parser gives: BatchGetItem,
Query and GetItem bodies over random attribute values (binary ones too, which botocore decodes), and another
service's map of a shape named AttributeValue untouched."""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.session
from botocore.parsers import BaseJSONParser, create_parser
from hypothesis import given, settings
from hypothesis import strategies as st

from local_stack.botocore_wire import apply_botocore_wire_speedup

apply_botocore_wire_speedup()
_botocore_handle_map = BaseJSONParser._handle_map.__wrapped__  # type: ignore[attr-defined]
_dynamodb = botocore.session.get_session().get_service_model("dynamodb")

_text = st.text(max_size=4)
_scalars = st.one_of(
    _text.map(lambda s: {"S": s}),
    st.integers(-999, 999).map(lambda n: {"N": str(n)}),
    st.binary(max_size=4).map(lambda b: {"B": base64.b64encode(b).decode()}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(_text, min_size=1, max_size=3, unique=True).map(lambda s: {"SS": s}),
    st.lists(st.integers(0, 9).map(str), min_size=1, max_size=3, unique=True).map(lambda s: {"NS": s}),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda members: {"L": members}),
        st.dictionaries(_text, inner, max_size=3).map(lambda members: {"M": members}),
    ),
    max_leaves=10,
)
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
