"""Field values and the field-level diff (SPEC: only fields whose value actually changed produce activities)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

FieldValue = str | int | float | bool | None


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
