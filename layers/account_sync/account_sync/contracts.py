"""The messages on the queues: one definition for the producer and the consumer.

Every body is JSON with a `type` and a `schema` version. Parsing is strict: a body that is not what its type
says raises `MalformedMessage` with the reason, so the consumer sets that one message aside in the dead-letter
queue with its reason and the rest of the batch, its own message group included, goes on (`queue_records`).
A reason names the field and the problem, never a value: it goes to the logs and to the dead-letter queue's
message attributes, and values are account and contact data. Field values are checked against what DynamoDB
can store (`domain.fields.storable_value`), so that a message never fails at its write instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import AccountChange
from account_sync.domain.fields import FieldValue, UnstorableValue, storable_value
from account_sync.domain.records import AccountVersion, ChangeOrigin, ContactVersion, LocalEdit, SyncPath
from account_sync.domain.timestamps import InvalidTimestamp, normalize_timestamp

SCHEMA_VERSION = 1
_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_STORE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class MalformedMessage(ValueError):
    """A queue message that cannot be applied as it is; the reason says why (field names, never values)."""


# --- the account-changes queue (FIFO, grouped by account) ------------------------------------------


@dataclass(frozen=True)
class AccountChangeMessage:
    """A Salesforce version of an account. `resync_id`: read again by an operator's resync (it is in the
    deduplication id, so that the queue never drops it as the copy of the fetch's message of the same version); a
    version the account already applied is then diffed again against its contacts (services/fan_out.py). `path`:
    which path read it (push, fetch, sweep, resync); not in the deduplication id: the same version by two paths is
    one change."""

    version: AccountVersion
    resync_id: str | None = None
    path: SyncPath | None = None
    type = "account_change"

    @property
    def group_id(self) -> str:
        return self.version.account_id

    @property
    def deduplication_id(self) -> str:
        resync = (self.resync_id,) if self.resync_id else ()
        return _dedup_id(self.type, self.version.account_id, self.version.system_modstamp, *resync)

    def to_body(self) -> str:
        payload: dict[str, Any] = {"version": _account_version_json(self.version)}
        if self.resync_id is not None:
            payload["resync_id"] = self.resync_id
        return _dump(payload | _path_json(self.path), self.type)


@dataclass(frozen=True)
class ChangeSegmentMessage:
    """One planned slice of a large account's change (a Salesforce version or a local edit, `AccountChange`): the
    contacts with `after < contact_id <= through` (no `through`: to the end of the account, so that a contact the
    index did not show yet when the plan was cut still falls in a range). It carries the change's activity decision,
    taken once when the change was accepted. The deduplication id names the change, the plan and the position: a
    plan queued again after a crash is a new plan (the account records only the one queued whole)."""

    change: AccountChange
    plan_id: str
    index: int
    total: int
    after_contact_id: str | None
    through_contact_id: str | None
    activity_logging: ActivityLogging
    type = "change_segment"

    @property
    def segment_id(self) -> str:
        return f"{self.plan_id}:{self.index}"

    @property
    def group_id(self) -> str:
        """A group of its own (`<account>#<plan>#<index>`): Lambda runs an account's segments side by side, so a
        1M-contact account is not 2,000 segments one after another (issue 11, item 5). Their order is kept by data:
        a segment reaching a contact that lacks a change accepted before its own first writes that change onto it,
        with its activities (services/fan_out.py, `_caught_up`), and every contact write lands only on the contact
        as it was read (docs/decisions.md, "One write unit per contact, and a large account's segments side by
        side", amended 2026-12-05)."""
        return f"{self.change.account_id}#{self.plan_id}#{self.index}"

    @property
    def deduplication_id(self) -> str:
        ref = self.change.ref
        return _dedup_id(
            self.type, self.change.account_id, ref.origin.value, ref.stamp, ref.change_id or "", self.segment_id
        )

    def to_body(self) -> str:
        return _dump(
            {
                "change": _account_change_json(self.change),
                "plan_id": self.plan_id,
                "index": self.index,
                "total": self.total,
                "after_contact_id": self.after_contact_id,
                "through_contact_id": self.through_contact_id,
                "activity_logging": self.activity_logging.value,
            },
            self.type,
        )


CONTACTS_PER_MESSAGE = 100


def contact_group(version: ContactVersion) -> str:
    """A contact change travels with the account it joins (or, deleted, leaves), so that it never races that
    account's fan-out. A contact without an account is its own group (its id): no account's order to keep, and
    a shared group would put every account-less contact behind the first one that fails."""
    return version.account_id or version.contact_id


@dataclass(frozen=True)
class ContactChangesMessage:
    """Contact versions of one message group (one account), up to CONTACTS_PER_MESSAGE: a bulk load of
    20,000 contacts is a few hundred messages, not 20,000."""

    versions: tuple[ContactVersion, ...]
    path: SyncPath | None = None  # which path read them; not in the deduplication id
    type = "contact_changes"

    def __post_init__(self) -> None:
        if not self.versions:
            raise MalformedMessage("a contact_changes message holds at least one version")
        groups = {contact_group(v) for v in self.versions}
        if len(groups) != 1:
            raise MalformedMessage(f"contact versions of {len(groups)} message groups in one message")

    @property
    def group_id(self) -> str:
        return contact_group(self.versions[0])

    @property
    def deduplication_id(self) -> str:
        return _dedup_id(self.type, *(f"{v.contact_id}@{v.system_modstamp}" for v in self.versions))

    def to_body(self) -> str:
        return _dump(
            {
                "versions": [
                    {
                        "contact_id": v.contact_id,
                        "system_modstamp": v.system_modstamp,
                        "is_deleted": v.is_deleted,
                        "account_id": v.account_id,
                        "first_name": v.first_name,
                        "last_name": v.last_name,
                        "email": v.email,
                    }
                    for v in self.versions
                ]
            }
            | _path_json(self.path),
            self.type,
        )


@dataclass(frozen=True)
class LocalEditMessage:
    """A local edit, queued with the account's Salesforce changes so that it applies in their order."""

    edit: LocalEdit
    type = "local_edit"

    @property
    def group_id(self) -> str:
        return self.edit.account_id

    @property
    def deduplication_id(self) -> str:
        return _dedup_id(self.type, self.edit.edit_id)

    def to_body(self) -> str:
        return _dump({"edit": _local_edit_json(self.edit)}, self.type)


ChangeMessage = AccountChangeMessage | ChangeSegmentMessage | ContactChangesMessage | LocalEditMessage


def parse_change_message(body: str) -> ChangeMessage:
    payload = _load(body)
    kind = payload.get("type")
    if kind == AccountChangeMessage.type:
        return AccountChangeMessage(
            _account_version(payload.get("version")), _optional_id(payload, "resync_id"), _path(payload)
        )
    if kind == ChangeSegmentMessage.type:
        index, total = _segment_position(payload)
        return ChangeSegmentMessage(
            change=_account_change(payload.get("change")),
            plan_id=_str(payload, "plan_id"),
            index=index,
            total=total,
            after_contact_id=_optional_id(payload, "after_contact_id"),
            through_contact_id=_optional_id(payload, "through_contact_id"),
            activity_logging=_activity_logging(payload),
        )
    if kind == ContactChangesMessage.type:
        raw_versions = payload.get("versions")
        if not isinstance(raw_versions, list) or not raw_versions:
            raise MalformedMessage("versions must be a non-empty list")
        return ContactChangesMessage(tuple(_contact_version(raw) for raw in raw_versions), _path(payload))
    if kind == LocalEditMessage.type:
        return LocalEditMessage(_local_edit(payload.get("edit")))
    raise MalformedMessage(f"unknown message type {_quoted_name(kind)}")


# --- the activity queue (standard) -----------------------------------------------------------------


@dataclass(frozen=True)
class ContactFieldChange:
    contact_id: str
    field: str
    old: FieldValue
    new: FieldValue


@dataclass(frozen=True)
class ActivityBatchMessage:
    """Change Data Value activities to write: one per contact per changed field, all from one change."""

    account_id: str
    origin: ChangeOrigin
    system_modstamp: str
    changes: tuple[ContactFieldChange, ...]
    change_id: str | None = None  # a local edit's id: part of its activities' keys
    path: SyncPath | None = None  # which path applied the change: on the activities, in no key
    type = "change_data_value_batch"

    def to_body(self) -> str:
        payload: dict[str, Any] = {
            "account_id": self.account_id,
            "origin": self.origin.value,
            "system_modstamp": self.system_modstamp,
            "changes": [
                {"contact_id": c.contact_id, "field": c.field, "old": c.old, "new": c.new} for c in self.changes
            ],
        }
        if self.change_id is not None:
            payload["change_id"] = self.change_id
        return _dump(payload | _path_json(self.path), self.type)


def parse_activity_batch(body: str) -> ActivityBatchMessage:
    payload = _load(body)
    if payload.get("type") != ActivityBatchMessage.type:
        raise MalformedMessage(f"unknown message type {_quoted_name(payload.get('type'))}")
    origin_name = _str(payload, "origin")
    try:
        origin = ChangeOrigin(origin_name)
    except ValueError as exc:
        raise MalformedMessage(f"unknown origin {_quoted_name(origin_name)}") from exc
    raw_changes = payload.get("changes")
    if not isinstance(raw_changes, list) or not raw_changes:
        raise MalformedMessage("changes must be a non-empty list")
    changes = []
    for position, raw in enumerate(raw_changes):
        if not isinstance(raw, dict):
            raise MalformedMessage(f"changes[{position}] must be an object")
        changes.append(
            ContactFieldChange(
                contact_id=_id(raw, "contact_id"),
                field=_field_name(_str(raw, "field")),
                old=_field_value(raw.get("old"), "old"),
                new=_field_value(raw.get("new"), "new"),
            )
        )
    return ActivityBatchMessage(
        account_id=_id(payload, "account_id"),
        origin=origin,
        system_modstamp=_timestamp(payload, "system_modstamp"),
        changes=tuple(changes),
        change_id=_optional_id(payload, "change_id"),
        path=_path(payload),
    )


# --- helpers ---------------------------------------------------------------------------------------


def _dump(payload: dict[str, Any], kind: str) -> str:
    return json.dumps({"type": kind, "schema": SCHEMA_VERSION, **payload}, separators=(",", ":"))


def _load(body: str) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except RecursionError:
        raise MalformedMessage("body is nested too deep to be a message") from None
    except (TypeError, ValueError) as exc:
        # json's messages give a position ("Expecting value: line 1 column 5 (char 4)"), never the text
        reason = f"{exc.msg} at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise MalformedMessage(f"body is not JSON: {reason}") from None
    if not isinstance(payload, dict):
        raise MalformedMessage("body must be a JSON object")
    schema = payload.get("schema")
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        shown = schema if isinstance(schema, int) and not isinstance(schema, bool) else "not an integer"
        raise MalformedMessage(f"unsupported schema {shown} (expected {SCHEMA_VERSION})")
    return payload


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _quoted_name(value: object) -> str:
    """A received type or enum name, quoted only when it has the shape of one: anything else may be data."""
    return repr(value) if isinstance(value, str) and _NAME.match(value) else "(not a name)"


def _path_json(path: SyncPath | None) -> dict[str, str]:
    return {"path": path.value} if path is not None else {}


def _path(payload: Mapping[str, Any]) -> SyncPath | None:
    """Optional: a message queued before paths were has none."""
    raw = payload.get("path")
    if raw is None:
        return None
    try:
        return SyncPath(raw)
    except ValueError:
        raise MalformedMessage(f"unknown path {_quoted_name(raw)}") from None


def _dedup_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:64]


