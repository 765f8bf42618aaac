"""Fan-out: apply Salesforce changes to the contacts of the store (SPEC R2, R3, R4, R6 and deletes).

Order of operations for an account version, and why:
1. The account item decides (a conditional write on its SystemModstamp): older versions stop here, before they
   touch a contact; the same version resumes; a newer one is accepted together with its activity decision,
   made once per version from a bounded count of the account's contacts.
2. An account small enough is fanned out at once; a larger one is split into planned segments, queued, each
   applied by one invocation (no chain of self-invocations).
3. Each contact is written only if a synced value changes, with a condition that it still belongs to the account
   and holds an older version; the write keeps the previous values of the fields it changed, so that a
   redelivery after a crash re-emits the same (deterministically keyed) activities instead of losing them.

A local edit (SPEC R3) takes the same three steps: the stored account records it as the field's last edit over
the newest version (`domain.local_edits`: a later edit or a newer version supersedes it, at every step), a large
account is planned in segments, and each contact write keeps the edit and the field's value before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

from account_sync.contracts import (
    AccountChangeMessage,
    AccountSegmentMessage,
    ActivityBatchMessage,
    ChangeMessage,
    ContactChangesMessage,
    ContactFieldChange,
    LocalEditMessage,
    LocalEditSegmentMessage,
)
from account_sync.domain.activity_policy import ActivityLogging, activity_logging_for
from account_sync.domain.fields import FieldChange, canonical_value, diff_fields
from account_sync.domain.local_edits import EditVerdict, edits_since, judge_local_edit
from account_sync.domain.records import (
    AccountVersion,
    ActivitySuppression,
    ChangeOrigin,
    ContactVersion,
    LocalEdit,
)
from account_sync.domain.versions import VersionVerdict, compare_versions
from account_sync.ports import (
    Acceptance,
    AccountRepository,
    AccountState,
    ActivityPublisher,
    ActivityStore,
    ChangePublisher,
    ContactRepository,
    ContactSnapshot,
    TransientError,
)

ACTIVITY_CHANGES_PER_MESSAGE = 200
ACTIVITY_BYTES_PER_MESSAGE = 192 * 1024
ACTIVITY_MESSAGES_PER_PUBLISH = 10  # what one SendMessageBatch takes: SQS bills per request
_WRITE_WINDOW = 256

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class FanOutConfig:
    synced_fields: tuple[str, ...]
    activity_threshold: int = 5000
    segment_size: int = 500


@dataclass
class FanOutReport:
    """What one message did; the handler turns it into log fields and metrics."""

    kind: str
    outcome: str
    account_id: str | None = None
    contacts_written: int = 0
    contacts_unchanged: int = 0
    contacts_skipped: int = 0
    activities_queued: int = 0
    segments_planned: int = 0
    activity_logging: str | None = None
    suppressed: bool = False
    changed_fields: list[str] = field(default_factory=list)
    # The SystemModstamp of a version that this message brought to the last of its account's contacts: the
    # handler measures the sync's freshness (SyncLagSeconds) from it.
    completed_version: str | None = None


class FanOut:
    def __init__(
        self,
        accounts: AccountRepository,
        contacts: ContactRepository,
        changes: ChangePublisher,
        activities: ActivityPublisher,
        activity_store: ActivityStore,
        config: FanOutConfig,
        now: Callable[[], str],
        executor: Executor | None = None,
    ) -> None:
        self._accounts = accounts
        self._contacts = contacts
        self._changes = changes
        self._activities = activities
        self._activity_store = activity_store
        self._config = config
        self._now = now
        self._executor = executor
        self._accounts_seen: dict[str, AccountState | None] = {}

    def begin_batch(self) -> None:
        """A new batch of messages: forget the accounts read for the previous one."""
        self._accounts_seen.clear()

    def apply(self, message: ChangeMessage) -> FanOutReport:
        if isinstance(message, AccountChangeMessage):
            return self.apply_account_change(message.version)
        if isinstance(message, AccountSegmentMessage):
            return self.apply_segment(message)
        if isinstance(message, LocalEditMessage):
            return self.apply_local_edit(message.edit)
        if isinstance(message, LocalEditSegmentMessage):
            return self.apply_local_edit_segment(message)
        return self.apply_contact_changes(message)

    # --- account versions ------------------------------------------------------------------------------

    def apply_account_change(self, version: AccountVersion) -> FanOutReport:
        report = FanOutReport(kind="account_change", outcome="", account_id=version.account_id)
        self._accounts_seen.pop(version.account_id, None)
        stored = self._accounts.get(version.account_id)
        verdict = compare_versions(version.system_modstamp, stored.system_modstamp if stored else None)
        if verdict is VersionVerdict.OLDER:
            report.outcome = "stale"
            return report
        if verdict is VersionVerdict.SAME and stored and stored.applied_modstamp == version.system_modstamp:
            report.outcome = "already_applied"
            return report
        if (
            verdict is VersionVerdict.NEWER
            and stored is not None
            and self._changes_no_contact(stored, version)
            and self._accounts.accept_unchanged_version(version, stored)
        ):
            report.outcome = "unchanged"
            return report

        count_limit = max(self._config.activity_threshold, self._config.segment_size) + 1
        counted = self._contacts.count_members(version.account_id, limit=count_limit)
        if verdict is VersionVerdict.NEWER:
            logging = activity_logging_for(counted, self._config.activity_threshold)
            changed = [] if version.is_deleted else self._account_level_changes(stored, version)
            accepted = self._accounts.accept_version(
                version, logging, min(counted, self._config.activity_threshold + 1), changed
            )
            if accepted.acceptance in (Acceptance.STALE, Acceptance.ALREADY_APPLIED):
                report.outcome = accepted.acceptance.value  # lost a race with another delivery
                return report
            state = accepted.state
            report.outcome = accepted.acceptance.value
        else:
            assert stored is not None
            state = stored
            report.outcome = Acceptance.RESUME.value

        logging = state.activity_logging or ActivityLogging.LOGGED
        report.activity_logging = logging.value
        report.changed_fields = list(state.changed_fields)
        if logging is ActivityLogging.SUPPRESSED and state.changed_fields and not version.is_deleted:
            self._record_suppression(version, state)
            report.suppressed = True

        if counted <= self._config.segment_size:
            self._apply_range(version, logging, None, None, report)
            self._accounts.mark_applied(version.account_id, version.system_modstamp)
            report.completed_version = version.system_modstamp
        else:
            report.segments_planned = self._plan_segments(version, logging)
        return report

    def apply_segment(self, segment: AccountSegmentMessage) -> FanOutReport:
        version = segment.version
        report = FanOutReport(kind="account_segment", outcome="", account_id=version.account_id)
        report.activity_logging = segment.activity_logging.value
        stored = self._accounts.get(version.account_id)
        if stored is None or compare_versions(version.system_modstamp, stored.system_modstamp) is not (
            VersionVerdict.SAME
        ):
            # A newer version has been accepted since the plan: its own fan-out covers every contact.
            report.outcome = "stale"
            return report
        self._apply_range(
            version, segment.activity_logging, segment.after_contact_id, segment.through_contact_id, report
        )
        if self._accounts.complete_segment(version.account_id, version.system_modstamp, segment.segment_id):
            self._accounts.mark_applied(version.account_id, version.system_modstamp)
            report.completed_version = version.system_modstamp
        report.outcome = "applied"
        return report

    def _changes_no_contact(self, stored: AccountState, version: AccountVersion) -> bool:
        """True when the stored version reached every contact and the new one differs from it in no synced field
        and not in being deleted (a SystemModstamp-only change, a change of a field that is not synced): then
        every contact already holds the new values, and reading them would cost a page per 1 MB of contacts
        and, for a large account, an invocation per segment, to write nothing. Not after a local edit over the
        stored version: its segments may still be on their way to the contacts (an edit that restored the
        Salesforce value leaves the stored fields equal to the version's), so the version is fanned out and
        overwrites every contact (SPEC R3)."""
        return (
            stored.system_modstamp is not None
            and stored.applied_modstamp == stored.system_modstamp
            and stored.is_deleted == version.is_deleted
            and not edits_since(stored.local_edits, stored.system_modstamp)
            and not diff_fields(stored.fields, version.fields, self._config.synced_fields)
        )

    def _account_level_changes(self, stored: AccountState | None, version: AccountVersion) -> list[str]:
        previous = stored.fields if stored else {}
        return [change.field for change in diff_fields(previous, version.fields, self._config.synced_fields)]

    def _record_suppression(self, version: AccountVersion, state: AccountState) -> None:
        self._activity_store.put_suppression(
            ActivitySuppression(
                account_id=version.account_id,
                system_modstamp=version.system_modstamp,
                contacts_counted=state.contacts_counted or self._config.activity_threshold + 1,
                threshold=self._config.activity_threshold,
                changed_fields=tuple(state.changed_fields),
                activity_at=self._now(),
            )
        )

    def _plan_segments(self, version: AccountVersion, logging: ActivityLogging) -> int:
        ranges = list(self._contacts.member_key_pages(version.account_id, self._config.segment_size))
        plan_id = uuid.uuid4().hex[:12]
        self._accounts.start_segments(version.account_id, version.system_modstamp, plan_id, len(ranges))
        self._changes.publish(
            [
                AccountSegmentMessage(
                    version=version,
                    plan_id=plan_id,
                    index=index,
                    total=len(ranges),
                    after_contact_id=after,
                    through_contact_id=through,
                    activity_logging=logging,
                )
                for index, (after, through) in enumerate(ranges)
            ]
        )
        return len(ranges)

    def _apply_range(
        self,
        version: AccountVersion,
        logging: ActivityLogging,
        after: str | None,
        through: str | None,
        report: FanOutReport,
    ) -> None:
        log_activities = logging is ActivityLogging.LOGGED and not version.is_deleted
        outbox = _ActivityOutbox(self._activities, version.account_id, version.system_modstamp, ChangeOrigin.ACCOUNT)
        members = self._contacts.members(version.account_id, after, through)
        for window in _windows(members, _WRITE_WINDOW):
            to_write: list[tuple[ContactSnapshot, list[FieldChange]]] = []
            for contact in window:
                verdict = compare_versions(version.system_modstamp, contact.account_modstamp)
                if verdict is VersionVerdict.OLDER:
                    report.contacts_skipped += 1
                    continue
                if verdict is VersionVerdict.SAME:
                    # Written by an earlier delivery of this version: re-emit its activities (same keys).
                    report.contacts_unchanged += 1
                    if log_activities:
                        outbox.add(contact.contact_id, self._changes_already_written(contact, version))
                    continue
                changes = diff_fields(contact.account_fields, version.fields, self._config.synced_fields)
                if not changes and contact.account_deleted == version.is_deleted:
                    report.contacts_unchanged += 1
                    continue
                to_write.append((contact, changes))

            def write(item: tuple[ContactSnapshot, list[FieldChange]]) -> bool:
                contact, changes = item
                return self._contacts.apply_account_version(contact.contact_id, version, changes)

            for (contact, changes), written in zip(to_write, self._concurrently(write, to_write), strict=True):
                if not written:
                    report.contacts_skipped += 1
                    continue
                report.contacts_written += 1
                if log_activities:
                    outbox.add(contact.contact_id, changes)
        report.activities_queued += outbox.flush()

    def _concurrently(self, call: Callable[[_Item], _Result], items: Sequence[_Item]) -> list[_Result]:
        """`call` on every item, on the executor's threads (the contacts' writes and reads: each one is a request
        of its own), results in the order of `items`."""
        if self._executor is None or len(items) < 2:
            return [call(item) for item in items]
        return list(self._executor.map(call, items))

    @staticmethod
    def _changes_already_written(contact: ContactSnapshot, version: AccountVersion) -> list[FieldChange]:
        return [
            FieldChange(name, previous, version.fields.get(name)) for name, previous in contact.previous_values.items()
        ]

    # --- contact versions ------------------------------------------------------------------------------

    def apply_contact_changes(self, message: ContactChangesMessage) -> FanOutReport:
        """Each version applies on its own (conditional on the contact's SystemModstamp): a redelivery after a
        partial failure rewrites nothing already written."""
        report = FanOutReport(kind="contact_changes", outcome="applied", account_id=message.versions[0].account_id)
        for account_id in {v.account_id for v in message.versions if v.account_id and not v.is_deleted}:
            self._account(account_id)  # once, before the writes run side by side
        if self._executor is None or len(message.versions) < 2:
            applied = [self.apply_contact_change(version) for version in message.versions]
        else:
            applied = list(self._executor.map(self.apply_contact_change, message.versions))
        report.contacts_written = sum(a.contacts_written for a in applied)
        report.contacts_skipped = len(applied) - report.contacts_written
        return report

    def apply_contact_change(self, version: ContactVersion) -> FanOutReport:
        """SPEC R4: a contact takes its (new) account's fields; a deleted contact is flagged and leaves it."""
        report = FanOutReport(kind="contact_change", outcome="", account_id=version.account_id)
        account = None
        if version.account_id and not version.is_deleted:
            account = self._account(version.account_id)
        written = self._contacts.apply_contact_version(version, account)
        report.outcome = "applied" if written else "stale"
        report.contacts_written = int(written)
        return report

    def _account(self, account_id: str) -> AccountState | None:
        """The account as stored, read once per batch: a FIFO batch often holds many contacts of one account,
        and no other consumer handles that account (its message group) meanwhile."""
        if account_id not in self._accounts_seen:
            self._accounts_seen[account_id] = self._accounts.get(account_id)
        return self._accounts_seen[account_id]

    # --- local edits -----------------------------------------------------------------------------------

    def apply_local_edit(self, edit: LocalEdit) -> FanOutReport:
        """SPEC R3: the edited field changes on the stored account and on every contact of the account, with
        activities of source "local" under the same threshold rule. The account's SystemModstamp is kept, so its
        next Salesforce version overwrites every synced field again.

        Like an account version: the stored account decides first (the edit is recorded as the field's last one,
        over the account's newest version; a later edit of the field or a newer version supersedes it), then an
        account small enough is written at once and a larger one is planned in segments queued behind it."""
        report = FanOutReport(kind="local_edit", outcome="", account_id=edit.account_id, changed_fields=[edit.field])
        self._accounts_seen.pop(edit.account_id, None)
        stored = self._accounts.get(edit.account_id)
        if stored is None or stored.system_modstamp is None or stored.is_deleted:
            report.outcome = "account_not_synced"
            return report
        base = stored.system_modstamp
        verdict = judge_local_edit(edit, stored.local_edits.get(edit.field), base)
        if verdict is EditVerdict.SUPERSEDED:
            report.outcome = "superseded"
            return report

        count_limit = max(self._config.activity_threshold, self._config.segment_size) + 1
        counted = self._contacts.count_members(edit.account_id, limit=count_limit)
        logging = activity_logging_for(counted, self._config.activity_threshold)
        report.activity_logging = logging.value
        if verdict is EditVerdict.APPLY:
            # The suppression record first: decided from the stored value before the edit, which a redelivery
            # after the account write no longer sees.
            if logging is ActivityLogging.SUPPRESSED and diff_fields(
                stored.fields, {edit.field: edit.value}, [edit.field]
            ):
                self._record_edit_suppression(edit, counted)
                report.suppressed = True
            if not self._accounts.apply_local_edit(edit, stored):
                # Only another delivery writing the same account at the same time gets here: decide again later.
                raise TransientError(f"account {edit.account_id} changed while a local edit was applied to it")

        if counted <= self._config.segment_size and stored.applied_modstamp == base:
            self._apply_edit_range(edit, base, logging, None, None, report)
            report.outcome = "applied"
        else:
            # A large account; or the account's newest version is still being fanned out in segments, which were
            # queued behind this edit: the edit's own segments go behind them, so that the edit lands last.
            report.segments_planned = self._plan_edit_segments(edit, base, logging)
            report.outcome = "planned"
        return report

    def apply_local_edit_segment(self, segment: LocalEditSegmentMessage) -> FanOutReport:
        edit = segment.edit
        report = FanOutReport(
            kind="local_edit_segment",
            outcome="",
            account_id=edit.account_id,
            activity_logging=segment.activity_logging.value,
            changed_fields=[edit.field],
        )
        stored = self._accounts.get(edit.account_id)
        mark = stored.local_edits.get(edit.field) if stored else None
        if (
            stored is None
            or stored.is_deleted
            or stored.system_modstamp != segment.base_modstamp
            or mark is None
            or not mark.is_edit(edit)
        ):
            # A newer Salesforce version was accepted since the plan (it overwrites the edit: SPEC R3), or a later
            # edit of the field was applied (its own fan-out covers every contact).
            report.outcome = "superseded"
            return report
        self._apply_edit_range(
            edit,
            segment.base_modstamp,
            segment.activity_logging,
            segment.after_contact_id,
            segment.through_contact_id,
            report,
        )
        report.outcome = "applied"
        return report

    def _record_edit_suppression(self, edit: LocalEdit, counted: int) -> None:
        self._activity_store.put_suppression(
            ActivitySuppression(
                account_id=edit.account_id,
                system_modstamp=edit.edited_at,
                contacts_counted=min(counted, self._config.activity_threshold + 1),
                threshold=self._config.activity_threshold,
                changed_fields=(edit.field,),
                activity_at=self._now(),
                origin=ChangeOrigin.LOCAL,
            )
        )

    def _plan_edit_segments(self, edit: LocalEdit, base: str, logging: ActivityLogging) -> int:
        ranges = list(self._contacts.member_key_pages(edit.account_id, self._config.segment_size))
        self._changes.publish(
            [
                LocalEditSegmentMessage(
                    edit=edit,
                    base_modstamp=base,
                    index=index,
                    total=len(ranges),
                    after_contact_id=after,
                    through_contact_id=through,
                    activity_logging=logging,
                )
                for index, (after, through) in enumerate(ranges)
            ]
        )
        return len(ranges)

    def _apply_edit_range(
        self,
        edit: LocalEdit,
        base: str,
        logging: ActivityLogging,
        after: str | None,
        through: str | None,
        report: FanOutReport,
    ) -> None:
        """Write the edited field on the contacts of the range, a window at a time on the executor. Each write
        keeps the edit and the field's value before it on the contact (`account_local_edit`): a contact that
        already holds the edited value is read once, and if this edit wrote it (an earlier delivery that died
        before queueing its activities) its activity is queued again, under the same key."""
        log_activities = logging is ActivityLogging.LOGGED
        outbox = _ActivityOutbox(self._activities, edit.account_id, edit.edited_at, ChangeOrigin.LOCAL)
        edited = {edit.field: edit.value}
        new_value = canonical_value(edit.value)
        members = self._contacts.members(edit.account_id, after, through)
        for window in _windows(members, _WRITE_WINDOW):
            to_write: list[tuple[ContactSnapshot, FieldChange]] = []
            already: list[ContactSnapshot] = []
            for contact in window:
                if compare_versions(base, contact.account_modstamp) is VersionVerdict.OLDER:
                    report.contacts_skipped += 1  # holds a newer Salesforce version: it overwrote the edit
                    continue
                changes = diff_fields(contact.account_fields, edited, [edit.field])
                if changes:
                    to_write.append((contact, changes[0]))
                else:
                    already.append(contact)
            report.contacts_unchanged += len(already)
            if log_activities and already:
                marks = self._concurrently(lambda c: self._contacts.local_edit_of(c.contact_id), already)
                for contact, mark in zip(already, marks, strict=True):
                    if mark is not None and mark.is_edit(edit):
                        outbox.add(contact.contact_id, [FieldChange(edit.field, mark.old, new_value)])

            def write(item: tuple[ContactSnapshot, FieldChange]) -> bool:
                contact, change = item
                return self._contacts.apply_local_edit(contact.contact_id, edit, base, change.old)

            for (contact, change), written in zip(to_write, self._concurrently(write, to_write), strict=True):
                if not written:
                    report.contacts_skipped += 1
                    continue
                report.contacts_written += 1
                if log_activities:
                    outbox.add(contact.contact_id, [change])
        report.activities_queued += outbox.flush()


class _ActivityOutbox:
    """Collects per-contact field changes into messages of bounded size, and queues them ten at a time (one
    SendMessageBatch). What is not queued yet when an invocation dies is not lost: the contacts keep the values
    they had before (`account_previous_values`), and the redelivered version queues the same activities again."""

    def __init__(self, publisher: ActivityPublisher, account_id: str, stamp: str, origin: ChangeOrigin) -> None:
        self._publisher = publisher
        self._account_id = account_id
        self._stamp = stamp
        self._origin = origin
        self._pending: list[ContactFieldChange] = []
        self._pending_bytes = 0
        self._ready: list[ActivityBatchMessage] = []
        self._queued = 0

    def add(self, contact_id: str, changes: Iterable[FieldChange]) -> None:
        for change in changes:
            item = ContactFieldChange(contact_id, change.field, change.old, change.new)
            size = 64 + len(contact_id) + len(change.field) + len(str(change.old)) + len(str(change.new))
            if self._pending and (
                len(self._pending) >= ACTIVITY_CHANGES_PER_MESSAGE
                or self._pending_bytes + size > ACTIVITY_BYTES_PER_MESSAGE
            ):
                self._send()
            self._pending.append(item)
            self._pending_bytes += size

    def flush(self) -> int:
        if self._pending:
            self._send()
        self._publish()
        return self._queued

    def _send(self) -> None:
        self._ready.append(
            ActivityBatchMessage(
                account_id=self._account_id,
                origin=self._origin,
                system_modstamp=self._stamp,
                changes=tuple(self._pending),
            )
        )
        self._pending = []
        self._pending_bytes = 0
        if len(self._ready) >= ACTIVITY_MESSAGES_PER_PUBLISH:
            self._publish()

    def _publish(self) -> None:
        if not self._ready:
            return
        self._publisher.publish(self._ready)
        self._queued += sum(len(message.changes) for message in self._ready)
        self._ready = []


def _windows(items: Iterable[ContactSnapshot], size: int) -> Iterator[list[ContactSnapshot]]:
    iterator = iter(items)
    while window := list(islice(iterator, size)):
        yield window


__all__ = ["FanOut", "FanOutConfig", "FanOutReport"]
