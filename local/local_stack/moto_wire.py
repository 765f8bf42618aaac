"""moto's DynamoDB requests parsed and its results converted without walking values that are already plain (a patch
applied in moto's process with `moto_fixes`, which already writes wire-form items as they are in responses).

Profiled on the push bench's fan-out (2026-12-05), about a tenth of the moto server's CPU went to two generic walks:
* the request parser walks every AttributeValue of a request (an UpdateItem's values, a BatchGetItem's keys)
  member by member through botocore's shape, to give back the same dicts: a map of AttributeValues that are already
  in their wire form (`is_wire_attribute_value`: no binary, which the parser decodes) is taken as it is;
* `DynamoResult` converts a Query's or a BatchGetItem's result with `dynamo_to_dict`, which asks each string and
  dict of every item whether it is a datetime, a `DynamoType` or has a `to_json`: here plain dicts, lists and
  scalars are copied by their type and a non-binary `DynamoType` becomes `{type: value}`, as moto's function does;
  anything else goes through it.
Both give what moto's own path gives (a Hypothesis test compares them). Imported by `moto_fixes` when it patches.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

_MARK = "_account_sync_wire"
_PLAIN = frozenset({str, bool, int, float, type(None)})


def plain_copy(value: Any, convert: Any) -> Any:
    """`convert(value)` (moto's `dynamo_to_dict`) for what it copies without converting (dicts, an item's
    attribute dict, lists, scalars) and for a `DynamoType` that is not binary (`{type: its value, converted}`);
    `convert` for anything else (binary values, datetimes, objects with `to_json`)."""
    kind = type(value)
    if kind is dict or kind is LimitedSizeDict:
        return {name: plain_copy(member, convert) for name, member in value.items()}
    if kind is list:
        return [plain_copy(member, convert) for member in value]
    if kind in _PLAIN:
        return value
    if kind is DynamoType and value.type not in ("B", "BS"):
        return {value.type: plain_copy(value.value, convert)}
    return convert(value)


def apply_wire_speedups() -> None:
    """Patch moto's JSON request parser and `DynamoResult`'s conversion (idempotent)."""
    from moto.core.parse import BaseJSONParser
    from moto.dynamodb import responses

    from local_stack.moto_fixes import is_wire_attribute_value

    parse_map = BaseJSONParser._parse_map
    if getattr(parse_map, _MARK, False):
        return

    @functools.wraps(parse_map)
    def parse_wire_maps(self: Any, shape: Any, value: Any) -> Any:
        if (
            getattr(shape.value, "name", None) == "AttributeValue"
            and self.MAP_TYPE is dict
            and type(value) is dict
            and self.operation_model.service_model.service_name in ("dynamodb", "dynamodbstreams")
            and all(type(name) is str and is_wire_attribute_value(member) for name, member in value.items())
        ):
            return dict(value)
        return parse_map(self, shape, value)

    convert = responses.dynamo_to_dict

    @functools.wraps(convert)
    def dynamo_to_dict(value: Any) -> Any:
        return plain_copy(value, convert)

    setattr(parse_wire_maps, _MARK, True)
    BaseJSONParser._parse_map = parse_wire_maps  # type: ignore[method-assign]
    responses.dynamo_to_dict = dynamo_to_dict  # type: ignore[assignment]