def _account_version_json(version: AccountVersion) -> dict[str, Any]:
    return {
        "account_id": version.account_id,
        "system_modstamp": version.system_modstamp,
        "is_deleted": version.is_deleted,
        "fields": dict(version.fields),
    }


def _account_version(raw: object) -> AccountVersion:
    if not isinstance(raw, dict):
        raise MalformedMessage("version must be an object")
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        raise MalformedMessage("version.fields must be an object")
    return AccountVersion(
        account_id=_id(raw, "account_id"),
        system_modstamp=_timestamp(raw, "system_modstamp"),
        is_deleted=_bool(raw, "is_deleted"),
        fields={_field_name(name): _field_value(value, name) for name, value in fields.items()},
    )


def _account_change_json(change: AccountChange) -> dict[str, Any]:
    accepted = {"accepted_as": change.accepted_as} if change.accepted_as is not None else {}
    if change.version is not None and change.resync_id is not None:
        return (
            {
                "origin": ChangeOrigin.RESYNC.value,
                "version": _account_version_json(change.version),
                "resync_id": change.resync_id,
            }
            | _path_json(change.path)
            | accepted
        )
    if change.version is not None:
        return {"origin": ChangeOrigin.ACCOUNT.value, "version": _account_version_json(change.version)} | _path_json(
            change.path
        )
    assert change.edit is not None
    return {
        "origin": ChangeOrigin.LOCAL.value,
        "edit": _local_edit_json(change.edit),
        "base_modstamp": change.base_modstamp,
    } | accepted


