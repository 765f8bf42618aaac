"""Push: Change Data Capture events name records; read them again, by id, and queue them like the fetch does.

An event is a nudge, never the data written (docs/decisions.md, "Near-real-time sync"). For one batch of events the
ids are collected per object, deduplicated, and read with one `queryAll` per 200 ids (deleted rows too), with the
fields the fetch reads; the records become the fetch's own `account_change` / `contact_changes` messages, Accounts
first. Every queued version carries its SystemModstamp, so duplicates, reordering and a poll reading the same
version are absorbed by the store's guards and the queue's deduplication, as for the poll.

Nothing here moves a watermark: the poll reads every change whatever the push path did, so an event this function
gives up on (an overflow, a spent budget, a dead letter) is the poll's, at its next window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from account_sync.change_events import ChangeNudge
from account_sync.contracts import ChangeMessage, ContactChangesMessage
from account_sync.domain.records import SyncPath
from account_sync.ports import (
    ApiUsage,
    ChangePublisher,
    MessagesRejected,
    RecordedUsage,
    RejectedMessage,
    SalesforceBudgetExhausted,
    SyncStateStore,
)
from account_sync.services.fetch_changes import (
    CONTACT_FIELDS,
    account_messages,
    budget_known_spent,
    contact_messages,
    rejected_change,
    usage_spent,
)
from account_sync.settings import SYSTEM_ACCOUNT_FIELDS


class RecordReader(Protocol):
    """The Salesforce read the push path needs (`SalesforceRestSource` is one)."""

    def records_by_id(
        self, sobject: str, fields: Sequence[str], record_ids: Sequence[str]
    ) -> Iterable[Mapping[str, object]]: ...

    @property
    def api_usage(self) -> ApiUsage | None: ...

    @property
    def api_calls(self) -> int: ...


@dataclass(frozen=True)
class PushConfig:
    synced_fields: tuple[str, ...]
    api_budget_share: float | None = None
    own_client_id: str | None = None  # Account Sync's own API client (Convert Person): its echo is counted apart


@dataclass
class PushReport:
    outcome: str = "completed"  # or "skipped_api_budget", "stopped_api_budget"
    events: int = 0
    gap_events: int = 0
    own_origin: int = 0  # events of changes Account Sync itself made
    left_to_poll: int = 0  # events naming changes without ids (overflow, wildcard): the poll covers them
    read: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})  # distinct ids asked for
    found: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})  # records Salesforce had
    queued: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})  # records queued
    api_calls: int = 0
    api_usage: str | None = None
    rejected: list[dict[str, object]] = field(default_factory=list)


def push_changes(
    nudges: Sequence[ChangeNudge],
    source: RecordReader,
    publisher: ChangePublisher,
    state: SyncStateStore,
    config: PushConfig,
    now: Callable[[], str],
) -> PushReport:
    """Read again the records `nudges` name and queue them. SalesforceBudgetExhausted is not raised: the batch is
    left to the poll (outcome `stopped_api_budget`). TransientError and the like propagate: SQS retries the batch."""
    report = PushReport(events=len(nudges))
    ids: dict[str, dict[str, None]] = {"Account": {}, "Contact": {}}
    for nudge in nudges:
        report.gap_events += nudge.is_gap
        report.own_origin += nudge.from_client(config.own_client_id)
        report.left_to_poll += nudge.left_to_poll
        ids[nudge.sobject].update(dict.fromkeys(nudge.record_ids))
    if not any(ids.values()):
        return report
    if budget_known_spent(state, config.api_budget_share, now()):
        report.outcome = "skipped_api_budget"
        return report
    recorded: RecordedUsage | None = None
    try:
        account_fields = [*SYSTEM_ACCOUNT_FIELDS, *config.synced_fields]
        for sobject, fields in (("Account", account_fields), ("Contact", list(CONTACT_FIELDS))):
            if ids[sobject]:
                _read_and_queue(sobject, fields, list(ids[sobject]), source, publisher, config, report)
    except SalesforceBudgetExhausted:
        report.outcome = "stopped_api_budget"
        recorded = RecordedUsage(usage_spent(source.api_usage, config.api_budget_share), now())
    finally:
        report.api_calls = source.api_calls
        usage = source.api_usage
        report.api_usage = f"{usage.used}/{usage.limit}" if usage else None
        if recorded is None and usage is not None:
            recorded = RecordedUsage(usage, now())
        if recorded is not None:
            state.save_api_usage(recorded)
    return report


def _read_and_queue(
    sobject: str,
    fields: list[str],
    record_ids: list[str],
    source: RecordReader,
    publisher: ChangePublisher,
    config: PushConfig,
    report: PushReport,
) -> None:
    report.read[sobject] += len(record_ids)
    records = list(source.records_by_id(sobject, fields, record_ids))
    report.found[sobject] += len(records)
    to_messages = (
        account_messages(records, config.synced_fields, path=SyncPath.PUSH)
        if sobject == "Account"
        else contact_messages(records, path=SyncPath.PUSH)
    )
    pending: list[ChangeMessage] = []
    counts = 0
    for message, count in to_messages:
        if isinstance(message, RejectedMessage):  # a value DynamoDB cannot store: never queued
            report.rejected.append(rejected_change(sobject, message))
            continue
        pending.append(message)
        counts += count
    if not pending:
        return
    try:
        publisher.publish(pending)
    except MessagesRejected as exc:
        # Larger than the queue takes: set aside and reported, as the fetch does (the poll will meet it too).
        report.rejected += [rejected_change(sobject, rejected) for rejected in exc.rejected]
        counts -= sum(_records_in(rejected.message) for rejected in exc.rejected)
    report.queued[sobject] += counts


def _records_in(message: object) -> int:
    return len(message.versions) if isinstance(message, ContactChangesMessage) else 1
