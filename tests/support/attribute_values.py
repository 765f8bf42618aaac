"""Hypothesis strategies for DynamoDB AttributeValues, every type and nested maps and lists, for the tests that
check a local speed-up against the path it replaces (botocore's, moto's): one generator, varied by what each
path takes (binary as base64 text on the wire, as bytes in moto's DynamoType)."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

SHORT_TEXT = st.text(max_size=4)
SMALL_NUMBERS = st.integers(-999, 999).map(str)
BASE64_BINARY = st.binary(max_size=4).map(lambda b: base64.b64encode(b).decode())


def attribute_values(
    *,
    text: st.SearchStrategy[str] = SHORT_TEXT,
    numbers: st.SearchStrategy[str] = SMALL_NUMBERS,
    binary: st.SearchStrategy[Any] = BASE64_BINARY,
    nulls: st.SearchStrategy[bool] = st.just(True),  # noqa: B008 - a constant strategy
    binary_sets: bool = True,
    max_leaves: int = 10,
) -> st.SearchStrategy[dict[str, Any]]:
    """Values of every type, scalars and sets at the leaves, `L` and `M` nesting them."""
    scalars = [
        text.map(lambda s: {"S": s}),
        numbers.map(lambda n: {"N": n}),
        binary.map(lambda b: {"B": b}),
        st.booleans().map(lambda b: {"BOOL": b}),
        nulls.map(lambda b: {"NULL": b}),
        st.lists(text, min_size=1, max_size=3, unique=True).map(lambda s: {"SS": s}),
        st.lists(numbers, min_size=1, max_size=3, unique=True).map(lambda s: {"NS": s}),
    ]
    if binary_sets:
        scalars.append(st.lists(binary, min_size=1, max_size=3, unique=True).map(lambda s: {"BS": s}))
    return st.recursive(
        st.one_of(scalars),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda members: {"L": members}),
            st.dictionaries(text, inner, max_size=3).map(lambda members: {"M": members}),
        ),
        max_leaves=max_leaves,
    )
