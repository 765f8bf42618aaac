"""The interfaces the services depend on. Adapters implement them for AWS and Salesforce; tests use fakes."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from account_sync.contracts import ActivityBatchMessage, ChangeMessage
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import AccountChange, ChangeDecision, OutboxEntry, PendingEdit, SupersededVersion
from account_sync.domain.conversion import ConversionOrder, ConvertedRecords, PersonConversion
from account_sync.domain.fields import FieldChange, FieldValue
from account_sync.domain.local_edits import EditMark
from account_sync.domain.records import (
    AccountVersion,
    ActivitySuppression,
    ChangeDataValueActivity,
    ContactVersion,
    LocalEdit,
    SyncPath,
)

# --- errors the adapters translate SDK errors into ----------------------------------------------------


class AccountSyncError(Exception):
    """Base of the project's own errors."""


class TransientError(AccountSyncError):
    """Worth retrying later: throttling, a 5xx, a connection error. The message is retried by SQS."""


class Throttled(TransientError):
    """DynamoDB refused the work for lack of capacity (a hot partition key, the table's or an index's throughput)
    beyond the SDK's retries. The consumers hand the message back to SQS with a short, growing visibility, and it is
    never set aside as poison: throttling passes, and the work is owed (`queue_records`)."""


class PermanentFailure(AccountSyncError):
    """The store refused a write as invalid (DynamoDB's ValidationException: an item over 400 KB, a value it
    cannot hold): the same message would be refused again. The FIFO consumer sets it aside in the dead-letter queue
    at once, so that it never holds up its message group (`queue_records`). The message names no value."""


class SalesforceBudgetExhausted(AccountSyncError):
    """REQUEST_LIMIT_EXCEEDED, or the configured share of the daily API limit is used: stop, keep the watermark."""


class SalesforceAuthError(AccountSyncError):
    """The token request was refused, or a renewed token was refused again."""


class SalesforceQueryError(AccountSyncError):
    """A query Salesforce refused (INVALID_FIELD, MALFORMED_QUERY, QUERY_TIMEOUT...); `code` is its errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class QueryLocatorExpired(AccountSyncError):
    """INVALID_QUERY_LOCATOR: the cursor is gone; restart the window from the last record read."""


class ConfigurationError(AccountSyncError):
    """The configuration does not match Salesforce (an unknown field)."""


class SetupProblem(enum.Enum):
    """What the describe of an object says is wrong with a field the code depends on."""

    MISSING = "missing"  # no such field, or the integration user cannot see it
    NOT_EXTERNAL_ID = "not_external_id"
    NOT_UNIQUE = "not_unique"
    OBJECT_NOT_AVAILABLE = "object_not_available"  # the describe of the object itself answered NOT_FOUND


@dataclass(frozen=True)
class FieldSetup:
    """One object's field as the Salesforce org has it set up wrong."""

    sobject: str
    field: str
    problem: SetupProblem

    def explain(self) -> str:
        return {
            SetupProblem.MISSING: f"{self.sobject} has no field {self.field} (or the integration user cannot see it)",
            SetupProblem.NOT_EXTERNAL_ID: f"{self.sobject}.{self.field} is not an External ID",
            SetupProblem.NOT_UNIQUE: f"{self.sobject}.{self.field} is not Unique",
            SetupProblem.OBJECT_NOT_AVAILABLE: f"the integration user cannot see the object {self.sobject}",
        }[self.problem]


class SalesforceSetupError(ConfigurationError):
    """The Salesforce org lacks a field a write depends on (Convert Person: `Account_Sync_Key__c`, a unique
    external id, on Account, Contact and Opportunity); nothing was sent to Salesforce. The verdict is kept for the
    container's life: `first_report` is True the one time a container finds it, so that it is logged once."""

    def __init__(self, problems: Sequence[FieldSetup], first_report: bool = True) -> None:
        super().__init__("; ".join(problem.explain() for problem in problems))
        self.problems = tuple(problems)
        self.first_report = first_report


