"""Field values and the field-level diff (SPEC: only fields whose value actually changed produce activities)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

FieldValue = str | int | float | bool | None

# What DynamoDB can store ("Supported data types"): a number of at most 38 significant digits, zero or of a
# magnitude from 1E-130 to 9.9999...E+125, never NaN or Infinity; an item of at most 400 KB, so no text larger.
MAX_SIGNIFICANT_DIGITS = 38
SMALLEST_MAGNITUDE = Decimal("1E-130")
LARGEST_MAGNITUDE = Decimal("9." + "9" * 37 + "E+125")
MAX_TEXT_BYTES = 400 * 1024


class UnstorableValue(ValueError):
    """A field value DynamoDB would refuse. The message names the field and the problem, never the value: values
    are account data, and the reason goes to logs and to the dead-letter queue."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def storable_value(value: object, field: str) -> FieldValue:
    """The value itself if DynamoDB can store it as an account field, else UnstorableValue. The one rule that the
    HTTP API, the queue contracts and the fetch apply before anything is queued or written (issue 10, 2.6)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise UnstorableValue(field, "text is not valid Unicode (a lone surrogate)") from None
        if size > MAX_TEXT_BYTES:
            raise UnstorableValue(field, f"text of {size} bytes is larger than a DynamoDB item ({MAX_TEXT_BYTES})")
        return value
    if isinstance(value, int | float | Decimal):
        _check_number(value, field)
        return value  # type: ignore[return-value]
    raise UnstorableValue(field, f"unsupported type {type(value).__name__}")


def _check_number(value: int | float | Decimal, field: str) -> None:
    try:
        number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
    except (InvalidOperation, ValueError):
        raise UnstorableValue(field, "not a number DynamoDB can store") from None
    if not number.is_finite():
        raise UnstorableValue(field, "NaN or Infinity is not a number DynamoDB can store")
    if number.is_zero():
        return
    digits = number.as_tuple().digits
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:  # trailing zeros are not significant
        significant -= 1
    if significant > MAX_SIGNIFICANT_DIGITS:
        raise UnstorableValue(field, f"a number of more than {MAX_SIGNIFICANT_DIGITS} significant digits")
    if not SMALLEST_MAGNITUDE <= number.copy_abs() <= LARGEST_MAGNITUDE:
        raise UnstorableValue(field, "a number outside DynamoDB's range (1E-130 to 9.9999E+125 in magnitude)")


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: FieldValue
    new: FieldValue


def canonical_value(value: object) -> FieldValue:
    """Salesforce JSON and DynamoDB disagree on numbers (1000.0 vs Decimal('1000')); compare them as numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"unsupported field value type {type(value).__name__}")


def diff_fields(
    current: Mapping[str, object], incoming: Mapping[str, object], synced_fields: Iterable[str]
) -> list[FieldChange]:
    """The synced fields whose value differs, in the order of `synced_fields`.

    A field missing from `current` counts as blank (None): a contact that never had the field and now gets a
    value has changed; a blank that stays blank has not.
    """
    changes = []
    for field in synced_fields:
        old = canonical_value(current.get(field))
        new = canonical_value(incoming.get(field))
        if not _same_value(old, new):
            changes.append(FieldChange(field, old, new))
    return changes


def _same_value(old: FieldValue, new: FieldValue) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):  # True == 1 in Python, not in Salesforce
        return type(old) is type(new) and old == new
    return old == new


def value_as_text(value: FieldValue) -> str | None:
    """How an activity shows a value: as Marketo does, text; a blank stays null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
