"""Versions of Salesforce records as the sync sees them, and the activities their changes produce."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from account_sync.domain.fields import FieldValue


@dataclass(frozen=True)
class AccountVersion:
    """One Account as Salesforce had it at `system_modstamp` (canonical form)."""

    account_id: str
    system_modstamp: str
    is_deleted: bool
    fields: Mapping[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactVersion:
    """One Contact as Salesforce had it at `system_modstamp`. `account_id` None: the contact has no account."""

    contact_id: str
    system_modstamp: str
    is_deleted: bool
    account_id: str | None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class LocalEdit:
    """SPEC R3: an account field edited in the store through one contact; it changes every contact of the
    account, never reaches Salesforce, and is overwritten by the account's next Salesforce version."""

    edit_id: str
    contact_id: str
    account_id: str
    field: str
    value: FieldValue
    edited_at: str


class ChangeOrigin(enum.Enum):
    """What caused a Change Data Value activity; part of its deterministic key."""

    ACCOUNT = "account"  # an Account changed in Salesforce
    CONTACT = "contact"  # a Contact moved to another account in Salesforce
    LOCAL = "local"  # an account field edited in the store (SPEC R3)
    RESYNC = "resync"  # an operator's resync found a contact out of step with the account's applied version

    @property
    def source(self) -> str:
        return "local" if self is ChangeOrigin.LOCAL else "salesforce"

    @property
    def reason(self) -> str:
        return {
            ChangeOrigin.ACCOUNT: "Account updated in Salesforce",
            ChangeOrigin.CONTACT: "Contact's account changed in Salesforce",
            ChangeOrigin.LOCAL: "Account field edited in the store",
            ChangeOrigin.RESYNC: "Resync from Salesforce",
        }[self]


class SyncPath(enum.Enum):
    """Which path brought a change to the store: shown on its activities so that an operator sees what applied it.
    Never part of a key, a deduplication id or a decision: the same version by push and by poll is one change, and
    the path that applied it first is the one recorded (kept on the account and in the contact's outbox)."""

    PUSH = "push"  # a Change Data Capture event, read again by id (the push function)
    FETCH = "fetch"  # the scheduled fetch's window (the poll)
    SWEEP = "sweep"  # the fetch's hourly sweep of a wider window (the poll's late commits)
    RESYNC = "resync"  # an operator's resync, the drift check's repair, or a change of the synced field list
    API = "api"  # a local edit through the HTTP API (SPEC R3)


def sync_path(value: object) -> SyncPath | None:
    """A stored or received path; None for anything else (an item or message written before paths were)."""
    try:
        return SyncPath(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ChangeRef:
    """The change that wrote an account field onto a contact: an account version (its SystemModstamp), a contact
    that moved to another account (the Contact's SystemModstamp), a local edit (its `edited_at` and its id, so
    that two edits of one field in the same millisecond are two changes), or a resync of an applied version (its
    SystemModstamp and the resync's id, so that two resyncs that each repair drift keep both activities). It names
    the activity the write owes."""

    origin: ChangeOrigin
    stamp: str
    change_id: str | None = None

    def activity_key(self, field: str) -> str:
        """`<stamp>#<origin>#<field>`, and `#<edit id>` for a local edit: deterministic, so that a redelivery
        rewrites the same activity instead of adding one, and sorted oldest first under the contact."""
        key = f"{self.stamp}#{self.origin.value}#{field}"
        return f"{key}#{self.change_id}" if self.change_id else key


CHANGE_DATA_VALUE = "Change Data Value"
CHANGE_DATA_VALUE_SUPPRESSED = "Change Data Value Suppressed"


@dataclass(frozen=True)
class ChangeDataValueActivity:
    """Marketo's Change Data Value activity, for one contact and one account field."""

    contact_id: str
    account_id: str
    attribute_name: str
    old_value: str | None
    new_value: str | None
    origin: ChangeOrigin
    system_modstamp: str
    activity_at: str
    change_id: str | None = None  # a local edit's id
    path: SyncPath | None = None  # which path applied the change (not in the key)

    @property
    def activity_key(self) -> str:
        """Deterministic, so a redelivered message rewrites the same activity instead of adding one."""
        return ChangeRef(self.origin, self.system_modstamp, self.change_id).activity_key(self.attribute_name)


@dataclass(frozen=True)
class ActivitySuppression:
    """The one account-level record of a change whose activities were not logged (more contacts than allowed)."""

    account_id: str
    system_modstamp: str
    contacts_counted: int
    threshold: int
    changed_fields: tuple[str, ...]
    activity_at: str
    origin: ChangeOrigin = ChangeOrigin.ACCOUNT  # LOCAL for a local edit: `system_modstamp` is then its edited_at
    change_id: str | None = None  # a local edit's id
    path: SyncPath | None = None  # which path applied the change (not in the key)

    @property
    def activity_key(self) -> str:
        """A version's: `<SystemModstamp>#suppressed`. A local edit's names its origin, field and id, so that it
        never takes the key of a version's, or of another edit's (of any field) stamped in the same millisecond."""
        if self.origin is ChangeOrigin.LOCAL:
            edit = f"#{self.change_id}" if self.change_id else ""
            return f"{self.system_modstamp}#local#{'+'.join(self.changed_fields)}{edit}#suppressed"
        return f"{self.system_modstamp}#suppressed"