@dataclass(frozen=True)
class SubrequestFailure:
    """One failed subrequest of a composite call: its referenceId, Salesforce's errorCode and the fields named.
    Salesforce's message is left out on purpose: it may quote the value refused (an email address)."""

    reference_id: str
    code: str
    fields: tuple[str, ...] = ()


class SalesforceRejected(AccountSyncError):
    """Salesforce refused a write (a composite answers HTTP 200 even then: every sub-response is checked).
    With allOrNone nothing was written; `failures` are the causes (the PROCESSING_HALTED ones are left out)."""

    def __init__(self, failures: Sequence[SubrequestFailure]) -> None:
        first = failures[0] if failures else SubrequestFailure("", "UNKNOWN")
        super().__init__(f"Salesforce refused {first.reference_id or 'the request'}: {first.code}")
        self.failures = tuple(failures)


class QueueSendError(TransientError):
    """Some messages could not be queued after retries."""


@dataclass(frozen=True)
class RejectedMessage:
    message: object  # the message as it was given to `publish`
    reason: str  # why the queue cannot take it (its size against the queue's limit; SQS's error code)


class MessagesRejected(AccountSyncError):
    """The queue cannot take these messages as they are (larger than its limit, refused by SQS as invalid):
    sending them again would fail again. Every other message of the same `publish` was queued."""

    def __init__(self, rejected: Sequence[RejectedMessage]) -> None:
        super().__init__(f"{len(rejected)} message(s) refused by the queue: {rejected[0].reason}")
        self.rejected = tuple(rejected)


class ContinuationFailed(AccountSyncError):
    """The next run could not be started at once; the schedule starts it instead."""


class RunContinuation(Protocol):
    """Starts the fetch's next run now, without waiting for it (docs/decisions.md, "A paused run continues at
    once")."""

    def start_next_run(self, event: Mapping[str, object]) -> None:
        """Invoke the function again, asynchronously, with `event`; ContinuationFailed if it cannot be started."""
        ...


# --- Salesforce ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiUsage:
    used: int
    limit: int

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 1.0


@dataclass(frozen=True)
class WindowItem:
    """One step of reading a window: a record (None for a step that only reports progress, such as a Bulk API
    job still running), and the position to resume the window from once everything up to it is queued."""

    record: Mapping[str, object] | None
    position: Mapping[str, str]


class SalesforceSource(Protocol):
    def account_field_names(self) -> set[str]:
        """Every field of the Account describe."""
        ...

    def read_window(
        self,
        sobject: str,
        fields: Sequence[str],
        start: str,
        end: str,
        position: Mapping[str, str] | None = None,
    ) -> Iterator[WindowItem]:
        """Records (deleted ones too) with `start < SystemModstamp <= end`, from `position` (None or empty: the
        window's beginning). The order is (SystemModstamp, Id) for REST queries and none for a Bulk API job (a
        large window); either way each item's position resumes the window right after it, in a later run."""
        ...

    def changed_records(
        self, sobject: str, fields: Sequence[str], start: str, end: str
    ) -> Iterator[Mapping[str, object]]:
        """Records (deleted ones too) with `start < SystemModstamp <= end`, ordered by (SystemModstamp, Id)."""
        ...

    def accounts_after(self, fields: Sequence[str], after_id: str | None, limit: int) -> Iterator[Mapping[str, object]]:
        """The next `limit` Accounts (not deleted) in Id order after `after_id`: drift detection's sample."""
        ...

    def accounts_by_ids(self, fields: Sequence[str], account_ids: Sequence[str]) -> Iterator[Mapping[str, object]]:
        """The Accounts with these ids (deleted ones too), read again for a resync; unknown ids yield nothing."""
        ...

    @property
    def api_usage(self) -> ApiUsage | None: ...

    @property
    def api_calls(self) -> int:
        """API calls made by this client since it was created."""
        ...


