"""Fetch: read the Accounts and Contacts changed in Salesforce since the last run and queue them.

A window is `(watermark - lookback, end]`. The overlap catches a transaction that committed late with an
earlier SystemModstamp; the (SystemModstamp, Id) keyset of the adapter never skips records sharing a stamp.
Accounts are queued before Contacts (a Contact window ends where the Account one did), so that a contact joining
a new account finds it.

A window of any size drains over successive runs. The run checkpoints its position inside the window (the keyset
of a REST read, or the Bulk API job, page and offset of a large one) every `CHECKPOINT_RECORDS` records, once
everything read up to there is queued, and stops cleanly when the Lambda's remaining time falls under the margin;
the next run resumes there with the same window bounds. A run killed at its timeout loses only what it read since
its last checkpoint (queued again: applying a version is idempotent). Its lease expires when the Lambda would have
been killed anyway, before the next schedule. The watermark moves to the window's end once the window is done.
A run paused that way starts the next one at once (`RunContinuation`, after its lease is released), at most
`continuation_limit` in a row; one stopped by the API budget or an error leaves it to the schedule.

A sweep re-reads a much wider window (`reconcile_lookback_seconds`) once every `reconcile_interval_seconds`, for
transactions that commit later than the regular lookback (docs/decisions.md). Once the API budget is spent, a run
decides from the usage the last run recorded and makes no Salesforce call at all, until the recorded usage is
`BUDGET_RECHECK_SECONDS` old. A change that can never be applied is set aside and reported in
`FetchReport.rejected` instead of queued: larger than the queue's MaximumMessageSize, or holding a value DynamoDB
cannot store (`domain.fields.storable_value`: a number of more than 38 digits or out of range, NaN, Infinity, a
text larger than an item), so that it neither holds back every other change forever nor fails a write downstream.

A resync (`ResyncRequest`, issue 12) reads Accounts again after the run's own windows: named ones by id, or every
Account whose SystemModstamp is in a window (all of them: from the epoch), as a stream of its own
(`RESYNC_STREAM`) checkpointed like any window, so that "everything" drains over runs: every run goes on with a
resync in progress, at most `resync_records_per_run` records a run. Its messages carry a resync id (derived from
the request, the same in every run of it), which lets the fan-out re-diff a version the store already applied.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from account_sync.contracts import (
    CONTACTS_PER_MESSAGE,
    AccountChangeMessage,
    ChangeMessage,
    ContactChangesMessage,
    contact_group,
)
from account_sync.domain.fields import UnstorableValue, canonical_value, storable_value
from account_sync.domain.records import AccountVersion, ContactVersion, SyncPath
from account_sync.domain.timestamps import EPOCH, InvalidTimestamp, normalize_timestamp, parse_timestamp, shift
from account_sync.ports import (
    AccountRepository,
    ApiUsage,
    ChangePublisher,
    ConfigurationError,
    ContactRepository,
    ContinuationFailed,
    DriftState,
    MessagesRejected,
    RecordedUsage,
    RejectedMessage,
    RunContinuation,
    SalesforceBudgetExhausted,
    SalesforceSource,
    StreamState,
    SyncStateStore,
    WindowProgress,
)
from account_sync.services.drift import DriftConfig, check_drift
from account_sync.settings import SYSTEM_ACCOUNT_FIELDS

CONTACT_FIELDS = ("Id", "AccountId", "FirstName", "LastName", "Email", "SystemModstamp", "IsDeleted")
# Records read between two checkpoints: what a run killed at its timeout reads (and queues) again.
CHECKPOINT_RECORDS = 2000
# Messages per `publish`: a checkpoint's at most, in one call, which the sender spreads over its lanes (and
# returns from once all are queued, so that the checkpoint after it never runs ahead of what is queued).
PUBLISH_CHUNK = CHECKPOINT_RECORDS
# A run stops once less than this is left: enough to queue one checkpoint's records and save the position.
STOP_MARGIN_MS = 30_000
# The lease outlives the Lambda's own deadline by this much, and no more (the next schedule is never blocked).
LEASE_MARGIN_SECONDS = 5
# A run that finds the budget spent asks Salesforce again only once the recorded usage is this old.
BUDGET_RECHECK_SECONDS = 3600


RESYNC_STREAM = "Account.resync"
_RESYNC_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
MAX_RESYNC_IDS = 2000  # ids in one request: 10 queries of 200; a larger set is a window or everything


class InvalidResync(ValueError):
    """A resync request that cannot be carried out as it is; the message says why."""


@dataclass(frozen=True)
class ResyncRequest:
    """Accounts to read again: by id, every one changed in `(since, until]`, or every one (`everything`)."""

    account_ids: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    everything: bool = False

    @classmethod
    def from_event(cls, raw: object) -> ResyncRequest:
        """`"all"`, `{"account_ids": [...]}` or `{"since": T, "until": T}` (until optional: now)."""
        if raw == "all" or (isinstance(raw, Mapping) and raw.get("all") is True and len(raw) == 1):
            return cls(everything=True)
        if not isinstance(raw, Mapping):
            raise InvalidResync('resync must be "all", {"account_ids": [...]} or {"since": ..., "until": ...}')
        unknown = sorted(set(raw) - {"account_ids", "since", "until"})
        if unknown:
            raise InvalidResync(f"resync has unknown keys: {', '.join(unknown)}")
        if "account_ids" in raw:
            if "since" in raw or "until" in raw:
                raise InvalidResync("resync takes account_ids or a window, not both")
            ids = raw["account_ids"]
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise InvalidResync("account_ids must be a non-empty list of Account ids")
            bad = sum(1 for i in ids if not _RESYNC_ID.match(i))
            if bad:
                raise InvalidResync(f"{bad} of the account_ids are not Salesforce ids (15 or 18 letters and digits)")
            if len(ids) > MAX_RESYNC_IDS:
                raise InvalidResync(f"at most {MAX_RESYNC_IDS} account_ids a request: use a window or all")
            return cls(account_ids=tuple(dict.fromkeys(ids)))
        if "since" not in raw:
            raise InvalidResync("a resync window needs since (and optionally until)")
        try:
            since = normalize_timestamp(str(raw["since"]))
            until = normalize_timestamp(str(raw["until"])) if raw.get("until") is not None else None
        except InvalidTimestamp:
            raise InvalidResync("since and until must be ISO-8601 datetimes with a time zone") from None
        if until is not None and until <= since:
            raise InvalidResync("until must be later than since")
        return cls(since=since, until=until)

    def resync_id(self, requested_at: str) -> str:
        """One id per request, the same in every run that drains it: part of its activities' keys."""
        if self.account_ids:
            basis = "ids|" + ",".join(sorted(self.account_ids)) + "|" + requested_at
        else:
            basis = f"window|{self.since or EPOCH}|{self.until or requested_at}"
        return hashlib.sha256(basis.encode()).hexdigest()[:16]


