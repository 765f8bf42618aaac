"""The HTTP API's requests as typed models, parsed strictly: an unknown key, a wrong type or a bad value is an
`InvalidRequest` that names it (HTTP 400), before any service runs.

Plain dataclasses with their own checks, like the queue contracts (`contracts.py`): the API needs a handful of
fields, and a validation library would be one more dependency to ship, pin and audit (docs/decisions.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from account_sync.domain.fields import FieldValue, UnstorableValue, storable_value
from account_sync.services.convert_person import ConversionRequest
from account_sync.services.history import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest
from account_sync.services.refusals import InvalidRequest

MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_LENGTH = 32_000  # Salesforce's long text area (Account.Description)
_RECORD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_LIMIT = re.compile(r"^[0-9]{1,4}$")  # ASCII digits only: str.isdigit() takes "²", which int() refuses

# Convert Person: the fields a caller may give, with Salesforce's lengths (Salesforce checks the rest).
OPPORTUNITY_TEXT = {"Name": 120, "StageName": 255}
CONTACT_TEXT = {"FirstName": 40, "LastName": 80, "Email": 80}
ACCOUNT_NAME_LENGTH = 255


def invalid(message: str) -> InvalidRequest:
    return InvalidRequest("INVALID_REQUEST", message)


def record_id(value: str | None, name: str) -> str:
    """A contact, person or account id from the path: a Salesforce Id or a store id."""
    if not isinstance(value, str) or not _RECORD_ID.match(value):
        raise invalid(f"{name} must be 1 to 128 letters, digits or _ . : -")
    return value


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise invalid("the Idempotency-Key header must be 1 to 255 visible ASCII characters")
    return value


def json_object(body: str | None) -> dict[str, Any]:
    if body is None or not body.strip():
        raise invalid("the request needs a JSON object body")
    if len(body.encode()) > MAX_BODY_BYTES:
        raise invalid(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidRequest("INVALID_JSON", "the body is nested too deep") from None
    except ValueError as exc:
        raise InvalidRequest("INVALID_JSON", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise invalid("the body must be a JSON object")
    return payload


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _only_keys(payload: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise invalid(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def field_value(value: Any, name: str) -> FieldValue:
    """A value as an account field holds it: text, number, true/false, or null (a blank), and one DynamoDB can
    store (`storable_value`: 38 significant digits, 1E-130..9.9999E+125, no NaN or Infinity, valid Unicode):
    anything else is refused here (VALUE_NOT_STORABLE), never queued to fail at its write."""
    if isinstance(value, str) and len(value) > MAX_TEXT_LENGTH:
        raise invalid(f"{name} is longer than {MAX_TEXT_LENGTH} characters")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise invalid(f"{name} must be a string, a number, true/false or null")
    try:
        return storable_value(value, name)
    except UnstorableValue as exc:
        raise InvalidRequest("VALUE_NOT_STORABLE", f"{name}: {exc.problem}") from None


def _text(payload: Mapping[str, Any], key: str, where: str, max_length: int, required: bool) -> str | None:
    value = payload.get(key)
    if value is None:
        if required:
            raise invalid(f"{where}.{key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{where}.{key} must be a non-empty string")
    if len(value) > max_length:
        raise invalid(f"{where}.{key} is longer than {max_length} characters")
    return value


def _object(payload: Mapping[str, Any], key: str, required: bool) -> dict[str, Any]:
    value = payload.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{key} must be a JSON object")
    return value


# --- POST /contacts/{contact_id}/account-edits --------------------------------------------------------------


@dataclass(frozen=True)
class LocalEditBody:
    field: str
    value: FieldValue

    @classmethod
    def parse(cls, body: str | None) -> LocalEditBody:
        payload = json_object(body)
        _only_keys(payload, {"field", "value"}, "body")
        name = payload.get("field")
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise invalid("field must be the API name of an account field, e.g. Industry")
        if "value" not in payload:
            raise invalid("value is required (null blanks the field)")
        return cls(field=name, value=field_value(payload["value"], "value"))


# --- GET .../activities, .../suppressed-changes --------------------------------------------------------------


def page_request(query: Mapping[str, str] | None) -> PageRequest:
    query = query or {}
    _only_keys(query, {"limit", "next_token"}, "query string")
    raw_limit = query.get("limit")
    limit = DEFAULT_PAGE_SIZE
    if raw_limit is not None:
        if not _LIMIT.match(raw_limit) or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
            raise invalid(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
        limit = int(raw_limit)
    return PageRequest(limit=limit, next_token=query.get("next_token") or None)


# --- POST /people/{person_id}/convert ----------------------------------------------------------------------


def conversion_request(body: str | None, synced_fields: tuple[str, ...]) -> ConversionRequest:
    """`confirm: true` is required: Convert Person writes to Salesforce, and a request that does not say so in
    as many words is refused (CONFIRMATION_REQUIRED)."""
    payload = json_object(body)
    _only_keys(payload, {"confirm", "account", "contact", "opportunity"}, "body")
    if payload.get("confirm") is not True:
        raise InvalidRequest(
            "CONFIRMATION_REQUIRED",
            'Convert Person creates an Account, a Contact and an Opportunity in Salesforce: send "confirm": true '
            "if you are sure (if you are not sure, you should probably not use it)",
        )
    return ConversionRequest(
        account=_account(_object(payload, "account", required=True), synced_fields),
        opportunity=_opportunity(_object(payload, "opportunity", required=True)),
        contact=_contact(_object(payload, "contact", required=False)),
    )


def _account(account: Mapping[str, Any], synced_fields: tuple[str, ...]) -> dict[str, FieldValue]:
    _only_keys(account, {"Name", *synced_fields}, "account")
    values = {name: field_value(value, f"account.{name}") for name, value in account.items()}
    values["Name"] = _text(account, "Name", "account", ACCOUNT_NAME_LENGTH, required=True)
    return values


def _opportunity(opportunity: Mapping[str, Any]) -> dict[str, FieldValue]:
    _only_keys(opportunity, {*OPPORTUNITY_TEXT, "CloseDate", "Amount"}, "opportunity")
    values: dict[str, FieldValue] = {
        name: _text(opportunity, name, "opportunity", length, required=True)
        for name, length in OPPORTUNITY_TEXT.items()
    }
    close_date = opportunity.get("CloseDate")
    if not isinstance(close_date, str) or not _is_date(close_date):
        raise invalid("opportunity.CloseDate is required, as YYYY-MM-DD")
    values["CloseDate"] = close_date
    if opportunity.get("Amount") is not None:
        amount = opportunity["Amount"]
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
            raise invalid("opportunity.Amount must be a number >= 0")
        values["Amount"] = amount
    return values


def _is_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _contact(contact: Mapping[str, Any]) -> dict[str, FieldValue]:
    _only_keys(contact, set(CONTACT_TEXT), "contact")
    values: dict[str, FieldValue] = {}
    for name, length in CONTACT_TEXT.items():
        text = _text(contact, name, "contact", length, required=False)
        if text is not None:
            values[name] = text
    return values
