"""Fetch: read the Accounts and Contacts changed in Salesforce since the last run and queue them.

The window of a run is `(watermark - lookback, now]`. The overlap catches a transaction that committed late with
an earlier SystemModstamp; the (SystemModstamp, Id) order and the keyset restart of the adapter never skip
records sharing a stamp. Accounts are queued before Contacts, so that a contact joining a new account finds it.
Each object's watermark moves to `now` only once every change of its window is queued: a run that stops early
(API budget, a crash) leaves it, and the next run reads the window again; re-reads are harmless, because
applying a version is idempotent. A change that can never be applied is the one exception: larger than the
queue's MaximumMessageSize, or holding a value DynamoDB cannot store (`domain.fields.storable_value`: a number of
more than 38 digits or out of range, NaN, Infinity, a text larger than an item). It is set aside and reported in
`FetchReport.rejected` instead of queued, so that it neither holds back every other change forever nor fails a
write downstream.
"""

from __future__ import annotations

import json
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
from account_sync.domain.records import AccountVersion, ContactVersion
from account_sync.domain.timestamps import EPOCH, normalize_timestamp, shift
from account_sync.ports import (
    ChangePublisher,
    ConfigurationError,
    MessagesRejected,
    RejectedMessage,
    SalesforceSource,
    SyncStateStore,
)
from account_sync.settings import SYSTEM_ACCOUNT_FIELDS

CONTACT_FIELDS = ("Id", "AccountId", "FirstName", "LastName", "Email", "SystemModstamp", "IsDeleted")
PUBLISH_CHUNK = 100


@dataclass(frozen=True)
class FetchConfig:
    synced_fields: tuple[str, ...]
    lookback_seconds: int = 300
    lease_seconds: int = 300


@dataclass
class FetchReport:
    run_id: str
    outcome: str = "completed"
    window_end: str | None = None
    queued: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})  # records
    messages: dict[str, int] = field(default_factory=lambda: {"Account": 0, "Contact": 0})
    windows: dict[str, list[str]] = field(default_factory=dict)
    api_calls: int = 0
    api_usage: str | None = None
    # Changes that can never be applied (larger than the queue's MaximumMessageSize, or a value DynamoDB cannot
    # store): set aside, never retried, each one logged and counted by the handler (ids, stamps, field names,
    # sizes and the problem; never values).
    rejected: list[dict[str, object]] = field(default_factory=list)


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
) -> FetchReport:
    report = FetchReport(run_id=run_id)
    if not state.acquire_lease(run_id, config.lease_seconds):
        report.outcome = "skipped_another_run_active"
        return report
    try:
        validate_synced_fields(source, config.synced_fields)
        window_end = now()
        report.window_end = window_end
        account_fields = [*SYSTEM_ACCOUNT_FIELDS, *config.synced_fields]
        _fetch_object(
            source,
            publisher,
            state,
            config,
            "Account",
            account_fields,
            window_end,
            report,
            lambda records: account_messages(records, config.synced_fields),
        )
        _fetch_object(
            source,
            publisher,
            state,
            config,
            "Contact",
            list(CONTACT_FIELDS),
            window_end,
            report,
            contact_messages,
        )
        return report
    finally:
        report.api_calls = source.api_calls
        usage = source.api_usage
        report.api_usage = f"{usage.used}/{usage.limit}" if usage else None
        state.release_lease(run_id)


def _fetch_object(
    source: SalesforceSource,
    publisher: ChangePublisher,
    state: SyncStateStore,
    config: FetchConfig,
    sobject: str,
    fields: list[str],
    window_end: str,
    report: FetchReport,
    to_messages: Callable[[Iterable[Mapping[str, object]]], Iterator[tuple[ChangeMessage | RejectedMessage, int]]],
) -> None:
    watermark = state.load_watermark(sobject) or EPOCH
    window_start = max(EPOCH, shift(watermark, -config.lookback_seconds))
    report.windows[sobject] = [window_start, window_end]
    pending: list[ChangeMessage] = []
    pending_records = 0

    def send() -> None:
        refused: tuple[RejectedMessage, ...] = ()
        try:
            publisher.publish(pending)
        except MessagesRejected as exc:
            # The queue will never take these as they are: sending them again would fail every run and hold the
            # watermark back for every other change. They are set aside and reported (docs/decisions.md).
            refused = exc.rejected
            report.rejected += [rejected_change(sobject, rejected) for rejected in refused]
        report.queued[sobject] += pending_records - sum(_records_in(r.message) for r in refused)
        report.messages[sobject] += len(pending) - len(refused)

    for message, records in to_messages(source.changed_records(sobject, fields, window_start, window_end)):
        if isinstance(message, RejectedMessage):  # a value DynamoDB cannot store: never queued
            report.rejected.append(rejected_change(sobject, message))
            continue
        pending.append(message)
        pending_records += records
        if len(pending) >= PUBLISH_CHUNK:
            send()
            pending, pending_records = [], 0
    if pending:
        send()
    state.save_watermark(sobject, window_end, {"run_id": report.run_id, "queued": report.queued[sobject]})


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
    records: Iterable[Mapping[str, object]], synced_fields: Iterable[str]
) -> Iterator[tuple[ChangeMessage | RejectedMessage, int]]:
    fields = tuple(synced_fields)
    for record in records:
        message = AccountChangeMessage(account_version(record, fields))
        try:
            for name, value in message.version.fields.items():
                storable_value(value, name)
        except UnstorableValue as exc:
            yield RejectedMessage(message, str(exc)), 1
            continue
        yield message, 1


def contact_messages(
    records: Iterable[Mapping[str, object]], per_message: int = CONTACTS_PER_MESSAGE, max_buffered: int = 5000
) -> Iterator[tuple[ChangeMessage | RejectedMessage, int]]:
    """Contacts of one account travel together, up to `per_message` a message; at most `max_buffered` wait. A
    contact without an account is its own message group (`contact_group`): its message goes at once."""
    groups: dict[str, list[ContactVersion]] = {}
    buffered = 0
    for record in records:
        version = contact_version(record)
        try:
            for name in ("first_name", "last_name", "email"):
                storable_value(getattr(version, name), _CONTACT_FIELD_NAMES[name])
        except UnstorableValue as exc:
            yield RejectedMessage(ContactChangesMessage((version,)), str(exc)), 1
            continue
        if version.account_id is None:
            yield ContactChangesMessage((version,)), 1
            continue
        group = groups.setdefault(contact_group(version), [])
        group.append(version)
        buffered += 1
        if len(group) >= per_message:
            del groups[contact_group(version)]
            buffered -= len(group)
            yield ContactChangesMessage(tuple(group)), len(group)
        if buffered >= max_buffered:
            for versions in groups.values():
                yield ContactChangesMessage(tuple(versions)), len(versions)
            groups, buffered = {}, 0
    for versions in groups.values():
        yield ContactChangesMessage(tuple(versions)), len(versions)


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
