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

    @property
    def source(self) -> str:
        return "local" if self is ChangeOrigin.LOCAL else "salesforce"

    @property
    def reason(self) -> str:
        return {
            ChangeOrigin.ACCOUNT: "Account updated in Salesforce",
            ChangeOrigin.CONTACT: "Contact's account changed in Salesforce",
            ChangeOrigin.LOCAL: "Account field edited in the store",
        }[self]


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

    @property
    def activity_key(self) -> str:
        """Deterministic, so a redelivered message rewrites the same activity instead of adding one."""
        return f"{self.system_modstamp}#{self.origin.value}#{self.attribute_name}"


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

    @property
    def activity_key(self) -> str:
        """A version's: `<SystemModstamp>#suppressed`. A local edit's names its origin and field, so that it never
        takes the key of a version's, or of another field's edit, stamped in the same millisecond."""
        if self.origin is ChangeOrigin.LOCAL:
            return f"{self.system_modstamp}#local#{'+'.join(self.changed_fields)}#suppressed"
        return f"{self.system_modstamp}#suppressed"