def window_resync_id(progress: WindowProgress) -> str:
    return hashlib.sha256(f"window|{progress.start}|{progress.end}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DriftCheck:
    """A run's drift check (services/drift.py): the store it compares, every `interval_seconds` (None: only when
    asked), or now (`forced`, an operator's `{"drift": ...}`); with `repair`, drifted accounts are resynced."""

    accounts: AccountRepository
    contacts: ContactRepository
    config: DriftConfig
    interval_seconds: int | None = 3600
    forced: bool = False
    repair: bool = False


@dataclass(frozen=True)
class FetchConfig:
    synced_fields: tuple[str, ...]
    lookback_seconds: int = 300
    lease_seconds: int = 300  # without a Lambda context (tests, a script): the lease's length
    api_budget_share: float | None = None  # None: no decision before calling (the adapter still stops at it)
    reconcile_interval_seconds: int | None = None  # None: no sweep
    reconcile_lookback_seconds: int = 3600
    stop_margin_ms: int = STOP_MARGIN_MS
    checkpoint_records: int = CHECKPOINT_RECORDS
    # A resync of a window or everything reads at most this many Accounts a run (then goes on at the next run):
    # the rate at which it costs API calls and fan-out work beside the regular sync.
    resync_records_per_run: int = 50_000
    # A run paused by its remaining time starts the next one at once, at most this many times in a row (a chain);
    # then the schedule starts the next. 0: every paused run waits for the schedule.
    continuation_limit: int = 20


@dataclass
class FetchReport:
    run_id: str
    outcome: str = "completed"
    window_end: str | None = None
    queued: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})  # records
    messages: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})
    swept: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})  # records, by the sweep
    windows: dict[str, list[str]] = field(default_factory=dict)  # per stream read: [start, end]
    reads: dict[str, str] = field(default_factory=dict)  # per stream read: "rest" or "bulk"
    checkpoints: int = 0
    # How far the sweep's watermark is behind the Account one: past interval + lookback, late commits may go unseen.
    sweep_lag_seconds: float | None = None
    api_calls: int = 0
    api_usage: str | None = None
    # Changes that can never be applied (larger than the queue's MaximumMessageSize, or a value DynamoDB cannot
    # store): set aside, never retried, each one logged and counted by the handler (ids, stamps, field names,
    # sizes and the problem; never values).
    rejected: list[dict[str, object]] = field(default_factory=list)
    # A resync this run carried on or out: its id, what it reads, the Accounts queued, and whether it is done.
    resync: dict[str, object] | None = None
    # The synced field list changed since the last run (added, removed): this run started a resync of everything.
    fields_changed: dict[str, list[str]] | None = None
    # A drift check this run made: accounts and contacts compared, the drifted ones (ids, problems), resynced ones.
    drift: dict[str, object] | None = None
    # Which link of a chain of runs this is (0: started by the schedule or an operator), and, for a paused run,
    # whether it started the next one at once: "started", "chain_limit" or "failed: <reason>".
    chain: int = 0
    continued: str | None = None