def _account_change(raw: object) -> AccountChange:
    """`accepted_as` may be absent: a segment queued before it was carried (its change then skips no joiner)."""
    if not isinstance(raw, dict):
        raise MalformedMessage("change must be an object")
    origin = raw.get("origin")
    accepted_as = _int(raw, "accepted_as", minimum=1) if "accepted_as" in raw else None
    if origin == ChangeOrigin.ACCOUNT.value:
        return AccountChange.of_version(_account_version(raw.get("version")), path=_path(raw))
    if origin == ChangeOrigin.RESYNC.value:
        version = _account_version(raw.get("version"))
        return AccountChange.of_version(version, _id(raw, "resync_id"), _path(raw), accepted_as)
    if origin == ChangeOrigin.LOCAL.value:
        return AccountChange.of_edit(_local_edit(raw.get("edit")), _timestamp(raw, "base_modstamp"), accepted_as)
    raise MalformedMessage(f"change.origin must be account, resync or local, got {_quoted_name(origin)}")


def _contact_version(raw: object) -> ContactVersion:
    if not isinstance(raw, dict):
        raise MalformedMessage("version must be an object")
    return ContactVersion(
        contact_id=_id(raw, "contact_id"),
        system_modstamp=_timestamp(raw, "system_modstamp"),
        is_deleted=_bool(raw, "is_deleted"),
        account_id=_optional_id(raw, "account_id"),
        first_name=_contact_text(raw, "first_name"),
        last_name=_contact_text(raw, "last_name"),
        email=_contact_text(raw, "email"),
    )