class PersonConverter(Protocol):
    def convert(self, order: ConversionOrder) -> ConvertedRecords:
        """Upsert the Account, Contact and Opportunity of `order` by its key, all or none, in one call.
        SalesforceRejected when Salesforce refused one of them (then none exists); TransientError when it could
        not be reached (then it may or may not have committed: the same order again is safe)."""
        ...


# --- queues -------------------------------------------------------------------------------------------


class ChangePublisher(Protocol):
    def publish(self, messages: Sequence[ChangeMessage]) -> None:
        """Queue every message or raise QueueSendError naming how many failed (only failures are re-sent);
        MessagesRejected, once every other message is queued, for those the queue cannot take as they are."""
        ...


class ActivityPublisher(Protocol):
    def publish(self, batches: Sequence[ActivityBatchMessage]) -> None: ...


# --- the store ----------------------------------------------------------------------------------------


class Acceptance(enum.Enum):
    NEW = "new"  # a newer version: apply it
    RESUME = "resume"  # the same version, not yet fully applied (a redelivery after a crash): finish it
    ALREADY_APPLIED = "already_applied"  # the same version, fully applied: nothing to do
    STALE = "stale"  # an older version: nothing to do


@dataclass(frozen=True)
class AccountState:
    account_id: str
    fields: Mapping[str, FieldValue]
    system_modstamp: str | None
    applied_modstamp: str | None
    is_deleted: bool
    activity_logging: ActivityLogging | None
    contacts_counted: int | None
    changed_fields: tuple[str, ...] = ()
    segments_total: int | None = None  # set once every segment of the newest version's plan is queued
    segments_done: frozenset[str] = field(default_factory=frozenset)
    local_edits: Mapping[str, EditMark] = field(default_factory=dict)  # per field, its last local edit
    segmented: bool = False  # the newest version is fanned out in segments (decided once, when accepted)
    segments_plan: str | None = None
    recent_joiners: Mapping[str, str] = field(default_factory=dict)  # contact id -> when it joined
    joiners_overflow_at: str | None = None  # more joined at once than the list keeps, at that time
    sync_path: SyncPath | None = None  # the path that applied the newest version first (its activities show it)
    # Older versions superseded while their segments (or their edits') may be queued, oldest first, each with the
    # edits over it; cleared once the newest is applied.
    superseded: tuple[SupersededVersion, ...] = ()
    # How many changes (versions and local edits) the account accepted: a contact leaving it writes its leave only
    # while this is still what it read before taking the account's pending changes (None: none counted yet).
    changes_accepted: int | None = None

    @property
    def decision(self) -> ChangeDecision | None:
        """The newest version's decision, as taken when it was accepted."""
        if self.activity_logging is None:
            return None
        return ChangeDecision(self.activity_logging, self.contacts_counted or 0, self.segmented)