@dataclass(frozen=True)
class FetchContinuation:
    """The event a paused run invokes its own function with: the next run is link `chain` of a chain of runs
    back to back, which `continuation_limit` bounds (a run the schedule starts is link 0)."""

    chain: int

    def to_event(self) -> dict[str, object]:
        return {"continuation": {"chain": self.chain}}

    @classmethod
    def from_event(cls, event: object) -> FetchContinuation:
        """Link 0 for any event that is not a continuation (the schedule's, an operator's, a malformed one)."""
        raw = event.get("continuation") if isinstance(event, Mapping) else None
        chain = raw.get("chain") if isinstance(raw, Mapping) else None
        if isinstance(chain, int) and not isinstance(chain, bool) and chain > 0:
            return cls(chain)
        return cls(0)


class _OutOfTime(Exception):
    """The run reached its stop margin: the position is saved, the next run resumes there."""


class _RecordsSpent(Exception):
    """The stream read as many records as a run may: the position is saved, the next run resumes there."""


def validate_synced_fields(source: SalesforceSource, synced_fields: Iterable[str]) -> None:
    """An unknown field is a clear error at start, never a broken SOQL string."""
    known = source.account_field_names()
    unknown = sorted(set(synced_fields) - known)
    if unknown:
        raise ConfigurationError(f"SYNCED_ACCOUNT_FIELDS names fields the Account has not: {', '.join(unknown)}")


def fetch_changes(
    source: SalesforceSource,
    publisher: ChangePublisher,
    state: SyncStateStore,
    config: FetchConfig,
    now: Callable[[], str],
    run_id: str,
    remaining_ms: Callable[[], int] | None = None,
    resync: ResyncRequest | None = None,
    drift: DriftCheck | None = None,
    continuation: RunContinuation | None = None,
    chain: int = 0,
) -> FetchReport:
    """One run under the lease; a run paused by its remaining time with work left then starts the next at once
    (`continuation`), after its lease is released. One that stops on the API budget or an error raises: the
    schedule starts the next."""
    report = _run_under_lease(source, publisher, state, config, now, run_id, remaining_ms, resync, drift)
    report.chain = chain
    if continuation is not None and report.outcome == "paused_before_timeout":
        report.continued = _start_next_run(continuation, chain, config.continuation_limit)
    return report


def _start_next_run(continuation: RunContinuation, chain: int, limit: int) -> str:
    if chain >= limit:
        return "chain_limit"
    try:
        continuation.start_next_run(FetchContinuation(chain + 1).to_event())
    except ContinuationFailed as exc:  # the schedule is the safety net: the window waits for it, nothing is lost
        return f"failed: {exc}"
    return "started"


