"""Issue 10, 2.6: one rule says which field values DynamoDB can store, and every edge uses it.

DynamoDB refuses a number with more than 38 significant digits, a magnitude outside 1E-130..9.9999E+125 (zero is
fine), NaN and Infinity, and an item over 400 KB ("Supported data types"). A value that breaks the rule is refused
where it enters, with a reason that names the field and the problem, never the value.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from account_sync.domain.fields import MAX_TEXT_BYTES, UnstorableValue, storable_value

SECRET = "jane.doe@example.com"


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        0.0,
        -0.0,
        1,
        -1,
        10**37,
        int("9" * 38),  # 38 significant digits: the most
        10**125,  # one significant digit, large magnitude
        Decimal("9.9999E+125"),
        Decimal("9." + "9" * 37 + "E+125"),  # the largest, 38 digits (no rounding on the way)
        Decimal("1E-130"),  # the smallest magnitude
        Decimal("-1E-130"),
        1e-129,
        12.5,
        "",
        "x" * MAX_TEXT_BYTES,
        "é" * (MAX_TEXT_BYTES // 2),
    ],
    ids=repr,
)
def test_a_value_dynamodb_stores_is_kept_as_it_is(value):
    assert storable_value(value, "AnnualRevenue") == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (int("9" * 39), "more than 38 significant digits"),
        (int("1" * 38) * 10 + 1, "more than 38 significant digits"),
        (Decimal("1.00000000000000000000000000000000000001"), "more than 38 significant digits"),
        (10**126, "outside DynamoDB's range"),
        (Decimal("1E+126"), "outside DynamoDB's range"),
        (-(10**126), "outside DynamoDB's range"),
        (Decimal("1E-131"), "outside DynamoDB's range"),
        (1e-200, "outside DynamoDB's range"),
        (float("nan"), "not a number DynamoDB can store"),
        (float("inf"), "not a number DynamoDB can store"),
        (float("-inf"), "not a number DynamoDB can store"),
        (Decimal("NaN"), "not a number DynamoDB can store"),
        ("x" * (MAX_TEXT_BYTES + 1), "larger than a DynamoDB item"),
        ("é" * (MAX_TEXT_BYTES // 2 + 1), "larger than a DynamoDB item"),
        ("a\ud800b", "not valid Unicode"),
        (["a list"], "unsupported type list"),
        ({"a": "map"}, "unsupported type dict"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_a_value_dynamodb_refuses_is_refused_naming_the_field_and_the_problem(value, problem):
    with pytest.raises(UnstorableValue) as refused:
        storable_value(value, "AnnualRevenue")
    assert refused.value.field == "AnnualRevenue"
    assert str(refused.value).startswith("AnnualRevenue: ") and problem in str(refused.value)


@pytest.mark.parametrize("value", [SECRET + "\ud800", int("7" * 50), SECRET * 30_000])
def test_the_reason_never_holds_the_value(value):
    with pytest.raises(UnstorableValue) as refused:
        storable_value(value, "Description")
    assert SECRET not in str(refused.value) and "777" not in str(refused.value)
