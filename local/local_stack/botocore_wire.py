"""The in-process functions' botocore takes DynamoDB's wire-form AttributeValues as they are (the local runtime
applies it; on AWS nothing here runs).

Profiled in the functions' process on the push bench's fan-out (py-spy, 2026-12-05): a fifth of the fan-out's CPU
was botocore's response parser walking every attribute of every item of a BatchGetItem or a Query page through the
AttributeValue shape, member by member, to give back the same dicts; and each request's attribute values were
walked twice more, to validate them and to serialize them, a tenth of a contact write's CPU. A map of
AttributeValues that are all in their wire form (`moto_fixes.is_wire_attribute_value`: one type key, strings,
booleans, lists and maps of such; no binary, which botocore encodes and decodes) is taken as it is; anything else
takes botocore's path. botocore's JSON parser and serializer have no handler of their own for strings, numbers and
booleans, so their walks give such a map back unchanged, and its validator finds nothing to report in it (the
DynamoDB model sets no minimum on these shapes): a Hypothesis test compares each with botocore's own
(`test_local_botocore_wire.py`).
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_account_sync_wire"
_DYNAMODB_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


@functools.lru_cache(maxsize=64)
def _is_dynamodb_attribute_value(shape: Any) -> bool:
    """DynamoDB's (and DynamoDB Streams') AttributeValue union, by its members: another service's shape of that
    name is parsed by botocore as it is."""
    return getattr(shape, "type_name", None) == "structure" and set(shape.members) == _DYNAMODB_MEMBERS


def is_wire_attribute_map(shape: Any, value: Any) -> bool:
    """A map shape of DynamoDB AttributeValues, and a value of it whose every member is in its wire form."""
    from local_stack.moto_fixes import is_wire_attribute_value

    value_shape = shape.value
    return (
        getattr(value_shape, "name", None) == "AttributeValue"
        and type(value) is dict
        and _is_dynamodb_attribute_value(value_shape)
        and all(type(name) is str and is_wire_attribute_value(member) for name, member in value.items())
    )


def apply_botocore_wire_speedup() -> None:
    """Patch botocore's JSON response parser, its JSON serializer and its parameter validator (idempotent)."""
    from botocore.parsers import BaseJSONParser
    from botocore.serialize import JSONSerializer
    from botocore.validate import ParamValidator

    handle_map = BaseJSONParser._handle_map
    if getattr(handle_map, _MARK, False):
        return

    @functools.wraps(handle_map)
    def handle_wire_maps(self: Any, shape: Any, value: Any) -> Any:
        if is_wire_attribute_map(shape, value):
            return dict(value)
        return handle_map(self, shape, value)

    serialize_map = JSONSerializer._serialize_type_map

    @functools.wraps(serialize_map)
    def serialize_wire_maps(self: Any, serialized: Any, value: Any, shape: Any, key: Any) -> None:
        if self.MAP_TYPE is dict and is_wire_attribute_map(shape, value):
            serialized[key] = dict(value)
            return
        serialize_map(self, serialized, value, shape, key)

    validate_map = ParamValidator._validate_map

    @functools.wraps(validate_map)
    def validate_wire_maps(self: Any, params: Any, shape: Any, errors: Any, name: str) -> None:
        if is_wire_attribute_map(shape, params):
            return  # nothing botocore would report
        validate_map(self, params, shape, errors, name)

    setattr(handle_wire_maps, _MARK, True)
    BaseJSONParser._handle_map = handle_wire_maps  # type: ignore[method-assign]
    JSONSerializer._serialize_type_map = serialize_wire_maps  # type: ignore[method-assign]
    ParamValidator._validate_map = validate_wire_maps  # type: ignore[method-assign]