def _run_under_lease(
    source: SalesforceSource,
    publisher: ChangePublisher,
    state: SyncStateStore,
    config: FetchConfig,
    now: Callable[[], str],
    run_id: str,
    remaining_ms: Callable[[], int] | None,
    resync: ResyncRequest | None,
    drift: DriftCheck | None,
) -> FetchReport:
    report = FetchReport(run_id=run_id)
    lease_seconds = config.lease_seconds
    if remaining_ms is not None:
        lease_seconds = math.ceil(remaining_ms() / 1000) + LEASE_MARGIN_SECONDS
    if not state.acquire_lease(run_id, lease_seconds):
        report.outcome = "skipped_another_run_active"
        return report
    recorded: RecordedUsage | None = None
    try:
        if budget_known_spent(state, config.api_budget_share, now()):
            report.outcome = "skipped_api_budget"
            return report
        try:
            validate_synced_fields(source, config.synced_fields)
            _Run(source, publisher, state, config, now, report, remaining_ms).run(resync, drift)
        except _OutOfTime:
            report.outcome = "paused_before_timeout"
        except SalesforceBudgetExhausted:
            recorded = RecordedUsage(usage_spent(source.api_usage, config.api_budget_share), now())
            raise
        return report
    finally:
        report.api_calls = source.api_calls
        usage = source.api_usage
        report.api_usage = f"{usage.used}/{usage.limit}" if usage else None
        if recorded is None and usage is not None:
            recorded = RecordedUsage(usage, now())
        if recorded is not None:
            state.save_api_usage(recorded)
        state.release_lease(run_id)


def usage_spent(usage: ApiUsage | None, share: float | None) -> ApiUsage:
    """The usage to remember after a budget stop: as read when it passed the share, else the whole allocation
    (REQUEST_LIMIT_EXCEEDED answers with no usage the adapter could read). The fetch's and the push path's."""
    if usage is not None and share is not None and usage.share >= share:
        return usage
    limit = usage.limit if usage is not None and usage.limit else 1
    return ApiUsage(used=limit, limit=limit)


def budget_known_spent(state: SyncStateStore, share: float | None, at: str) -> bool:
    """True when the last recorded usage (either path's) already passes the budget and is recent: no call is
    worth making."""
    if share is None:
        return False
    recorded = state.load_api_usage()
    if recorded is None or recorded.usage.share < share:
        return False
    age = (parse_timestamp(at) - parse_timestamp(recorded.measured_at)).total_seconds()
    return age < BUDGET_RECHECK_SECONDS


