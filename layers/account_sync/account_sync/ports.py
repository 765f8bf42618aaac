"""The interfaces the services depend on. Adapters implement them for AWS and Salesforce; tests use fakes."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from account_sync.contracts import ActivityBatchMessage, ChangeMessage
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.conversion import ConversionOrder, ConvertedRecords, PersonConversion
from account_sync.domain.fields import FieldChange, FieldValue
from account_sync.domain.local_edits import ContactEditMark, EditMark
from account_sync.domain.records import (
    AccountVersion,
    ActivitySuppression,
    ChangeDataValueActivity,
    ContactVersion,
    LocalEdit,
)

# --- errors the adapters translate SDK errors into ----------------------------------------------------


class AccountSyncError(Exception):
    """Base of the project's own errors."""


class TransientError(AccountSyncError):
    """Worth retrying later: throttling, a 5xx, a connection error. The message is retried by SQS."""


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
    segments_total: int | None = None
    segments_done: frozenset[str] = field(default_factory=frozenset)
    local_edits: Mapping[str, EditMark] = field(default_factory=dict)  # per field, its last local edit


@dataclass(frozen=True)
class AcceptResult:
    acceptance: Acceptance
    state: AccountState  # the account as it is now (after the write when NEW)
    previous_fields: Mapping[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactSnapshot:
    """What the fan-out needs of a contact: its copy of the account fields and the version they came from."""

    contact_id: str
    account_fields: Mapping[str, FieldValue]
    account_modstamp: str | None
    account_deleted: bool
    previous_values: Mapping[str, FieldValue] = field(default_factory=dict)


class AccountRepository(Protocol):
    def accept_version(
        self,
        version: AccountVersion,
        activity_logging: ActivityLogging,
        contacts_counted: int,
        changed_fields: Sequence[str],
    ) -> AcceptResult:
        """Record `version` as the newest if it is newer than the stored one (a conditional write)."""
        ...

    def get(self, account_id: str) -> AccountState | None: ...

    def start_segments(self, account_id: str, system_modstamp: str, plan_id: str, total: int) -> None: ...

    def complete_segment(self, account_id: str, system_modstamp: str, segment_id: str) -> bool:
        """Record one segment done; True once every segment of the version's plan is done."""
        ...

    def mark_applied(self, account_id: str, system_modstamp: str) -> None:
        """The version reached every contact (only if it is still the newest)."""
        ...

    def accept_unchanged_version(self, version: AccountVersion, stored: AccountState) -> bool:
        """Record `version` as the newest, applied at once, if the account is still exactly `stored` (same newest
        version, fully applied, same deleted flag): for a version that changes no synced field. False otherwise."""
        ...

    def apply_local_edit(self, edit: LocalEdit, stored: AccountState) -> bool:
        """Set the edited field of the stored account (SPEC R3) and record the edit as the field's last one, over
        the account's newest version (`local_edits`), if the account is still as `stored` says: the same newest
        version, not deleted, the same last edit of that field. False otherwise."""
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
    ) -> Iterator[ContactSnapshot]: ...

    def apply_account_version(self, contact_id: str, version: AccountVersion, changes: Sequence[FieldChange]) -> bool:
        """Write every synced field of `version` on the contact (and the previous values of `changes`) if it
        still belongs to the account and holds an older version. False when the condition failed (moved away,
        or already newer)."""
        ...

    def apply_local_edit(self, contact_id: str, edit: LocalEdit, base_modstamp: str, old: FieldValue) -> bool:
        """Set the edited account field on the contact, and record the edit with the field's value before it
        (`old`, the outbox), if the contact still belongs to the account and holds no newer account version than
        `base_modstamp` (the version the edit was applied over). False when the condition failed."""
        ...

    def local_edit_of(self, contact_id: str) -> ContactEditMark | None:
        """The last local edit written on the contact (a strongly consistent read), None when there is none."""
        ...

    def apply_contact_version(self, version: ContactVersion, account: AccountState | None) -> bool:
        """Apply a Contact version (membership, name, email; the account's fields when it has one) if it is
        newer than the stored one. False when it was not (a redelivery or an older version)."""
        ...


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
    """Per stream (`Account`, `Contact`, and their sweeps `Account.sweep`, `Contact.sweep`): a watermark and the
    window in progress; for the whole fetch: the lease and the last known API usage."""

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

    def load_api_usage(self) -> RecordedUsage | None: ...

    def save_api_usage(self, recorded: RecordedUsage) -> None: ...

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
