"""Reading the history: a contact's Change Data Value activities and an account's suppressed changes.

Newest first (activity keys start with the change's timestamp, so the table's sort order is time order), a page
at a time. The next-page token is opaque to callers: base64url of the subject and the last key read, refused if
it was made for another subject or has been tampered with into something that is not a key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from account_sync.domain.records import CHANGE_DATA_VALUE, CHANGE_DATA_VALUE_SUPPRESSED
from account_sync.ports import AccountLookup, ActivityHistory, ContactLookup, StoredActivity
from account_sync.services.refusals import InvalidRequest, NotFound

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
_MAX_KEY_LENGTH = 1024

ACTIVITY_ATTRIBUTES = (
    "activity_type",
    "attribute_name",
    "old_value",
    "new_value",
    "reason",
    "source",
    "account_id",
    "system_modstamp",
    "activity_at",
    "sync_path",
)
SUPPRESSION_ATTRIBUTES = (
    "activity_type",
    "reason",
    "source",
    "account_id",
    "system_modstamp",
    "activity_at",
    "contacts_counted",
    "threshold",
    "changed_fields",
    "sync_path",
)


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_PAGE_SIZE
    next_token: str | None = None


@dataclass(frozen=True)
class HistoryPage:
    items: list[dict[str, object]]
    next_token: str | None


class History:
    def __init__(self, contacts: ContactLookup, accounts: AccountLookup, activities: ActivityHistory) -> None:
        self._contacts = contacts
        self._accounts = accounts
        self._activities = activities

    def contact_activities(self, contact_id: str, page: PageRequest) -> HistoryPage:
        if self._contacts.get_contact(contact_id) is None:
            raise NotFound("CONTACT_NOT_FOUND", f"no contact {contact_id} in the store")
        return self._page(contact_id, CHANGE_DATA_VALUE, page, ACTIVITY_ATTRIBUTES)

    def account_suppressed_changes(self, account_id: str, page: PageRequest) -> HistoryPage:
        if self._accounts.get(account_id) is None:
            raise NotFound("ACCOUNT_NOT_FOUND", f"no account {account_id} in the store")
        return self._page(account_id, CHANGE_DATA_VALUE_SUPPRESSED, page, SUPPRESSION_ATTRIBUTES)

    def _page(self, subject_id: str, activity_type: str, page: PageRequest, attributes: tuple[str, ...]) -> HistoryPage:
        if not 1 <= page.limit <= MAX_PAGE_SIZE:
            raise InvalidRequest("INVALID_REQUEST", f"limit must be between 1 and {MAX_PAGE_SIZE}")
        after = decode_token(page.next_token, subject_id) if page.next_token else None
        items, last_key = self._activities.page(subject_id, activity_type, page.limit, after)
        return HistoryPage(
            items=[_item(activity, attributes) for activity in items],
            next_token=encode_token(subject_id, last_key) if last_key else None,
        )


def _item(activity: StoredActivity, attributes: tuple[str, ...]) -> dict[str, object]:
    values: Mapping[str, object] = activity.attributes
    return {"activity_key": activity.activity_key, **{name: values.get(name) for name in attributes}}


def encode_token(subject_id: str, activity_key: str) -> str:
    raw = json.dumps({"s": subject_id, "k": activity_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, subject_id: str) -> str:
    invalid = InvalidRequest("INVALID_NEXT_TOKEN", "next_token is not a token this API gave for this list")
    if len(token) > 4 * _MAX_KEY_LENGTH:
        raise invalid
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deep
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("s") != subject_id:
        raise invalid
    key = payload.get("k")
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_LENGTH:
        raise invalid
    return key