class _Run:
    """One run: the Account window, then the Contact window ending where it did, then the sweeps when due."""

    def __init__(
        self,
        source: SalesforceSource,
        publisher: ChangePublisher,
        state: SyncStateStore,
        config: FetchConfig,
        now: Callable[[], str],
        report: FetchReport,
        remaining_ms: Callable[[], int] | None,
    ) -> None:
        self.source = source
        self.publisher = publisher
        self.state = state
        self.config = config
        self.now = now
        self.report = report
        self.remaining_ms = remaining_ms
        self.account_fields = [*SYSTEM_ACCOUNT_FIELDS, *config.synced_fields]

    def run(self, resync: ResyncRequest | None = None, drift: DriftCheck | None = None) -> None:
        self._regular()
        if resync is None or resync.account_ids:
            self._resync_on_new_fields()
        self._resync(resync)
        if drift is not None:
            self._drift(drift)

    def _drift(self, drift: DriftCheck) -> None:
        """The drift check when due (like the sweep, the first run starts the clock), or asked for; its findings
        are recorded (`drift#sample`) and, with `repair`, the drifted accounts are resynced at once."""
        last = self.state.load_drift()
        now = self.now()
        if not drift.forced:
            if drift.interval_seconds is None:
                return
            if last is None:
                self.state.save_drift(DriftState(checked_at=now))
                return
            if _seconds_between(last.checked_at, now) < drift.interval_seconds:
                return
        found = check_drift(
            self.source, drift.accounts, drift.contacts, drift.config, last.after_id if last else None, now
        )
        self.state.save_drift(DriftState(now, found.after_id, found.checked, tuple(found.drifted)))
        self.report.drift = {
            "checked": found.checked,
            "contacts_checked": found.contacts_checked,
            "drifted": found.drifted,
            "repaired": 0,
        }
        if drift.repair and found.drifted_ids:
            request = ResyncRequest(account_ids=tuple(found.drifted_ids))
            records = list(self.source.accounts_by_ids(self.account_fields, request.account_ids))
            before = self.report.queued["Account"]
            self._queue("resync", "Account", records, _accounts(self.config.synced_fields, request.resync_id(now)))
            self.report.drift["repaired"] = self.report.queued["Account"] - before

    def _resync_on_new_fields(self) -> None:
        """A SyncedAccountFields other than the one the fetch last read Accounts with (a deployment added or
        removed a field): a resync of everything starts, so that every account is brought to the new list without
        waiting for a Salesforce change. The list is recorded once the resync is started (a crash in between
        starts it again). The first run that records a list starts none: nothing was synced with another one."""
        fields = self.config.synced_fields
        recorded = self.state.load_synced_fields()
        if recorded == fields:
            return
        if recorded is not None and set(recorded) != set(fields):
            progress = WindowProgress(start=EPOCH, end=self.now())
            run = {"run_id": self.report.run_id, "requested": "synced fields changed"}
            self.state.save_progress(RESYNC_STREAM, progress, run)
            self.report.fields_changed = {
                "added": sorted(set(fields) - set(recorded)),
                "removed": sorted(set(recorded) - set(fields)),
            }
        self.state.save_synced_fields(fields, self.now())

    def _resync(self, request: ResyncRequest | None) -> None:
        """A request's named accounts now; a request's window replaces the one in progress (if any); a window in
        progress goes on, `resync_records_per_run` records a run."""
        if request is not None and request.account_ids:
            resync_id = request.resync_id(self.now())
            records = list(self.source.accounts_by_ids(self.account_fields, request.account_ids))
            before = self.report.queued["Account"]
            self._queue("resync", "Account", records, _accounts(self.config.synced_fields, resync_id))
            found = {str(record["Id"]) for record in records}
            self.report.resync = {
                "resync_id": resync_id,
                "account_ids": len(request.account_ids),
                "queued": self.report.queued["Account"] - before,
                "not_found": [i for i in request.account_ids if i not in found],
                "done": True,
            }
            return
        loaded = self.state.load_stream(RESYNC_STREAM)
        if request is not None:
            progress = WindowProgress(start=request.since or EPOCH, end=request.until or self.now())
            loaded = StreamState(loaded.watermark, progress)
            self.state.save_progress(RESYNC_STREAM, progress, {"run_id": self.report.run_id, "requested": True})
        if loaded.progress is None:
            return
        resync_id = window_resync_id(loaded.progress)
        before = self.report.queued["Account"]
        self.report.resync = {
            "resync_id": resync_id,
            "window": [loaded.progress.start, loaded.progress.end],
            "queued": 0,
            "done": False,
        }
        try:
            self._stream(
                RESYNC_STREAM,
                "Account",
                self.account_fields,
                0,
                lambda: loaded.progress.end if loaded.progress else self.now(),
                _accounts(self.config.synced_fields, resync_id),
                loaded,
                max_records=self.config.resync_records_per_run,
            )
            self.report.resync["done"] = True
        except _RecordsSpent:
            pass  # the next run goes on from the checkpoint
        finally:
            self.report.resync["queued"] = self.report.queued["Account"] - before

    def _regular(self) -> None:
        synced = self.config.synced_fields
        lookback = self.config.lookback_seconds
        accounts, contacts = _accounts(synced, path=SyncPath.FETCH), _contacts(SyncPath.FETCH)
        account_end = self._stream("Account", "Account", self.account_fields, lookback, self.now, accounts)
        self.report.window_end = account_end
        self._stream("Contact", "Contact", list(CONTACT_FIELDS), lookback, lambda: account_end, contacts)
        if self.config.reconcile_interval_seconds is None:
            return
        sweep = self.state.load_stream("Account.sweep")
        if sweep.watermark is None:
            # The first sweep covers back from here: anything before is the initial load's, read at its end.
            self.state.save_watermark("Account.sweep", account_end, {"run_id": self.report.run_id})
            self.state.save_watermark("Contact.sweep", account_end, {"run_id": self.report.run_id})
            self.report.sweep_lag_seconds = 0.0
            return
        swept_to = sweep.watermark
        wide = self.config.reconcile_lookback_seconds
        accounts, contacts = _accounts(synced, path=SyncPath.SWEEP), _contacts(SyncPath.SWEEP)
        if _seconds_between(swept_to, account_end) >= self.config.reconcile_interval_seconds or sweep.progress:
            end = lambda: account_end  # noqa: E731
            swept_to = self._stream("Account.sweep", "Account", self.account_fields, wide, end, accounts, sweep)
        self.report.sweep_lag_seconds = _seconds_between(swept_to, account_end)
        self._stream("Contact.sweep", "Contact", list(CONTACT_FIELDS), wide, lambda: swept_to, contacts)

    def _stream(
        self,
        stream: str,
        sobject: str,
        fields: list[str],
        lookback: int,
        end_of_new_window: Callable[[], str],
        to_messages: Callable[[Iterable[Mapping[str, object]]], Iterator[tuple[ChangeMessage | RejectedMessage, int]]],
        loaded: StreamState | None = None,
        max_records: int | None = None,
    ) -> str:
        """Read the stream's window in progress, or a new one, to its end; the stream's watermark after it. With
        `max_records`, the run checkpoints and stops the stream (`_RecordsSpent`) once it read that many."""
        loaded = loaded or self.state.load_stream(stream)
        watermark, progress = loaded.watermark, loaded.progress
        if progress is None:
            start = max(EPOCH, shift(watermark or EPOCH, -lookback))
            progress = WindowProgress(start=start, end=end_of_new_window())
            if watermark is not None and progress.end <= watermark:
                # Nothing new (or a late run whose clock is behind the watermark): it stays where it is.
                self.report.windows[stream] = [progress.start, progress.end]
                return watermark
        self.report.windows[stream] = [progress.start, progress.end]
        records: list[Mapping[str, object]] = []
        position: Mapping[str, str] = progress.position
        items = self.source.read_window(sobject, fields, progress.start, progress.end, dict(progress.position) or None)
        read = 0
        for item in items:
            position = item.position
            self.report.reads[stream] = position.get("mode", "rest")
            if item.record is not None:
                records.append(item.record)
                read += 1
            spent = max_records is not None and read >= max_records
            if len(records) >= self.config.checkpoint_records or spent or (item.record is None and self._out_of_time()):
                self._queue(stream, sobject, records, to_messages)
                records = []
                self._checkpoint(stream, progress, position)
                if self._out_of_time():
                    raise _OutOfTime
                if spent:
                    raise _RecordsSpent
        self._queue(stream, sobject, records, to_messages)
        run = {"run_id": self.report.run_id, "queued": self.report.queued[sobject]}
        if stream == RESYNC_STREAM:
            self.state.end_window(stream, run)  # an earlier window than the last resync's is done all the same
            return progress.end
        self.state.save_watermark(stream, progress.end, run)
        return max(progress.end, watermark or EPOCH)

    def _checkpoint(self, stream: str, progress: WindowProgress, position: Mapping[str, str]) -> None:
        self.state.save_progress(
            stream,
            WindowProgress(progress.start, progress.end, dict(position)),
            {"run_id": self.report.run_id, "checkpoint_at": self.now()},
        )
        self.report.checkpoints += 1

    def _out_of_time(self) -> bool:
        return self.remaining_ms is not None and self.remaining_ms() < self.config.stop_margin_ms

    def _queue(
        self,
        stream: str,
        sobject: str,
        records: list[Mapping[str, object]],
        to_messages: Callable[[Iterable[Mapping[str, object]]], Iterator[tuple[ChangeMessage | RejectedMessage, int]]],
    ) -> None:
        pending: list[ChangeMessage] = []
        pending_records = 0
        for message, count in to_messages(records):
            if isinstance(message, RejectedMessage):  # a value DynamoDB cannot store: never queued
                self.report.rejected.append(rejected_change(sobject, message))
                continue
            pending.append(message)
            pending_records += count
            if len(pending) >= PUBLISH_CHUNK:
                self._send(stream, sobject, pending, pending_records)
                pending, pending_records = [], 0
        if pending:
            self._send(stream, sobject, pending, pending_records)

    def _send(self, stream: str, sobject: str, pending: list[ChangeMessage], pending_records: int) -> None:
        refused: tuple[RejectedMessage, ...] = ()
        try:
            self.publisher.publish(pending)
        except MessagesRejected as exc:
            # The queue will never take these as they are: sending them again would fail every run and hold the
            # watermark back for every other change. They are set aside and reported (docs/decisions.md).
            refused = exc.rejected
            self.report.rejected += [rejected_change(sobject, rejected) for rejected in refused]
        queued = pending_records - sum(_records_in(r.message) for r in refused)
        self.report.queued[sobject] += queued
        self.report.messages[sobject] += len(pending) - len(refused)
        if stream.endswith(".sweep"):
            self.report.swept[sobject] += queued


