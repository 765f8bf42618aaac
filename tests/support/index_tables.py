"""A table with one global secondary index `by_g` for the Hypothesis tests that compare the local stack's moto
query patches with moto's own answers: the table and index key shapes each test draws, made one way."""

from __future__ import annotations

import itertools
from typing import Any

_TABLES = itertools.count()


def create_index_table(client: Any, schema: dict[str, Any], prefix: str) -> str:
    """Key `pk` (S) and, with `schema["range"]`, `sk` (N); index `by_g` on `g` (`g_type`) and, with `index_range`, `r`
    (`r_type`, S unless given), projecting `projection` (INCLUDE: `payload`). Returns the new table's name."""
    name = f"{prefix}{next(_TABLES)}"
    key = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "g", "AttributeType": schema["g_type"]},
    ]
    if schema["range"]:
        key.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "N"})
    index_key = [{"AttributeName": "g", "KeyType": "HASH"}]
    if schema["index_range"]:
        index_key.append({"AttributeName": "r", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "r", "AttributeType": schema.get("r_type", "S")})
    projection: dict[str, Any] = {"ProjectionType": schema["projection"]}
    if schema["projection"] == "INCLUDE":
        projection["NonKeyAttributes"] = ["payload"]
    client.create_table(
        TableName=name,
        KeySchema=key,
        AttributeDefinitions=attributes,
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": index_key, "Projection": projection}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
