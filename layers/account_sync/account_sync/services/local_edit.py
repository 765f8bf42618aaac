"""Local account-field edits (SPEC R3), as the HTTP API receives them: checked, then queued.

The edit is not applied here. It is queued as a `LocalEditMessage` in the account's FIFO message group, where the
fan-out applies it to every contact of the account (and to the stored account) in order with the account's
Salesforce changes: an edit made just before a Salesforce update can never land after it and survive it. What
can be checked at once is checked here, so that the caller gets a clear answer instead of a silent no-op; the
fan-out checks the account again when it applies the edit (it may have been deleted meanwhile).

An `Idempotency-Key` is remembered for a day (`IdempotencyKeys`) with a fingerprint of what it asked: the same
request again answers the same edit (queued again: the fan-out applies an edit id once), and the same key with
another field or value is refused (422 IDEMPOTENCY_KEY_REUSED), never answered 202 and then dropped by SQS's
deduplication as it was before.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from account_sync.contracts import LocalEditMessage
from account_sync.domain.fields import FieldValue, canonical_value
from account_sync.domain.records import LocalEdit
from account_sync.ports import AccountLookup, ChangePublisher, ContactLookup
from account_sync.services.refusals import Conflict, InvalidRequest, NotFound, Unprocessable


@dataclass(frozen=True)
class QueuedLocalEdit:
    edit_id: str
    contact_id: str
    account_id: str
    field: str
    edited_at: str


def new_edit_id(contact_id: str, idempotency_key: str | None) -> str:
    """A caller's `Idempotency-Key` makes a re-sent request the same edit (SQS drops the duplicate within its
    5-minute deduplication window); without one, every request is a new edit."""
    if idempotency_key:
        digest = hashlib.sha256(f"{contact_id}|{idempotency_key}".encode()).hexdigest()[:32]
        return f"edit-{digest}"
    return f"edit-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class KeyedEdit:
    """What an Idempotency-Key stands for: the edit it made, and a fingerprint of the request (no value)."""

    edit_id: str
    fingerprint: str
    account_id: str
    edited_at: str


class IdempotencyKeys(Protocol):
    def claim(self, keyed: KeyedEdit) -> KeyedEdit:
        """Remember `keyed` under its edit id unless a live one is there; the one remembered, either way."""
        ...


def request_fingerprint(contact_id: str, field: str, value: FieldValue) -> str:
    """Equal for the same request (1 and 1.0 are one number in JSON), different for any other field or value."""
    canonical = json.dumps([contact_id, field, canonical_value(value)])
    return hashlib.sha256(canonical.encode()).hexdigest()


class LocalEdits:
    def __init__(
        self,
        contacts: ContactLookup,
        accounts: AccountLookup,
        changes: ChangePublisher,
        synced_fields: tuple[str, ...],
        now: Callable[[], str],
        keys: IdempotencyKeys | None = None,
    ) -> None:
        self._contacts = contacts
        self._accounts = accounts
        self._changes = changes
        self._synced_fields = synced_fields
        self._now = now
        self._keys = keys

    def request(
        self, contact_id: str, field: str, value: FieldValue, idempotency_key: str | None = None
    ) -> QueuedLocalEdit:
        if field not in self._synced_fields:
            raise InvalidRequest(
                "FIELD_NOT_SYNCED",
                f"{field} is not a synced account field; the synced fields are {', '.join(self._synced_fields)}",
            )
        contact = self._contacts.get_contact(contact_id)
        if contact is None:
            raise NotFound("CONTACT_NOT_FOUND", f"no contact {contact_id} in the store")
        if contact.is_deleted:
            raise Conflict("CONTACT_DELETED", f"contact {contact_id} was deleted in Salesforce")
        if contact.account_id is None:
            raise Conflict(
                "CONTACT_HAS_NO_ACCOUNT", f"contact {contact_id} belongs to no account: there is no account field"
            )
        account = self._accounts.get(contact.account_id)
        if account is None or account.system_modstamp is None or account.is_deleted or contact.account_deleted:
            state = "was deleted in Salesforce" if account is not None and account.is_deleted else "is not synced yet"
            raise Conflict("ACCOUNT_NOT_SYNCED", f"account {contact.account_id} of contact {contact_id} {state}")
        edit = LocalEdit(
            edit_id=new_edit_id(contact_id, idempotency_key),
            contact_id=contact_id,
            account_id=contact.account_id,
            field=field,
            value=value,
            edited_at=self._now(),
        )
        if idempotency_key and self._keys is not None:
            edit = self._same_edit_for_the_key(edit)
        self._changes.publish([LocalEditMessage(edit)])
        return QueuedLocalEdit(edit.edit_id, contact_id, edit.account_id, field, edit.edited_at)

    def _same_edit_for_the_key(self, edit: LocalEdit) -> LocalEdit:
        """The edit the key was first used for (its time and account too, so that the message queued again is the
        same message); 422 if the key was used for another field or value of this contact."""
        assert self._keys is not None
        fingerprint = request_fingerprint(edit.contact_id, edit.field, edit.value)
        kept = self._keys.claim(KeyedEdit(edit.edit_id, fingerprint, edit.account_id, edit.edited_at))
        if kept.fingerprint != fingerprint:
            raise Unprocessable(
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used for another edit of this contact (another field or value); "
                "use a new key for a new edit",
            )
        return LocalEdit(edit.edit_id, edit.contact_id, kept.account_id, edit.field, edit.value, kept.edited_at)