def _segment_position(payload: Mapping[str, Any]) -> tuple[int, int]:
    index = _int(payload, "index", minimum=0)
    total = _int(payload, "total", minimum=1)
    if index >= total:
        raise MalformedMessage(f"segment index {index} is not below total {total}")
    return index, total


def _activity_logging(payload: Mapping[str, Any]) -> ActivityLogging:
    logging = _str(payload, "activity_logging")
    try:
        return ActivityLogging(logging)
    except ValueError as exc:
        raise MalformedMessage(f"unknown activity_logging {_quoted_name(logging)}") from exc


def _local_edit_json(edit: LocalEdit) -> dict[str, Any]:
    return {
        "edit_id": edit.edit_id,
        "contact_id": edit.contact_id,
        "account_id": edit.account_id,
        "field": edit.field,
        "value": edit.value,
        "edited_at": edit.edited_at,
    }


def _local_edit(raw: object) -> LocalEdit:
    if not isinstance(raw, dict):
        raise MalformedMessage("edit must be an object")
    field = _field_name(_str(raw, "field"))
    return LocalEdit(
        edit_id=_id(raw, "edit_id"),
        contact_id=_id(raw, "contact_id"),
        account_id=_id(raw, "account_id"),
        field=field,
        value=_field_value(raw.get("value"), field),
        edited_at=_timestamp(raw, "edited_at"),
    )


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{key} must be a non-empty string, got {type(value).__name__}")
    return value


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedMessage(f"{key} must be a string or null, got {type(value).__name__}")
    return value


def _contact_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = _optional_str(raw, key)
    try:
        return storable_value(value, key)  # type: ignore[return-value]
    except UnstorableValue as exc:
        raise MalformedMessage(f"{key}: {exc.problem}") from None


def _id(raw: Mapping[str, Any], key: str) -> str:
    value = _str(raw, key)
    if not (_SALESFORCE_ID.match(value) or _STORE_ID.match(value)):
        raise MalformedMessage(f"{key} is not a valid record id")
    return value


def _optional_id(raw: Mapping[str, Any], key: str) -> str | None:
    return None if raw.get(key) is None else _id(raw, key)


def _bool(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key)
    if not isinstance(value, bool):
        raise MalformedMessage(f"{key} must be true or false, got {type(value).__name__}")
    return value


def _int(raw: Mapping[str, Any], key: str, minimum: int) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MalformedMessage(f"{key} must be an integer >= {minimum}")
    return value


def _timestamp(raw: Mapping[str, Any], key: str) -> str:
    try:
        return normalize_timestamp(_str(raw, key))
    except InvalidTimestamp:
        raise MalformedMessage(f"{key} is not an ISO-8601 datetime with a time zone") from None


_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


def _field_name(name: str) -> str:
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise MalformedMessage("invalid field name (not an API name: a letter, then letters, digits or _)")
    return name


def _field_value(value: object, name: str) -> FieldValue:
    """A value DynamoDB can store (`storable_value`); JSON gives no Decimal, so a number is an int or a float."""
    if isinstance(value, dict | list):
        raise MalformedMessage(f"field {name!r} has an unsupported value type {type(value).__name__}")
    try:
        return storable_value(value, name)
    except UnstorableValue as exc:
        raise MalformedMessage(f"field {name!r}: {exc.problem}") from None
