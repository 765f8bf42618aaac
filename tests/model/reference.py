"""An independent reference model of SPEC R2-R6, written from the spec and issue 10 section 2, not from the code.

It is told each change message of the fetch and the HTTP API (an account version, contact versions, a local
edit) at the moment the queue world applies it successfully, in the order the queues really delivered them, and
says what the store must hold at a quiet point: each live contact's account fields, and the exact multiset of
Change Data Value activities and suppression records. It never reads the store, never imports the services.

Its rules, each from the spec:
- R2/R3: a newer account version (by SystemModstamp) overwrites every synced field of every contact of the
  account, local edits included; an older or equal one changes nothing (idempotent, ordered apply).
- R3: a local edit sets its field on the account and on every contact of it, until the next Salesforce version.
- R4: a contact takes its (new) account's fields as the store holds them (the version and the edits after it).
- R2/R6: a newer version that changes no synced field nor the deleted flag, over a version that reached every
  contact (none of the account's segments still queued) with no local edit over it, owes nothing and takes no
  decision: the account's decision stays the last one taken (the product's
  documented behaviour, kept by the lead on 2026-12-04).
- R6: one activity per contact per field whose value changed on that contact, for the members of the account
  when the change is accepted (issue 10, 2.1: owed then, whatever lands on the contact afterwards); none when the
  account has more than `threshold` members then, but one suppression record when an account-level value changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from account_sync.contracts import AccountChangeMessage, ContactChangesMessage, LocalEditMessage

Value = str | int | float | bool | None


def _canon(value: object) -> Value:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # type: ignore[return-value]


def _same(a: object, b: object) -> bool:
    a, b = _canon(a), _canon(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def as_text(value: object) -> str | None:
    """How Marketo shows a value in an activity: text, a blank stays null."""
    value = _canon(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Activity:
    """What a Change Data Value activity must say (its storage key is the code's business)."""

    contact_id: str
    origin: str  # "account", "local", "contact"
    attribute: str
    old: str | None
    new: str | None
    stamp: str | None  # the version's SystemModstamp, the edit's edited_at; None for a move (not specified)


@dataclass(frozen=True)
class Suppression:
    account_id: str
    origin: str  # "account" or "local"
    stamp: str
    fields: tuple[str, ...]


@dataclass
class RefAccount:
    modstamp: str | None = None
    fields: dict[str, Value] = field(default_factory=dict)  # the store's account: the version and edits after it
    deleted: bool = False
    # The newest version's threshold decision, as taken when it was accepted: a move into the account is logged
    # under it (docs/decisions.md: a contact change counts no contacts of its own).
    logged: bool = True
    # A local edit was applied over the newest version: a version then takes a decision even if it changes no field.
    edited: bool = False


@dataclass
class RefContact:
    contact_id: str
    modstamp: str | None = None
    account_id: str | None = None
    deleted: bool = False
    fields: dict[str, Value] = field(default_factory=dict)
    account_modstamp: str | None = None


@dataclass
class Expectations:
    activities: Counter[Activity] = field(default_factory=Counter)
    suppressions: set[Suppression] = field(default_factory=set)
    # Activities of a move (origin contact) are only counted when the MOVES_LOGGED switch is on.
    moves_logged: bool = False


class ReferenceModel:
    def __init__(self, synced_fields: tuple[str, ...], threshold: int, moves_logged: bool) -> None:
        self.synced = synced_fields
        self.threshold = threshold
        self.accounts: dict[str, RefAccount] = {}
        self.contacts: dict[str, RefContact] = {}
        self.applied_edits: set[tuple[str, str]] = set()  # (edit_id, edited_at): a redelivery is the same edit
        self.expected = Expectations(moves_logged=moves_logged)

    # --- what was applied -----------------------------------------------------------------------------------

    def applied(self, message: object, segments_waiting: bool = False) -> None:
        """`segments_waiting`: an account version was handed to the fan-out while segments of an earlier change of
        its account were still queued (what SQS held, not what the store says)."""
        if isinstance(message, AccountChangeMessage):
            self._account_version(message, segments_waiting)
        elif isinstance(message, ContactChangesMessage):
            for version in message.versions:
                self._contact_version(version)
        elif isinstance(message, LocalEditMessage):
            self._local_edit(message)

    def members(self, account_id: str) -> list[str]:
        return sorted(cid for cid, c in self.contacts.items() if c.account_id == account_id and not c.deleted)

    def _account_version(self, message: AccountChangeMessage, segments_waiting: bool = False) -> None:
        version = message.version
        account = self.accounts.setdefault(version.account_id, RefAccount())
        if account.modstamp is not None and version.system_modstamp <= account.modstamp:
            return  # older or the same: changes nothing, logs nothing
        new_fields = {name: _canon(version.fields.get(name)) for name in self.synced}
        if not segments_waiting and self._changes_nothing(account, version.is_deleted, new_fields):
            account.modstamp = version.system_modstamp  # the decision stays the last one taken (`logged`)
            return
        members = self.members(version.account_id)
        logged = len(members) <= self.threshold and not version.is_deleted
        account_changed = tuple(name for name in self.synced if not _same(account.fields.get(name), new_fields[name]))
        if not logged and not version.is_deleted and account_changed:
            self.expected.suppressions.add(
                Suppression(version.account_id, "account", version.system_modstamp, account_changed)
            )
        for cid in members:
            contact = self.contacts[cid]
            if logged:
                for name in self.synced:
                    if not _same(contact.fields.get(name), new_fields[name]):
                        self.expected.activities[
                            Activity(
                                cid,
                                "account",
                                name,
                                as_text(contact.fields.get(name)),
                                as_text(new_fields[name]),
                                version.system_modstamp,
                            )
                        ] += 1
            contact.fields = dict(new_fields)
            contact.account_modstamp = version.system_modstamp
        account.modstamp = version.system_modstamp
        account.fields = dict(new_fields)
        account.deleted = version.is_deleted
        account.logged = len(members) <= self.threshold
        account.edited = False

    @staticmethod
    def _changes_nothing(account: RefAccount, deleted: bool, new_fields: dict[str, Value]) -> bool:
        """A version that changes no synced field and not the deleted flag, over a version that reached every
        contact (no segment waits: the caller's) and that no local edit followed, owes no activity and takes no
        decision (the lead's decision, 2026-12-04: the product's documented `accept_unchanged_version`,
        docs/data-model.md `system_modstamp`)."""
        return (
            account.modstamp is not None
            and not account.edited
            and account.deleted == deleted
            and all(_same(account.fields.get(name), value) for name, value in new_fields.items())
        )

    def _contact_version(self, version: object) -> None:
        contact = self.contacts.setdefault(version.contact_id, RefContact(version.contact_id))  # type: ignore[attr-defined]
        if contact.modstamp is not None and version.system_modstamp <= contact.modstamp:  # type: ignore[attr-defined]
            return
        contact.modstamp = version.system_modstamp  # type: ignore[attr-defined]
        if version.is_deleted:  # type: ignore[attr-defined]
            contact.deleted = True
            contact.account_id = None
            return
        before_account, before_fields = contact.account_id, dict(contact.fields)
        contact.deleted = False
        contact.account_id = version.account_id  # type: ignore[attr-defined]
        account = self.accounts.get(contact.account_id) if contact.account_id else None
        if account is None or account.modstamp is None:
            contact.fields, contact.account_modstamp = {}, None
            return
        contact.fields = dict(account.fields)
        contact.account_modstamp = account.modstamp
        moved = before_account is not None and before_account != contact.account_id
        if moved and self.expected.moves_logged and not account.deleted and account.logged:
            for name in self.synced:
                if not _same(before_fields.get(name), contact.fields.get(name)):
                    old, new = as_text(before_fields.get(name)), as_text(contact.fields.get(name))
                    self.expected.activities[Activity(contact.contact_id, "contact", name, old, new, None)] += 1

    def _local_edit(self, message: LocalEditMessage) -> None:
        edit = message.edit
        key = (edit.edit_id, edit.edited_at)
        if key in self.applied_edits:
            return  # the same edit delivered again
        self.applied_edits.add(key)
        account = self.accounts.get(edit.account_id)
        if account is None or account.modstamp is None or account.deleted:
            return  # the account is not synced (any more): the edit has nothing to change
        value = _canon(edit.value)
        account.edited = True
        members = self.members(edit.account_id)
        logged = len(members) <= self.threshold
        if not logged and not _same(account.fields.get(edit.field), value):
            self.expected.suppressions.add(Suppression(edit.account_id, "local", edit.edited_at, (edit.field,)))
        account.fields[edit.field] = value
        for cid in members:
            contact = self.contacts[cid]
            if logged and not _same(contact.fields.get(edit.field), value):
                self.expected.activities[
                    Activity(
                        cid,
                        "local",
                        edit.field,
                        as_text(contact.fields.get(edit.field)),
                        as_text(value),
                        edit.edited_at,
                    )
                ] += 1
            contact.fields[edit.field] = value

    # --- what the store must hold ---------------------------------------------------------------------------

    def expected_contact_fields(self, contact_id: str) -> tuple[dict[str, Value], bool] | None:
        """(synced fields, account deleted) of a live contact of an account; None for a deleted contact."""
        contact = self.contacts.get(contact_id)
        if contact is None or contact.deleted or contact.account_id is None:
            return None
        account = self.accounts.get(contact.account_id)
        deleted = bool(account and account.deleted)
        return {name: _canon(contact.fields.get(name)) for name in self.synced}, deleted