def _accounts(
    synced_fields: tuple[str, ...], resync_id: str | None = None, path: SyncPath = SyncPath.RESYNC
) -> Callable[[Iterable[Mapping[str, object]]], Iterator[tuple[ChangeMessage | RejectedMessage, int]]]:
    return lambda records: account_messages(records, synced_fields, resync_id, path)


def _contacts(
    path: SyncPath,
) -> Callable[[Iterable[Mapping[str, object]]], Iterator[tuple[ChangeMessage | RejectedMessage, int]]]:
    return lambda records: contact_messages(records, path=path)


def _seconds_between(earlier: str, later: str) -> float:
    return (parse_timestamp(later) - parse_timestamp(earlier)).total_seconds()


def rejected_change(sobject: str, rejected: RejectedMessage) -> dict[str, object]:
    """What an operator needs to find and fix a change the queue refused, without any of its values."""
    message = rejected.message
    described: dict[str, object] = {"sobject": sobject, "reason": rejected.reason}
    if isinstance(message, AccountChangeMessage):
        sizes = {name: len(json.dumps(value)) for name, value in message.version.fields.items()}
        described.update(
            record_id=message.version.account_id,
            system_modstamp=message.version.system_modstamp,
            largest_fields=dict(sorted(sizes.items(), key=lambda item: -item[1])[:3]),
        )
    elif isinstance(message, ContactChangesMessage):
        described["record_ids"] = [version.contact_id for version in message.versions]
    return described