@dataclass(frozen=True)
class AcceptResult:
    acceptance: Acceptance
    state: AccountState  # the account as it is now (after the write when NEW)
    previous_fields: Mapping[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactSnapshot:
    """What the fan-out needs of a contact: its copy of the account fields, the version they came from, and per
    field the change that wrote it with the value before (the outbox). `account_id`, `contact_modstamp` and
    `is_deleted` are known from a read of the item (`ContactRepository.contact`), not from the account index."""

    contact_id: str
    account_fields: Mapping[str, FieldValue]
    account_modstamp: str | None
    account_deleted: bool
    outbox: Mapping[str, OutboxEntry] = field(default_factory=dict)
    account_id: str | None = None
    contact_modstamp: str | None = None
    is_deleted: bool = False
    # The account's `changes_accepted` when the contact joined it and took its fields (None: unknown, joined before
    # counts were kept): a change the account accepted up to then is held, never owed (`AccountChange.held_since_join`).
    changes_at_join: int | None = None
    # How many times Account Sync wrote the item (None: not since revisions were counted): a fan-out write lands only
    # on the contact as it read it (`ContactRepository.write_change`'s `as_read`).
    revision: int | None = None


@dataclass(frozen=True)
class AccountUnchanged:
    """A contact's leave conditioned on its account: written only while the account item has accepted no change
    since the leaver read it (`AccountState.changes_accepted`, None: none counted, or no item) to take its pending
    changes. A change accepted in between would otherwise be owed to the contact and never reach it."""

    account_id: str
    changes_accepted: int | None


@dataclass(frozen=True)
class AccountJoin:
    """What a contact takes from the account it joins (SPEC R4): the account's fields as stored now, and, for a
    contact that moved from another account, the outbox of the move's activities (origin `contact`)."""

    fields: Mapping[str, FieldValue]
    system_modstamp: str
    is_deleted: bool
    outbox: Mapping[str, OutboxEntry] = field(default_factory=dict)
    changes_accepted: int | None = None  # the account's count as read with `fields`: the contact keeps it


class AccountRepository(Protocol):
    def accept_version(
        self,
        version: AccountVersion,
        decision: ChangeDecision,
        changed_fields: Sequence[str],
        path: SyncPath | None = None,
        superseded: Sequence[SupersededVersion] = (),
    ) -> AcceptResult:
        """Record `version` as the newest, with its decision, the path that brought it, and the older versions still
        in segments that it supersedes (`superseded`, replacing the stored list), if it is newer than the stored one
        (a conditional write); counted in `changes_accepted`."""
        ...

    def get(self, account_id: str) -> AccountState | None: ...

    def record_plan(self, change: AccountChange, plan_id: str, total: int) -> None:
        """Every segment of `change` is queued: a redelivery or a resume queues none again. Only while the change
        is still the account's newest version, or its field's last edit over it."""
        ...

    def complete_segment(self, account_id: str, plan_id: str, index: int, total: int) -> bool:
        """Record segment `index` of a version's plan done (idempotent), on an item of the plan's own, never on the
        account item: the segments of a large account run side by side, and 2,000 writes to one account item would
        make it hot. True when every segment of the plan is done (then and on every later call)."""
        ...

    def plan_complete(self, account_id: str, plan_id: str, total: int) -> bool:
        """Every segment of the plan is done (a strongly consistent read): the planner asks once the plan is recorded,
        for the segments that ran, side by side, before it was."""
        ...

    def mark_applied(self, account_id: str, system_modstamp: str, plan_id: str | None = None) -> bool:
        """The version reached every contact: recorded only while it is still the newest (and, with `plan_id`, while
        that plan is the version's recorded one), and the versions it superseded forgotten (their segments ran
        first). True only for the call that recorded it, so that a version's completion is reported once however
        many deliveries and segments find it done."""
        ...

    def accept_unchanged_version(self, version: AccountVersion, stored: AccountState) -> bool:
        """Record `version` as the newest, applied at once, if the account is still exactly `stored` (same newest
        version, fully applied, same deleted flag): for a version that changes no synced field. False otherwise."""
        ...

    def refresh_fields(self, account_id: str, system_modstamp: str, fields: Mapping[str, FieldValue]) -> int | None:
        """A resync: set the stored account's fields to `fields` (read again from Salesforce at the same version),
        while `system_modstamp` is still its newest version and applied; counted in `changes_accepted` (a contact
        that joined before it took the old values and is still the resync's to repair). The count it makes; None
        when not refreshed (a newer version came)."""
        ...

    def apply_local_edit(
        self,
        edit: LocalEdit,
        stored: AccountState,
        decision: ChangeDecision,
        changed: bool,
        earlier: Sequence[PendingEdit] = (),
    ) -> bool:
        """Set the edited field of the stored account (SPEC R3) and record the edit as the field's last one, over
        the account's newest version, with its decision and the earlier edits of the field it keeps (`earlier`,
        `local_edits.earlier_edits`), if the account is still as `stored` says: the same newest version, not
        deleted, the same last edit of that field, the same `changes_accepted`; counted there, the mark keeping the
        count it makes (`EditMark.accepted_as`). False otherwise."""
        ...

    def note_joiners(
        self, account_id: str, contact_ids: Sequence[str], joined_at: str, forget: Mapping[str, str], overflow: bool
    ) -> None:
        """Add the contacts to the account's recent joiners (the index may not show them yet) and drop the
        `forget` entries (contact id -> joined at: older than the index's lag); with `overflow` (the list would
        pass its bound), record the time instead of adding them. One write, whatever the number of contacts."""
        ...


class ContactRepository(Protocol):
    def count_members(self, account_id: str, limit: int) -> int:
        """Live contacts of the account, counted up to `limit` (a bounded number of requests)."""
        ...

    def member_key_pages(self, account_id: str, page_size: int) -> Iterator[tuple[str | None, str]]:
        """The account's contacts as key ranges `(after, through]` of at most `page_size` contacts."""
        ...

    def members(
        self, account_id: str, after: str | None = None, through: str | None = None
    ) -> Iterator[ContactSnapshot]:
        """The account's contacts in `(after, through]`, from the account index (eventually consistent)."""
        ...

    def contact(self, contact_id: str) -> ContactSnapshot | None:
        """The contact as stored (a strongly consistent read), None when there is none."""
        ...

    def write_change(
        self,
        contact_id: str,
        change: AccountChange,
        changes: Sequence[FieldChange],
        kept: Mapping[str, tuple[FieldValue, OutboxEntry]] | None = None,
        as_read: ContactSnapshot | None = None,
    ) -> bool:
        """Write `change` onto the contact (a version: every synced field and the deleted flag; an edit: its
        field), with an outbox entry per field of `changes` (the change and the value before), if the contact
        still belongs to the account and holds no newer account version (`AccountChange.overtaken_on`). A version
        keeps the `kept` fields (value and outbox entry, as read: a local edit over it wrote them) and writes only
        while no other field holds such an edit and the kept ones are still as read. With `as_read`, only while
        the contact's `revision` is still that snapshot's (no write in between: segments run side by side). Every
        write counts in the contact's revision. False when a condition failed (moved away, already newer, or
        written since it was read)."""
        ...

    def apply_contact_version(
        self,
        version: ContactVersion,
        expected: ContactSnapshot | None,
        join: AccountJoin | None,
        account_unchanged: AccountUnchanged | None = None,
    ) -> bool:
        """Apply a Contact version (membership, name, email) if it is newer than the stored one and the contact is
        still as `expected` says (its account, account version and revision; None: no item yet). A contact that joins an
        account takes `join` and keeps its count (no join: no account fields nor count, or none synced yet); one
        that stays in its account keeps its account fields and count (the account's own fan-out writes them). With
        `account_unchanged` (a leave), only while that account item has accepted no change since it was read (one
        transaction). False when a condition failed."""
        ...


def stays_in_account(version: ContactVersion, expected: ContactSnapshot | None) -> bool:
    """A live contact whose new version keeps it in the account it belongs to: its account fields are left to the
    account's own fan-out (which owes their activities), never rewritten by the Contact version."""
    return (
        expected is not None
        and not expected.is_deleted
        and not version.is_deleted
        and expected.account_id is not None
        and expected.account_id == version.account_id
    )


class ActivityStore(Protocol):
    def put_activities(self, activities: Iterable[ChangeDataValueActivity]) -> int:
        """Write them (batches of 25, unprocessed items retried); returns how many were written."""
        ...

    def put_suppression(self, suppression: ActivitySuppression) -> None: ...


@dataclass(frozen=True)
class WindowProgress:
    """A window being read over several runs: its bounds, fixed when it started, and where to resume it."""

    start: str
    end: str
    position: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftState:
    """The last drift check (services/drift.py): when it ran, the Account id the next one starts after (None: the
    first), how many accounts it compared, and the drifted ones (id and problem: field names, never values)."""

    checked_at: str
    after_id: str | None = None
    checked: int = 0
    drifted: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class StreamState:
    """A stream's watermark, and the window a run stopped inside of (None when the last one was completed)."""

    watermark: str | None
    progress: WindowProgress | None = None


@dataclass(frozen=True)
class RecordedUsage:
    """The org's API usage as the last Salesforce answer reported it, and when (kept between runs)."""

    usage: ApiUsage
    measured_at: str


class SyncStateStore(Protocol):
    """Per stream (`Account`, `Contact`, their sweeps `Account.sweep`, `Contact.sweep`, and `Account.resync`): a
    watermark and the window in progress; for the whole fetch: the lease, the last known API usage and the synced
    field list it last read Accounts with."""

    def load_watermark(self, sobject: str) -> str | None: ...

    def save_watermark(self, sobject: str, watermark: str, run: Mapping[str, object]) -> None:
        """Only ever moves the watermark forward (a conditional write); the window in progress is cleared."""
        ...

    def load_stream(self, stream: str) -> StreamState:
        """The watermark and the window in progress, in one read."""
        ...

    def save_progress(self, stream: str, progress: WindowProgress, run: Mapping[str, object]) -> None:
        """Checkpoint: every change of the window up to `progress.position` is queued."""
        ...

    def end_window(self, stream: str, run: Mapping[str, object]) -> None:
        """The window in progress is done: cleared, whatever the watermark (a resync's windows are not in order)."""
        ...

    def load_api_usage(self) -> RecordedUsage | None: ...

    def save_api_usage(self, recorded: RecordedUsage) -> None: ...

    def load_drift(self) -> DriftState | None:
        """The last drift check: when, where the next one starts, what it found."""
        ...

    def save_drift(self, drift: DriftState) -> None: ...

    def load_synced_fields(self) -> tuple[str, ...] | None:
        """The SyncedAccountFields the fetch last read Accounts with; None before it first recorded them."""
        ...

    def save_synced_fields(self, fields: Sequence[str], at: str) -> None: ...

    def acquire_lease(self, owner: str, seconds: int) -> bool: ...

    def release_lease(self, owner: str) -> None: ...


# --- what the HTTP API reads and links ----------------------------------------------------------------


@dataclass(frozen=True)
class StoredContact:
    """A contact item as the API sees it: a Salesforce Contact (it has a `contact_modstamp`), or a person of the
    marketing store that is not one yet, possibly already converted (`conversion`)."""

    contact_id: str
    account_id: str | None
    is_salesforce_contact: bool
    is_deleted: bool = False
    account_deleted: bool = False
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = field(default=None, repr=False)
    conversion: PersonConversion | None = None


class ContactLookup(Protocol):
    def get_contact(self, contact_id: str) -> StoredContact | None: ...


class AccountLookup(Protocol):
    def get(self, account_id: str) -> AccountState | None: ...


class PersonLinks(Protocol):
    def link_conversion(self, conversion: PersonConversion) -> bool:
        """Link the person to its Salesforce records in one conditional write: only while it is a person (not a
        Salesforce contact) that is not linked to other records. False when the condition failed."""
        ...


@dataclass(frozen=True)
class StoredActivity:
    """An item of the activities table: a Change Data Value, or an account's suppressed change."""

    subject_id: str
    activity_key: str
    attributes: Mapping[str, object]


class ActivityHistory(Protocol):
    def page(
        self, subject_id: str, activity_type: str, limit: int, after_key: str | None
    ) -> tuple[list[StoredActivity], str | None]:
        """Up to `limit` items of `activity_type` under `subject_id`, newest first, starting after the item
        `after_key`; with the key to start the next page from (None: there is none)."""
        ...
