"""The pynamodb models describe the same tables as template.yaml: keys, key types, indexes and projections.

Tests build their moto tables from the models; the deployed tables come from the template. If the two drift,
the tests pass against a table that production does not have. `Model._get_schema()` is what pynamodb itself
sends to CreateTable, so it is the model's side of the comparison.
"""

from __future__ import annotations

from typing import Any

import pytest
from account_sync.adapters.dynamodb_models import ALL_MODELS
from pynamodb.models import Model

from tests.support.cfn_template import load_template


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, Any]]:
    resources = load_template()["Resources"]
    return {lid: res["Properties"] for lid, res in resources.items() if res["Type"] == "AWS::DynamoDB::Table"}


def _keys(key_schema: list[dict[str, str]]) -> dict[str, str]:
    return {key["AttributeName"]: key["KeyType"] for key in key_schema}


def _attribute_types(definitions: list[dict[str, str]]) -> dict[str, str]:
    return {definition["AttributeName"]: definition["AttributeType"] for definition in definitions}


def _template_indexes(table: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        index["IndexName"]: {
            "keys": _keys(index["KeySchema"]),
            "projection_type": index["Projection"]["ProjectionType"],
            "non_key_attributes": sorted(index["Projection"].get("NonKeyAttributes", [])),
        }
        for index in table.get(kind, [])
    }


def _model_indexes(schema: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        index["index_name"]: {
            "keys": _keys(index["key_schema"]),
            "projection_type": index["projection"]["ProjectionType"],
            "non_key_attributes": sorted(index["projection"].get("NonKeyAttributes", [])),
        }
        for index in schema[kind]
    }


def test_every_table_has_a_model_and_every_model_a_table(tables: dict[str, dict[str, Any]]) -> None:
    assert set(ALL_MODELS) == set(tables)


@pytest.mark.parametrize("table_id", sorted(ALL_MODELS))
def test_model_keys_match_the_table(table_id: str, tables: dict[str, dict[str, Any]]) -> None:
    # given the table of the template and the schema pynamodb would create for the model
    table, schema = tables[table_id], ALL_MODELS[table_id]._get_schema()

    # then the primary keys, and the types of every key attribute (table and indexes), are the same
    assert _keys(schema["key_schema"]) == _keys(table["KeySchema"])
    model_types = _attribute_types(schema["attribute_definitions"])
    for index in schema["global_secondary_indexes"] + schema["local_secondary_indexes"]:
        model_types.update(_attribute_types(index["attribute_definitions"]))
    assert model_types == _attribute_types(table["AttributeDefinitions"])


@pytest.mark.parametrize("table_id", sorted(ALL_MODELS))
def test_model_indexes_match_the_table(table_id: str, tables: dict[str, dict[str, Any]]) -> None:
    table, schema = tables[table_id], ALL_MODELS[table_id]._get_schema()
    for template_kind, model_kind in (
        ("GlobalSecondaryIndexes", "global_secondary_indexes"),
        ("LocalSecondaryIndexes", "local_secondary_indexes"),
    ):
        # names, keys, projection type and projected attributes (INCLUDE)
        assert _model_indexes(schema, model_kind) == _template_indexes(table, template_kind), template_kind


@pytest.mark.parametrize("table_id", sorted(ALL_MODELS))
def test_projected_and_ttl_attributes_exist_on_the_model(table_id: str, tables: dict[str, dict[str, Any]]) -> None:
    table, model = tables[table_id], ALL_MODELS[table_id]
    attributes = {attribute.attr_name: attribute for attribute in model.get_attributes().values()}
    for index in table.get("GlobalSecondaryIndexes", []) + table.get("LocalSecondaryIndexes", []):
        unknown = set(index["Projection"].get("NonKeyAttributes", [])) - set(attributes)
        assert not unknown, f"{index['IndexName']} projects attributes the model does not have: {unknown}"
    ttl = table.get("TimeToLiveSpecification")
    if ttl:
        # DynamoDB expires an item only when the attribute is a number of epoch seconds
        assert attributes[ttl["AttributeName"]].attr_type == "N", ttl["AttributeName"]


def test_models_are_pynamodb_models() -> None:
    assert all(issubclass(model, Model) for model in ALL_MODELS.values())