def _records_in(message: object) -> int:
    return len(message.versions) if isinstance(message, ContactChangesMessage) else 1


def account_messages(
    records: Iterable[Mapping[str, object]],
    synced_fields: Iterable[str],
    resync_id: str | None = None,
    path: SyncPath | None = None,
) -> Iterator[tuple[ChangeMessage | RejectedMessage, int]]:
    fields = tuple(synced_fields)
    for record in records:
        message = AccountChangeMessage(account_version(record, fields), resync_id, path)
        try:
            for name, value in message.version.fields.items():
                storable_value(value, name)
        except UnstorableValue as exc:
            yield RejectedMessage(message, str(exc)), 1
            continue
        yield message, 1


def contact_messages(
    records: Iterable[Mapping[str, object]],
    per_message: int = CONTACTS_PER_MESSAGE,
    max_buffered: int = 5000,
    path: SyncPath | None = None,
) -> Iterator[tuple[ChangeMessage | RejectedMessage, int]]:
    """Contacts of one account travel together, up to `per_message` a message; at most `max_buffered` wait. A
    contact without an account is its own message group (`contact_group`): its message goes at once. `path`: the
    path that read them, carried to their activities."""
    groups: dict[str, list[ContactVersion]] = {}
    buffered = 0
    for record in records:
        version = contact_version(record)
        try:
            for name in ("first_name", "last_name", "email"):
                storable_value(getattr(version, name), _CONTACT_FIELD_NAMES[name])
        except UnstorableValue as exc:
            yield RejectedMessage(ContactChangesMessage((version,), path), str(exc)), 1
            continue
        if version.account_id is None:
            yield ContactChangesMessage((version,), path), 1
            continue
        group = groups.setdefault(contact_group(version), [])
        group.append(version)
        buffered += 1
        if len(group) >= per_message:
            del groups[contact_group(version)]
            buffered -= len(group)
            yield ContactChangesMessage(tuple(group), path), len(group)
        if buffered >= max_buffered:
            for versions in groups.values():
                yield ContactChangesMessage(tuple(versions), path), len(versions)
            groups, buffered = {}, 0
    for versions in groups.values():
        yield ContactChangesMessage(tuple(versions), path), len(versions)


_CONTACT_FIELD_NAMES = {"first_name": "FirstName", "last_name": "LastName", "email": "Email"}


def account_version(record: Mapping[str, object], synced_fields: Iterable[str]) -> AccountVersion:
    return AccountVersion(
        account_id=str(record["Id"]),
        system_modstamp=normalize_timestamp(str(record["SystemModstamp"])),
        is_deleted=bool(record.get("IsDeleted", False)),
        fields={name: canonical_value(record.get(name)) for name in synced_fields},
    )


def contact_version(record: Mapping[str, object]) -> ContactVersion:
    def text(name: str) -> str | None:
        value = record.get(name)
        return None if value is None else str(value)

    return ContactVersion(
        contact_id=str(record["Id"]),
        system_modstamp=normalize_timestamp(str(record["SystemModstamp"])),
        is_deleted=bool(record.get("IsDeleted", False)),
        account_id=text("AccountId"),
        first_name=text("FirstName"),
        last_name=text("LastName"),
        email=text("Email"),
    )
