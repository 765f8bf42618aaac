"""Fan-out: apply Salesforce changes and local edits to the contacts of the store (SPEC R2, R3, R4, R6, deletes).

A Salesforce version of an account and a local edit of one of its fields are two kinds of one thing, an account
change (`domain.changes.AccountChange`), carried out in three steps, and why:
1. The stored account decides, once (a conditional write): an older version, or an edit that a later edit or a
   newer version superseded, stops here, before it touches a contact; the same change again resumes; a new one is
   accepted together with its decision (logged or suppressed, at once or in segments), taken from a bounded count
   of the account's contacts and stored on the account, so that every redelivery, resume and segment reuses it.
2. An account small enough is written at once; a larger one is split into planned key ranges, one segment message
   each, in a message group of its own (no chain of self-invocations): an account's segments run side by side. A
   segment reaching a contact before an earlier change's segment first writes that change onto it (`_caught_up`),
   so that every contact takes the changes in the order accepted. The plan is recorded on the account once every
   segment is queued: a resume queues no second set.
3. Each contact is written only if a field the change writes differs, with a condition that it still belongs to
   the account and holds no newer version; the write keeps, per field, the change that wrote it and the value
   before it (the outbox), so that a redelivery after a crash re-emits the same (deterministically keyed)
   activities instead of losing them.

Whoever writes a change's values onto a contact owes that change's activities: a contact change that moves a
contact to another account writes that account's fields with activities of origin `contact`, keyed by the
Contact's version, under the new account's stored decision; a contact that stays in its account keeps its fields
for the account's own fan-out to write, with that change's activities. A contact that joins takes the account's
fields as stored and the count of changes the account had accepted: a change accepted up to then is held, never
owed, and its segments pass it by. The account index is eventually
consistent: contacts that joined an account lately are kept on the account item (`recent_joiners`) and read with a
strongly consistent read beside the index, so a version accepted just after a contact joined still reaches it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import TypeVar

from account_sync.contracts import (
    AccountChangeMessage,
    ActivityBatchMessage,
    ChangeMessage,
    ChangeSegmentMessage,
    ContactChangesMessage,
    ContactFieldChange,
    LocalEditMessage,
)
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import (
    AccountChange,
    ChangeDecision,
    OutboxEntry,
    PendingEdit,
    SupersededVersion,
    owed_again,
    pending_edit_size,
    superseded_size,
    within_budget,
    written_via,
)
from account_sync.domain.fields import FieldChange, FieldValue, canonical_value, diff_fields
from account_sync.domain.local_edits import EditMark, EditVerdict, earlier_edits, edits_since, judge_local_edit
from account_sync.domain.records import (
    AccountVersion,
    ActivitySuppression,
    ChangeOrigin,
    ChangeRef,
    ContactVersion,
    LocalEdit,
    SyncPath,
)
from account_sync.domain.timestamps import parse_timestamp
from account_sync.domain.versions import VersionVerdict, compare_versions
from account_sync.ports import (
    Acceptance,
    AccountJoin,
    AccountRepository,
    AccountState,
    AccountUnchanged,
    ActivityPublisher,
    ActivityStore,
    ChangePublisher,
    ContactRepository,
    ContactSnapshot,
    TransientError,
    stays_in_account,
)

ACTIVITY_CHANGES_PER_MESSAGE = 200
ACTIVITY_BYTES_PER_MESSAGE = 192 * 1024
ACTIVITY_MESSAGES_PER_PUBLISH = 10  # what one SendMessageBatch takes: SQS bills per request
_WRITE_WINDOW = 256
_CONTACT_WRITE_ATTEMPTS = 3  # a contact read, then written only if unchanged: another writer in between retries

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class FanOutConfig:
    synced_fields: tuple[str, ...]
    activity_threshold: int = 5000
    segment_size: int = 500
    # How long the account index may lag behind a contact's join, and how many recent joiners an account keeps.
    index_lag_seconds: float = 60.0
    max_recent_joiners: int = 1000
    # What the account item may hold of the changes a leaving contact must still take (superseded versions, earlier
    # edits of a field), estimated as stored: well under DynamoDB's 400 KB item, beside the account's own fields.
    pending_changes_bytes: int = 256 * 1024


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
    # Changes the account item could no longer keep for contacts that leave before their segments (its size bound):
    # the handler logs them, naming the account, and counts them (PendingChangesDropped).
    pending_dropped: int = 0
    # Contacts a segment first wrote a change accepted before its own onto (their segments run side by side).
    contacts_caught_up: int = 0


class FanOut:
    """The long-lived service of a container. It keeps no state between messages: a batch's cache of accounts
    belongs to the batch (`FanOutBatch`)."""

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
        new_plan_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
    ) -> None:
        self._accounts = accounts
        self._contacts = contacts
        self._changes = changes
        self._activities = activities
        self._activity_store = activity_store
        self._config = config
        self._now = now
        self._executor = executor
        # A plan's id names its segments' message groups: a test that replays an interleaving makes them its own.
        self._new_plan_id = new_plan_id

    def batch(self) -> FanOutBatch:
        """A batch of messages of the queue: applied one after the other, sharing one read of each account."""
        return FanOutBatch(self)

    def apply(self, message: ChangeMessage) -> FanOutReport:
        """One message, as a batch of its own."""
        return self.batch().apply(message)

    def apply_batch(self, messages: Iterable[ChangeMessage]) -> list[FanOutReport]:
        batch = self.batch()
        return [batch.apply(message) for message in messages]

    # Entry points by message kind, each a batch of its own (tests and tools call them directly).

    def apply_account_change(self, version: AccountVersion) -> FanOutReport:
        return self.apply(AccountChangeMessage(version))

    def apply_local_edit(self, edit: LocalEdit) -> FanOutReport:
        return self.apply(LocalEditMessage(edit))

    def apply_segment(self, segment: ChangeSegmentMessage) -> FanOutReport:
        return self.apply(segment)

    def apply_contact_changes(self, message: ContactChangesMessage) -> FanOutReport:
        return self.apply(message)

    def apply_contact_change(self, version: ContactVersion) -> FanOutReport:
        return self.batch().apply_contact_change(version)


class FanOutBatch:
    """The messages of one batch, applied in order. Accounts read for contact changes are kept for the batch: a
    FIFO batch often holds many contacts of one account. An entry may go stale: the account's own versions and
    edits are accepted in its group (an account change of the batch forgets its entry), but a contact leaving an
    account travels in its new account's group and that account's segments run in groups of their own. What a
    stale entry could get wrong is kept out: a leaver's account is read afresh, not from here, and the leave is one
    transaction conditioned on that read's `changes_accepted` (it fails and is retried rather than land on a stale
    read); a joiner reads its own group's account, whose fields and accepted changes only that group's messages
    change (segments in other groups mark versions applied, which a join does not take)."""

    def __init__(self, service: FanOut) -> None:
        self._s = service
        self._config = service._config
        self._accounts_seen: dict[str, AccountState | None] = {}

    def apply(self, message: ChangeMessage) -> FanOutReport:
        if isinstance(message, AccountChangeMessage):
            return self._apply_version(message.version, message.resync_id, message.path)
        if isinstance(message, LocalEditMessage):
            return self._apply_edit(message.edit)
        if isinstance(message, ChangeSegmentMessage):
            return self._apply_segment(message)
        return self._apply_contact_changes(message)

    # --- step 1: the stored account decides --------------------------------------------------------------

    def _decide(self, account_id: str, state: AccountState | None, force_segments: bool = False) -> ChangeDecision:
        limit = max(self._config.activity_threshold, self._config.segment_size) + 1
        counted = self._count_members(account_id, state, limit)
        return ChangeDecision.from_count(
            counted, self._config.activity_threshold, self._config.segment_size, force_segments
        )

    def _count_members(self, account_id: str, state: AccountState | None, limit: int) -> int:
        """The account's contacts, counted up to `limit`, with those that joined it lately and that the index does
        not show yet (issue 10, 2.4: the threshold decision counts them too). Without recent joiners, a COUNT
        query; with some, the index's members (up to `limit`) and a consistent read of each joiner it lacks."""
        joiners = sorted(
            contact_id
            for contact_id, at in (state.recent_joiners if state else {}).items()
            if self._within_index_lag(at)
        )
        if not joiners:
            return self._s._contacts.count_members(account_id, limit=limit)
        if state is not None and state.joiners_overflow_at and self._within_index_lag(state.joiners_overflow_at):
            raise TransientError(
                f"account {account_id}: more contacts joined it lately than it keeps; retried once the index caught up"
            )
        shown = {contact.contact_id for contact in islice(self._s._contacts.members(account_id), limit)}
        lacking = [contact_id for contact_id in joiners if contact_id not in shown]
        read = self._concurrently(self._s._contacts.contact, lacking)
        live = [c for c in read if c is not None and c.account_id == account_id and not c.is_deleted]
        return min(len(shown) + len(live), limit)

    def _apply_version(
        self, version: AccountVersion, resync_id: str | None = None, path: SyncPath | None = None
    ) -> FanOutReport:
        report = FanOutReport(kind="account_change", outcome="", account_id=version.account_id)
        self._accounts_seen.pop(version.account_id, None)
        accounts = self._s._accounts
        stored = accounts.get(version.account_id)
        verdict = compare_versions(version.system_modstamp, stored.system_modstamp if stored else None)
        if verdict is VersionVerdict.OLDER:
            report.outcome = "stale"
            return report
        if verdict is VersionVerdict.SAME and stored and stored.applied_modstamp == version.system_modstamp:
            if resync_id is not None:
                return self._resync(version, stored, resync_id, report, path)
            report.outcome = "already_applied"
            return report
        # A resync that reads a newer version (or one still being fanned out) is that version, as the fetch's.
        if (
            verdict is VersionVerdict.NEWER
            and stored is not None
            and self._changes_no_contact(stored, version)
            and accounts.accept_unchanged_version(version, stored)
        ):
            report.outcome = "unchanged"
            return report

        if verdict is VersionVerdict.NEWER:
            decision = self._decide(version.account_id, stored, force_segments=_segments_may_be_pending(stored))
            changed = [] if version.is_deleted else self._account_level_changes(stored, version)
            budget = self._config.pending_changes_bytes - _earlier_edits_size(stored.local_edits if stored else {})
            superseded, report.pending_dropped = within_budget(_superseded_by(stored), budget)
            accepted = accounts.accept_version(version, decision, changed, path, superseded)
            if accepted.acceptance in (Acceptance.STALE, Acceptance.ALREADY_APPLIED):
                report.outcome = accepted.acceptance.value  # lost a race with another delivery
                return report
            state = accepted.state
            report.outcome = accepted.acceptance.value
        else:
            assert stored is not None
            state = stored
            report.outcome = Acceptance.RESUME.value
        decision = state.decision or self._decide(version.account_id, state)  # as taken when first accepted
        report.changed_fields = list(state.changed_fields)
        # The path that accepted the version first names its activities, whichever delivery resumes it.
        change = AccountChange.of_version(version, path=state.sync_path or path)
        planned = state.segments_total is not None
        self._carry_out(change, state, decision, state.changed_fields, planned, report)
        return report

    def _resync(
        self,
        version: AccountVersion,
        stored: AccountState,
        resync_id: str,
        report: FanOutReport,
        path: SyncPath | None = None,
    ) -> FanOutReport:
        """An operator's resync of the version the account already applied: the stored account takes the values
        read again (a field newly synced, a value changed behind the store's back; a field a local edit over the
        version wrote keeps the edit, SPEC R3), and the version is diffed again against every contact, under a
        decision taken afresh from the contacts counted now (the 5000 rule). Only real differences are written,
        with activities of origin `resync` keyed by the resync's id: a store in step costs the reads, no write.
        A field no longer in the synced list is removed from the account and its contacts (no activity: it is not
        a value Salesforce changed), so that a resync after a deployment leaves exactly the synced fields."""
        edited = edits_since(stored.local_edits, stored.system_modstamp)
        values = {**version.fields, **{name: stored.fields.get(name) for name in edited}}
        changed = [change.field for change in diff_fields(stored.fields, values, self._config.synced_fields)]
        unsynced = not set(stored.fields) <= set(self._config.synced_fields)  # a field removed from the list
        # Refreshed, the account's fields are a change accepted: a contact joining after it takes them, and the
        # resync skips it (`held_since_join`). Not refreshed, the resync diffs every contact, as a repair must.
        accepted_as = None
        if changed or unsynced:
            accepted_as = self._s._accounts.refresh_fields(version.account_id, version.system_modstamp, values)
            if accepted_as is None:
                report.outcome = "stale"  # a newer version was accepted meanwhile: its fan-out covers every contact
                return report
        decision = self._decide(version.account_id, stored)
        report.changed_fields = changed
        change = AccountChange.of_version(version, resync_id, path, accepted_as)
        self._carry_out(change, replace(stored, fields=values), decision, changed, False, report)
        report.outcome = "resynced"
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

    def _apply_edit(self, edit: LocalEdit) -> FanOutReport:
        """SPEC R3: the edited field changes on the stored account and on every contact of the account, with
        activities of source "local" under the same threshold rule. The account's SystemModstamp is kept, so its
        next Salesforce version overwrites every synced field again."""
        report = FanOutReport(kind="local_edit", outcome="", account_id=edit.account_id, changed_fields=[edit.field])
        self._accounts_seen.pop(edit.account_id, None)
        stored = self._s._accounts.get(edit.account_id)
        if stored is None or stored.system_modstamp is None or stored.is_deleted:
            report.outcome = "account_not_synced"
            return report
        base = stored.system_modstamp
        mark = stored.local_edits.get(edit.field)
        verdict = judge_local_edit(edit, mark, base)
        if verdict is EditVerdict.SUPERSEDED:
            report.outcome = "superseded"
            return report
        if verdict is EditVerdict.APPLY:
            # Segments of an earlier change still on their way: the edit goes in segments too, which take that change
            # onto a contact before the edit wherever they come first (`_segments_may_be_pending`, `_caught_up`).
            decision = self._decide(edit.account_id, stored, force_segments=_segments_may_be_pending(stored))
            changed = bool(diff_fields(stored.fields, {edit.field: edit.value}, [edit.field]))
            earlier, report.pending_dropped = self._earlier_within_budget(edit.field, mark, stored)
            if not self._s._accounts.apply_local_edit(edit, stored, decision, changed, earlier):
                # Only another delivery writing the same account at the same time gets here: decide again later.
                raise TransientError(f"account {edit.account_id} changed while a local edit was applied to it")
            planned = False
            accepted_as: int | None = (stored.changes_accepted or 0) + 1  # the count its write made
        else:
            assert mark is not None
            decision = mark.decision or self._decide(edit.account_id, stored, force_segments=True)
            changed, planned, accepted_as = mark.changed, mark.plan_id is not None, mark.accepted_as
        change = AccountChange.of_edit(edit, base, accepted_as)
        self._carry_out(change, stored, decision, [edit.field] if changed else [], planned, report)
        report.outcome = "planned" if decision.segmented else "applied"
        return report

    def _earlier_within_budget(
        self, field: str, mark: EditMark | None, stored: AccountState
    ) -> tuple[tuple[PendingEdit, ...], int]:
        """The earlier edits of the field that its new mark keeps (`earlier_edits`), the oldest dropped while the
        account's pending changes would pass their bound; and how many were dropped (reported: never silent)."""
        assert stored.system_modstamp is not None
        earlier = earlier_edits(field, mark, stored.system_modstamp, stored.fields.get(field))
        budget = (
            self._config.pending_changes_bytes
            - superseded_size(stored.superseded)
            - _earlier_edits_size(stored.local_edits, but=field)
        )
        total, start = sum(pending_edit_size(edit) for edit in earlier), 0
        while start < len(earlier) and total > budget:
            total -= pending_edit_size(earlier[start])
            start += 1
        return earlier[start:], start

    # --- step 2: at once, or in planned segments ---------------------------------------------------------

    def _carry_out(
        self,
        change: AccountChange,
        state: AccountState,
        decision: ChangeDecision,
        changed_fields: Sequence[str],
        planned: bool,
        report: FanOutReport,
    ) -> None:
        report.activity_logging = decision.activity_logging.value
        if decision.activity_logging is ActivityLogging.SUPPRESSED and changed_fields and not change.is_deleted:
            self._record_suppression(change, decision, changed_fields)
            report.suppressed = True
        if not decision.segmented:
            self._apply_range(change, decision.activity_logging, None, None, state, report)
            if change.version is not None and self._s._accounts.mark_applied(change.account_id, change.stamp):
                report.completed_version = change.stamp
        elif not planned:
            report.segments_planned = self._plan_segments(change, decision.activity_logging, report)

    def _record_suppression(
        self, change: AccountChange, decision: ChangeDecision, changed_fields: Sequence[str]
    ) -> None:
        """The one account-level record of a change whose activities are not logged (SPEC R6); written on every
        delivery of the change, under its deterministic key (the same item)."""
        ref = change.ref
        self._s._activity_store.put_suppression(
            ActivitySuppression(
                account_id=change.account_id,
                system_modstamp=ref.stamp,
                contacts_counted=decision.contacts_counted or self._config.activity_threshold + 1,
                threshold=self._config.activity_threshold,
                changed_fields=tuple(changed_fields),
                activity_at=self._s._now(),
                origin=ref.origin,
                change_id=ref.change_id,
                path=change.path,
            )
        )

    def _plan_segments(self, change: AccountChange, logging: ActivityLogging, report: FanOutReport) -> int:
        """Queue one segment per key range, then record the plan: a delivery that dies while queueing leaves no
        plan, and the next one queues a new plan whole (the first one's segments still write their ranges, which
        is harmless, but never count as the plan's). The last range is open-ended: a contact that joined after
        the plan's key pages were read, or that the index did not show yet, still falls in a range.

        Segments run side by side in groups of their own, so every one of them may be done before the plan is
        recorded; then none of them could mark the version applied (that needs the recorded plan), and the planner
        does, after recording it. Each side checks after its own write, so one of them always sees both."""
        ranges = list(self._s._contacts.member_key_pages(change.account_id, self._config.segment_size))
        if not ranges:
            ranges = [(None, "")]
        plan_id = self._s._new_plan_id()
        last = len(ranges) - 1
        self._s._changes.publish(
            [
                ChangeSegmentMessage(
                    change=change,
                    plan_id=plan_id,
                    index=index,
                    total=len(ranges),
                    after_contact_id=after,
                    through_contact_id=None if index == last else through,
                    activity_logging=logging,
                )
                for index, (after, through) in enumerate(ranges)
            ]
        )
        self._s._accounts.record_plan(change, plan_id, len(ranges))
        if (
            change.version is not None
            and self._s._accounts.plan_complete(change.account_id, plan_id, len(ranges))
            and self._s._accounts.mark_applied(change.account_id, change.stamp, plan_id)
        ):
            report.completed_version = change.stamp
        return len(ranges)

    def _apply_segment(self, segment: ChangeSegmentMessage) -> FanOutReport:
        change = segment.change
        kind = "account_segment" if change.version is not None else "local_edit_segment"
        report = FanOutReport(
            kind=kind,
            outcome="",
            account_id=change.account_id,
            activity_logging=segment.activity_logging.value,
            changed_fields=[change.edit.field] if change.edit is not None else [],
        )
        self._accounts_seen.pop(change.account_id, None)
        stored = self._s._accounts.get(change.account_id)
        if stored is None:
            report.outcome = "stale" if change.version is not None else "superseded"
            return report
        # A newer version or a later edit of the field accepted since the plan does not cancel the segment: the
        # change was owed its activities when it was accepted (issue 10, 2.1). Segments run side by side: this one
        # first takes onto each contact the changes accepted before its own that it lacks (`_earlier_pending`), and
        # a contact that already holds a later change (whose segment took this one first) is skipped.
        current = _still_current(change, stored)
        mark = stored.local_edits.get(change.edit.field) if change.edit is not None else None
        later_edits = mark.edits_after(change.ref) if mark is not None else frozenset()
        self._apply_range(
            change,
            segment.activity_logging,
            segment.after_contact_id,
            segment.through_contact_id,
            stored,
            report,
            later_edits,
            self._earlier_pending(change, stored),
        )
        # Completion is counted on the plan's own item; the account item is written once, by whichever segment (or
        # the planner) finds the whole plan done first: a condition on the account makes that exactly once. A plan
        # whose change is no longer the newest counts nothing: the newer change's own plan completes the account.
        if (
            current
            and change.version is not None
            and self._s._accounts.complete_segment(change.account_id, segment.plan_id, segment.index, segment.total)
            and self._s._accounts.mark_applied(change.account_id, change.stamp, segment.plan_id)
        ):
            report.completed_version = change.stamp
        if current:
            report.outcome = "applied"
        else:
            report.outcome = "stale" if change.version is not None else "superseded"
        return report

    # --- step 3: the contacts of a key range -------------------------------------------------------------

    def _apply_range(
        self,
        change: AccountChange,
        logging: ActivityLogging,
        after: str | None,
        through: str | None,
        state: AccountState,
        report: FanOutReport,
        later_edits: Collection[ChangeRef] = (),
        earlier: Sequence[_KnownChange] = (),
    ) -> None:
        """Write the change on the contacts of the range, a window at a time on the executor. A contact that
        already holds the change (written by an earlier delivery that died before queueing its activities) has
        its activities queued again from its outbox, under the same keys. `later_edits`: for a segment of an edit,
        the field's edits its mark applied after it in its millisecond (a contact one wrote holds a later edit).
        `earlier`: the changes accepted before this one whose segments may still be on their way (segments run side
        by side): each window first takes them (`_caught_up`)."""
        members = self._members(change.account_id, after, through, state)
        if not earlier:
            self._write_onto(change, logging, members, report, later_edits)
            return
        for window in _windows(members, _WRITE_WINDOW):
            self._write_onto(change, logging, self._caught_up(window, earlier, report), report, later_edits)

    def _caught_up(
        self, window: Sequence[ContactSnapshot], earlier: Sequence[_KnownChange], report: FanOutReport
    ) -> list[ContactSnapshot]:
        """The window's contacts once each has the changes accepted before the segment's own, written in the order
        they were accepted through the segments' own write (same outbox, same keys: whichever of this and the
        change's own segment comes second writes nothing and queues the same activities), each change's activities
        queued before the next is written. A contact that already holds one has its activities queued again from its
        outbox (this write may have died before queueing them, and the segment's own change, written next, may
        replace the entries). The contacts written are read again: the next write is diffed against what they hold
        now, and lands only on them as read. Those that left meanwhile drop out."""
        current = list(window)
        caught = FanOutReport(kind="catch_up", outcome="")
        for change, decision, later_edits in earlier:
            touched = set(self._write_onto(change, decision.activity_logging, current, caught, later_edits))
            if touched:
                fresh = {c.contact_id: c for c in current if c.contact_id not in touched}
                read = self._concurrently(self._s._contacts.contact, sorted(touched))
                fresh |= {c.contact_id: c for c in read if c is not None}
                current = [
                    contact
                    for c in current
                    if (contact := fresh.get(c.contact_id)) is not None
                    and contact.account_id == change.account_id
                    and not contact.is_deleted
                ]
        report.contacts_caught_up += caught.contacts_written
        report.activities_queued += caught.activities_queued
        return current

    def _earlier_pending(self, change: AccountChange, account: AccountState) -> list[_KnownChange]:
        """The changes the account accepted before `change` whose segments may still be queued, in the order
        accepted (what a leaver takes, `_known_changes`, up to `change`): a segment of `change` may reach a contact
        before theirs. None for a change the account no longer knows (a resync; one dropped past the bound) or
        while the account holds no version. A fully applied newest version, and an edit written at once, reached
        every member already: left out."""
        if account.system_modstamp is None:
            return []
        known = self._known_changes(account, None)
        refs = [known_change.ref for known_change, _, _ in known]
        if change.ref not in refs:
            return []
        return [entry for entry in known[: refs.index(change.ref)] if _may_be_pending(entry[0], account)]

    def _write_onto(
        self,
        change: AccountChange,
        logging: ActivityLogging,
        contacts: Iterable[ContactSnapshot],
        report: FanOutReport,
        later_edits: Collection[ChangeRef] = (),
    ) -> list[str]:
        """Write the change on `contacts` (members of its account, as read) and queue their activities; a contact
        that already holds the change has its activities queued again from its outbox, under the same keys. A
        contact that joined the account after the change was accepted is skipped: it took the change's values (or a
        later change's) with the account's fields, and was owed nothing (`AccountChange.held_since_join`). Returns
        the ids of the contacts a write was tried on (written or not: they may have changed)."""
        log_activities = logging is ActivityLogging.LOGGED and not change.is_deleted
        ref, values = change.ref, change.values
        fields = change.fields(self._config.synced_fields)
        outbox = _ActivityOutbox(self._s._activities, change.account_id)
        tried: list[str] = []
        for window in _windows(contacts, _WRITE_WINDOW):
            to_write: list[_ContactWrite] = []
            for contact in window:
                if (
                    change.overtaken_on(contact.account_modstamp)
                    or change.behind(contact.outbox, later_edits)
                    or change.held_since_join(contact.changes_at_join)
                ):
                    report.contacts_skipped += 1
                    continue
                planned = self._contact_write(change, contact, fields)
                if planned is None:
                    # Nothing to write. If this change wrote the contact (an earlier delivery), its activities are
                    # queued again from the contact's outbox, under the same keys.
                    report.contacts_unchanged += 1
                    if log_activities:
                        owed = _as_changes(owed_again(ref, contact.outbox, values))
                        outbox.add(contact.contact_id, ref, owed, written_via(ref, contact.outbox) or change.path)
                    continue
                to_write.append(planned)

            def write(planned: _ContactWrite) -> _ContactWrite | None:
                return self._write_contact(change, planned, fields, later_edits)

            tried += [planned.contact_id for planned in to_write]
            for written in self._concurrently(write, to_write):
                if written is None:
                    report.contacts_skipped += 1
                    continue
                report.contacts_written += 1
                if log_activities:
                    outbox.add(written.contact_id, ref, written.changes, change.path)
        report.activities_queued += outbox.flush()
        return tried

    def _contact_write(
        self, change: AccountChange, contact: ContactSnapshot, fields: Sequence[str]
    ) -> _ContactWrite | None:
        """What `change` writes on the contact as read, None when nothing. A version leaves the fields that a local
        edit over it (or over a newer one) wrote: their segments run side by side, and the edit came later. An edit
        reaching a contact its base version has not reached yet writes its field even when the value is the same,
        so that the version, coming after, keeps it."""
        if change.already_on(contact.account_modstamp):
            return None
        if change.edit is not None and _holds(contact, change):
            return None  # written by an earlier delivery: its outbox entry says what it changed (even a mark only)
        edited = change.edited_over(contact.outbox)
        writable = [name for name in fields if name not in edited]
        changes = diff_fields(contact.account_fields, change.values, writable)
        flag_changes = change.version is not None and contact.account_deleted != change.is_deleted
        # A resync also writes a contact that holds a field no longer synced: the version's write leaves it out.
        unsynced = change.resync_id is not None and not set(contact.account_fields) <= set(fields)
        if change.behind_base(contact.account_modstamp) and not changes:
            name = writable[0]
            held = canonical_value(contact.account_fields.get(name))
            changes = [FieldChange(name, held, held)]  # a mark only: no activity (old and new are the same)
        elif not (changes or flag_changes or unsynced):
            return None
        kept = {name: (contact.account_fields.get(name), entry) for name, entry in edited.items()}
        return _ContactWrite(contact.contact_id, changes, kept, contact)

    def _write_contact(
        self,
        change: AccountChange,
        planned: _ContactWrite,
        fields: Sequence[str],
        later_edits: Collection[ChangeRef] = (),
    ) -> _ContactWrite | None:
        """The write, landing only on the contact as it was read (its `revision`): segments of several changes run
        side by side, so another one may write the contact between this read and this write, and a diff against
        what it held before would log the wrong 'old' value, or miss a change. Then the contact is read again
        (strongly consistent) and the write planned again. None: nothing of this change to write any more (the
        contact left the account, holds a newer change, or holds this one: whoever wrote it queued its
        activities)."""
        for _ in range(_CONTACT_WRITE_ATTEMPTS):
            if self._s._contacts.write_change(
                planned.contact_id, change, planned.changes, planned.kept, as_read=planned.read
            ):
                return planned
            again = self._s._contacts.contact(planned.contact_id)
            if (
                again is None
                or again.account_id != change.account_id
                or again.is_deleted
                or change.overtaken_on(again.account_modstamp)
                or change.behind(again.outbox, later_edits)
                or change.held_since_join(again.changes_at_join)
            ):
                return None
            replanned = self._contact_write(change, again, fields)
            if replanned is None:
                return None
            planned = replanned
        raise TransientError(f"contact {planned.contact_id} kept changing while a change was written onto it")

    def _members(
        self, account_id: str, after: str | None, through: str | None, state: AccountState
    ) -> Iterator[ContactSnapshot]:
        """The range's contacts from the account index, then those that joined the account lately and that the
        index did not show (it is eventually consistent), each read strongly consistently."""
        if state.joiners_overflow_at is not None and self._within_index_lag(state.joiners_overflow_at):
            raise TransientError(
                f"account {account_id}: more contacts joined it lately than it keeps; retried once the index caught up"
            )
        seen: set[str] = set()
        for contact in self._s._contacts.members(account_id, after, through):
            seen.add(contact.contact_id)
            yield contact
        joiners = [
            contact_id
            for contact_id, joined_at in sorted(state.recent_joiners.items())
            if contact_id not in seen
            and (after is None or contact_id > after)
            and (through is None or contact_id <= through)
            and self._within_index_lag(joined_at)
        ]
        for joiner in self._concurrently(self._s._contacts.contact, joiners):
            if joiner is not None and joiner.account_id == account_id and not joiner.is_deleted:
                yield joiner

    def _within_index_lag(self, moment: str) -> bool:
        age = (parse_timestamp(self._s._now()) - parse_timestamp(moment)).total_seconds()
        return age < self._config.index_lag_seconds

    def _concurrently(self, call: Callable[[_Item], _Result], items: Sequence[_Item]) -> list[_Result]:
        """`call` on every item, on the executor's threads (the contacts' writes and reads: each one is a request
        of its own), results in the order of `items`."""
        if self._s._executor is None or len(items) < 2:
            return [call(item) for item in items]
        return list(self._s._executor.map(call, items))

    # --- contact versions --------------------------------------------------------------------------------

    def _apply_contact_changes(self, message: ContactChangesMessage) -> FanOutReport:
        return self._apply_contact_versions(message.versions, "contact_changes", message.path)

    def apply_contact_change(self, version: ContactVersion) -> FanOutReport:
        return self._apply_contact_versions((version,), "contact_change")

    def _apply_contact_versions(
        self, versions: Sequence[ContactVersion], kind: str, path: SyncPath | None = None
    ) -> FanOutReport:
        """SPEC R4: a contact takes its (new) account's fields; a deleted contact is flagged and leaves it.

        Each version applies on its own, conditional on the contact's SystemModstamp and on the contact being as
        it was read (a consistent read first): a redelivery after a partial failure rewrites nothing already
        written. A contact that moved from another account and whose account fields change owes Change Data Value
        activities of origin `contact` (keyed by the Contact's SystemModstamp), under its new account's stored
        decision; a redelivery re-emits them from its outbox. A contact that stays in its account keeps its fields:
        the account's own fan-out writes them, with that change's activities. The contacts that join an account are
        recorded on it (one write per account and message) before they are written, so that an index that lags
        behind them never hides them from the account's next fan-out (a contact noted but then not written is read,
        found elsewhere, and skipped)."""
        report = FanOutReport(kind=kind, outcome="", account_id=versions[0].account_id)
        for account_id in {v.account_id for v in versions if v.account_id and not v.is_deleted}:
            self._account(account_id)  # once, before the writes run side by side
        read = self._concurrently(self._s._contacts.contact, [v.contact_id for v in versions])
        joining: dict[str, list[str]] = {}
        for version, expected in zip(versions, read, strict=True):
            if _joins(version, expected):
                assert version.account_id is not None
                joining.setdefault(version.account_id, []).append(version.contact_id)
        for account_id, contact_ids in joining.items():
            self._note_joiners(account_id, contact_ids)
        noted = {contact_id for contact_ids in joining.values() for contact_id in contact_ids}

        def apply(item: tuple[ContactVersion, ContactSnapshot | None]) -> _ContactOutcome:
            version, expected = item
            return self._apply_contact_version(version, expected, version.contact_id in noted, path)

        outcomes = self._concurrently(apply, list(zip(versions, read, strict=True)))
        outboxes: dict[str, _ActivityOutbox] = {}
        for version, (written, owed, applied_via) in zip(versions, outcomes, strict=True):
            report.contacts_written += int(written)
            if owed and version.account_id:
                outbox = outboxes.setdefault(
                    version.account_id, _ActivityOutbox(self._s._activities, version.account_id)
                )
                ref = ChangeRef(ChangeOrigin.CONTACT, version.system_modstamp)
                outbox.add(version.contact_id, ref, owed, applied_via)
        report.activities_queued = sum(outbox.flush() for outbox in outboxes.values())
        report.contacts_skipped = len(versions) - report.contacts_written
        report.outcome = "applied" if report.contacts_written or kind == "contact_changes" else "stale"
        return report

    def _apply_contact_version(
        self, version: ContactVersion, expected: ContactSnapshot | None, noted: bool, path: SyncPath | None
    ) -> _ContactOutcome:
        """Whether the version was written, the move's changes it owes activities for (written now, or by an
        earlier delivery of the same version), and the path that applied the version first.

        A contact that leaves its account first takes the account's pending changes (`_catch_up`), from one read
        of the account, and its leave is written only while the account has accepted no change since that read
        (`AccountUnchanged`): a change accepted in between, by an invocation of the account's group running at
        the same time, fails the leave, and the next attempt catches up again from a new read. The catch-up runs
        once per attempt at the leave, never again after its own writes (a second pass could rewrite an edit's
        mark forever), so the attempts bound it."""
        ref = ChangeRef(ChangeOrigin.CONTACT, version.system_modstamp)
        attempt = 0
        caught_up: AccountUnchanged | None = None  # the account as the last catch-up read it
        while attempt < _CONTACT_WRITE_ATTEMPTS:
            if (
                expected is not None
                and expected.contact_modstamp is not None
                and (expected.contact_modstamp >= version.system_modstamp)
            ):
                if expected.contact_modstamp == version.system_modstamp and version.account_id:
                    # The same version again: re-emit the move's activities it wrote (an earlier delivery may
                    # have died before queueing them), under the path that wrote them.
                    owed = _as_changes(owed_again(ref, expected.outbox, expected.account_fields))
                    return False, owed, written_via(ref, expected.outbox) or path
                return False, [], path
            leaving = expected is not None and _leaves(version, expected)
            if leaving and expected is not None and (caught_up is None or caught_up.account_id != expected.account_id):
                assert expected.account_id is not None
                account = self._s._accounts.get(expected.account_id)  # read now: a batch's copy may predate a change
                caught_up = AccountUnchanged(expected.account_id, account.changes_accepted if account else None)
                if self._catch_up(expected, account):
                    expected = self._s._contacts.contact(version.contact_id)  # as the catch-up left it
                    continue
            if not noted and _joins(version, expected):
                assert version.account_id is not None
                self._note_joiners(version.account_id, [version.contact_id])
                noted = True
            join, owed = self._join(version, expected, path)
            guard = caught_up if leaving else None
            if self._s._contacts.apply_contact_version(version, expected, join, guard):
                return True, owed, path
            attempt += 1
            caught_up = None  # the contact, or its account, changed since they were read: both are read again
            expected = self._s._contacts.contact(version.contact_id)
        raise TransientError(f"contact {version.contact_id} kept changing while a Contact version was applied")

    def _catch_up(self, contact: ContactSnapshot, account: AccountState | None) -> bool:
        """A contact about to leave its account (moved away, or deleted) first takes the account's changes that
        have not reached it yet, with their activities: each was owed to the contact when it was accepted (issue 10,
        2.1), and its segment, coming later, would no longer find the contact among the account's members. The
        changes are the ones the stored account (`account`, as just read) knows (`_known_changes`), under their
        stored decisions, in the order they were accepted, written through the segments' own write (same outbox,
        same keys: whichever of the segment and the catch-up comes second writes nothing and queues the same
        activities). While segments may be pending, a change the contact already holds has its activities queued
        again from the outbox (a delivery that died after this write, before queueing them); so has a field's last
        edit at any time (`_last_edit_of_its_field`, finding G). True when the contact was written."""
        if account is None or account.system_modstamp is None:
            return False
        pending = _segments_may_be_pending(account)
        report = FanOutReport(kind="catch_up", outcome="")
        current: ContactSnapshot | None = contact
        known = self._known_changes(account, contact.account_modstamp, contact.account_fields)
        for change, decision, later_edits in known:
            if current is None or current.account_id != account.account_id or current.is_deleted:
                break
            if not pending and _holds(current, change) and not _last_edit_of_its_field(change, account):
                continue
            written = report.contacts_written
            self._write_onto(change, decision.activity_logging, [current], report, later_edits)
            if report.contacts_written > written:
                current = self._s._contacts.contact(contact.contact_id)
        return report.contacts_written > 0

    def _known_changes(
        self, account: AccountState, held: str | None, held_fields: Mapping[str, FieldValue] | None = None
    ) -> list[_KnownChange]:
        """What the stored account knows of the changes the contact may lack, in the order they were accepted: from
        the version the contact holds, each superseded version followed by the edits over it (`superseded[].edits`,
        every edit of each field in the order applied), then the newest version (a field edited over it takes the
        version's own value, which the edit's mark keeps) followed by the edits over it (each field's earlier edits
        still in segments, `earlier_edits`, then its last); each with its decision, and an edit with the edits of
        its field applied after it (a contact holding one of them must not take the older value back, even in the
        same millisecond). What the account could not keep within its size bound was reported when it was dropped
        (`FanOutReport.pending_dropped`). `held`, `held_fields`: the version and fields the contact holds (None: any
        contact; a mark written before it kept values then takes the account's)."""
        assert account.system_modstamp is not None
        stamp = account.system_modstamp
        held_fields = account.fields if held_fields is None else held_fields
        edited = {name: mark for name, mark in account.local_edits.items() if mark.base_modstamp == stamp}
        values = {
            **account.fields,
            **{
                name: mark.values[0] if mark.values is not None else held_fields.get(name)
                for name, mark in edited.items()
            },
        }
        newest = AccountVersion(account.account_id, stamp, account.is_deleted, values)
        versions = [
            *(
                (
                    s.version,
                    ChangeDecision(s.activity_logging, 0, False),
                    s.path,
                    # an entry written before it kept its edits: they are on the fields' marks, if still there
                    s.edits or self._edits_over(account, s.version.system_modstamp),
                )
                for s in account.superseded
            ),
            (
                newest,
                account.decision or self._decide(account.account_id, account),
                account.sync_path,
                self._edits_over(account, stamp),
            ),
        ]
        changes: list[_KnownChange] = []
        if held is not None and held not in {version.system_modstamp for version, *_ in versions}:
            changes += _edit_changes(account.account_id, held, self._edits_over(account, held))  # from their marks
        for version, decision, path, edits in versions:
            if held is not None and version.system_modstamp < held:
                continue  # the contact holds a newer one (the one it holds is there: its activities may be re-queued)
            changes.append((AccountChange.of_version(version, path=path), decision, frozenset()))
            changes += _edit_changes(account.account_id, version.system_modstamp, edits)
        return changes

    def _edits_over(self, account: AccountState, base: str) -> tuple[PendingEdit, ...]:
        """The edits over the version `base` that the fields' marks know, field by field in the order their last
        edits were made: each field's earlier edits still in segments, then its last (an edit over an older
        version whose mark kept no value is left out: its value is not known any more)."""
        edits: list[PendingEdit] = []
        for name, mark in sorted(account.local_edits.items(), key=lambda item: (item[1].edited_at, item[1].edit_id)):
            if mark.base_modstamp != base:
                continue
            edits += mark.earlier_edits
            if mark.values is not None:
                value = mark.values[1]
            elif base == account.system_modstamp:
                value = account.fields.get(name)
            else:
                continue
            logging = (mark.decision or self._decide(account.account_id, account)).activity_logging
            edits.append(PendingEdit(name, mark.edit_id, mark.edited_at, value, logging, mark.accepted_as))
        return tuple(edits)

    def _join(
        self, version: ContactVersion, expected: ContactSnapshot | None, path: SyncPath | None = None
    ) -> tuple[AccountJoin | None, list[FieldChange]]:
        """What the contact takes from the account it joins, and the move's changes if it moved from another
        account. None: it stays in its account, leaves it, or joins one not synced yet."""
        if version.is_deleted or not version.account_id:
            return None, []
        if stays_in_account(version, expected):
            return None, []  # the account's own fan-out writes its fields
        account = self._account(version.account_id)
        if account is None or account.system_modstamp is None:
            return None, []
        moved = expected is not None and expected.account_id is not None and not expected.is_deleted
        changes: list[FieldChange] = []
        if moved and not account.is_deleted and account.activity_logging is not ActivityLogging.SUPPRESSED:
            assert expected is not None
            changes = diff_fields(expected.account_fields, account.fields, self._config.synced_fields)
        ref = ChangeRef(ChangeOrigin.CONTACT, version.system_modstamp)
        outbox = {change.field: OutboxEntry(ref, change.old, path=path) for change in changes}
        fields, counted = dict(account.fields), account.changes_accepted  # one read: the count says what it holds
        return AccountJoin(fields, account.system_modstamp, account.is_deleted, outbox, counted), changes

    def _note_joiners(self, account_id: str, contact_ids: Sequence[str]) -> None:
        """The index may not show the contacts in the account for a while: the account keeps them among its
        recent joiners, a list that drops those older than the index's lag as new ones come, and that records an
        overflow instead of growing past its bound."""
        account = self._account(account_id)
        joiners = dict(account.recent_joiners) if account else {}
        new = set(contact_ids)
        forget = {c: at for c, at in joiners.items() if not self._within_index_lag(at) and c not in new}
        live = {c for c in joiners if c not in forget}
        overflow = len(live | new) > self._config.max_recent_joiners
        joined_at = self._s._now()
        self._s._accounts.note_joiners(account_id, sorted(new), joined_at, forget, overflow)
        if account is not None and not overflow:  # the batch's next joins see these
            kept = {c: at for c, at in joiners.items() if c not in forget}
            self._accounts_seen[account_id] = replace(account, recent_joiners={**kept, **dict.fromkeys(new, joined_at)})

    def _account(self, account_id: str) -> AccountState | None:
        """The account as stored, read once per batch."""
        if account_id not in self._accounts_seen:
            self._accounts_seen[account_id] = self._s._accounts.get(account_id)
        return self._accounts_seen[account_id]


# A contact version's outcome: written or not, the move's changes it owes activities for, the path that applied it.
_ContactOutcome = tuple[bool, list[FieldChange], SyncPath | None]


# A change a leaving contact may lack, its decision, and (an edit) the edits of its field applied after it.
_KnownChange = tuple[AccountChange, ChangeDecision, frozenset[ChangeRef]]


def _edit_changes(account_id: str, base: str, edits: Sequence[PendingEdit]) -> list[_KnownChange]:
    """The edits over `base` as changes, in their order, each with the edits of its field that came after it."""
    changes: list[_KnownChange] = []
    for index, edit in enumerate(edits):
        change, decision = edit.as_change(account_id, base)
        later = frozenset(
            ChangeRef(ChangeOrigin.LOCAL, after.edited_at, after.edit_id)
            for after in edits[index + 1 :]
            if after.field == edit.field
        )
        changes.append((change, decision, later))
    return changes


def _joins(version: ContactVersion, expected: ContactSnapshot | None) -> bool:
    """The version makes the contact a member of an account it is not a member of yet."""
    return bool(version.account_id) and not version.is_deleted and not stays_in_account(version, expected)


def _leaves(version: ContactVersion, expected: ContactSnapshot) -> bool:
    """The version takes a live member out of its account: deleted, or moved to another account or to none."""
    return (
        expected.account_id is not None
        and not expected.is_deleted
        and (version.is_deleted or version.account_id != expected.account_id)
    )


def _holds(contact: ContactSnapshot, change: AccountChange) -> bool:
    """The contact already holds the change (a version at its stamp or newer; an edit in its field's outbox)."""
    if change.version is not None:
        return contact.account_modstamp is not None and contact.account_modstamp >= change.stamp
    assert change.edit is not None
    entry = contact.outbox.get(change.edit.field)
    return entry is not None and entry.change == change.ref


def _superseded_by(stored: AccountState | None) -> tuple[SupersededVersion, ...]:
    """What a version accepted over `stored` supersedes while segments of it, or of an edit over it, may still be
    queued: the stored version's own values (a field edited over it takes the value its edit's mark kept), its
    decision and the edits over it (each field's earlier edits in segments, then its last), behind those it
    superseded itself. Nothing once nothing of it can be queued: every contact holds it and its edits."""
    if stored is None or stored.system_modstamp is None or stored.activity_logging is None:
        return ()
    if not _segments_may_be_pending(stored):
        return ()
    stamp = stored.system_modstamp
    marks = sorted(
        ((name, mark) for name, mark in stored.local_edits.items() if mark.base_modstamp == stamp),
        key=lambda item: (item[1].edited_at, item[1].edit_id),
    )
    own = {name: mark.values[0] for name, mark in marks if mark.values is not None}
    edits: list[PendingEdit] = []
    for name, mark in marks:
        edits += mark.earlier_edits
        if mark.decision is not None:
            value = mark.values[1] if mark.values is not None else stored.fields.get(name)
            logging = mark.decision.activity_logging
            edits.append(PendingEdit(name, mark.edit_id, mark.edited_at, value, logging, mark.accepted_as))
    version = AccountVersion(stored.account_id, stamp, stored.is_deleted, {**stored.fields, **own})
    superseded = SupersededVersion(version, stored.activity_logging, stored.sync_path, tuple(edits))
    return (*stored.superseded, superseded)


def _earlier_edits_size(marks: Mapping[str, EditMark], but: str | None = None) -> int:
    """The bytes the fields' marks take with the earlier edits they keep (but the field `but`'s)."""
    return sum(pending_edit_size(edit) for name, mark in marks.items() if name != but for edit in mark.earlier_edits)


def _segments_may_be_pending(stored: AccountState | None) -> bool:
    """Segments of another change of the account may still be queued: its newest version has not reached every
    contact yet, or an edit over it was fanned out in segments. A change accepted now then goes in segments too,
    never written at once ahead of them: its segments take the earlier changes onto a contact first wherever they
    come first (`_caught_up`), so every contact takes the account's changes in the order they were accepted, each
    with its own activities (issue 10, 2.1)."""
    if stored is None or stored.system_modstamp is None:
        return False
    if stored.applied_modstamp != stored.system_modstamp:
        return True
    return any(
        mark.base_modstamp == stored.system_modstamp
        and (mark.decision.segmented if mark.decision is not None else mark.plan_id is not None)
        for mark in stored.local_edits.values()
    )


def _last_edit_of_its_field(change: AccountChange, account: AccountState) -> bool:
    """An edit that is still its field's last (its mark): written at once, its delivery leaves no trace of having
    finished (a version's is `applied_modstamp`), so it may have died after writing a contact and before queueing
    that contact's activities, and its retry will not find the contact once it has left (finding G)."""
    if change.edit is None:
        return False
    mark = account.local_edits.get(change.edit.field)
    return mark is not None and mark.is_edit(change.edit)


def _may_be_pending(change: AccountChange, account: AccountState) -> bool:
    """A change the account knows whose segments may still be on their way: not the newest version once applied
    (its plan completed), nor an edit that is its field's last and was written at once."""
    if change.version is not None:
        return not (change.stamp == account.system_modstamp and account.applied_modstamp == account.system_modstamp)
    assert change.edit is not None
    mark = account.local_edits.get(change.edit.field)
    if mark is not None and mark.is_edit(change.edit) and mark.decision is not None:
        return mark.decision.segmented or mark.plan_id is not None
    return True


def _still_current(change: AccountChange, stored: AccountState | None) -> bool:
    """A version: still the account's newest. An edit: the account still at the version it was applied over, not
    deleted, and the edit still its field's last."""
    if stored is None:
        return False
    if change.version is not None:
        return compare_versions(change.stamp, stored.system_modstamp) is VersionVerdict.SAME
    assert change.edit is not None
    mark = stored.local_edits.get(change.edit.field)
    return (
        not stored.is_deleted
        and stored.system_modstamp == change.base_modstamp
        and mark is not None
        and mark.is_edit(change.edit)
    )


@dataclass(frozen=True)
class _ContactWrite:
    """One contact's write of a change: the fields it changes, and those it keeps (value and outbox entry)."""

    contact_id: str
    changes: list[FieldChange]
    kept: dict[str, tuple[FieldValue, OutboxEntry]]
    read: ContactSnapshot  # the contact as read: the write lands only on it (its revision)


def _as_changes(owed: Iterable[tuple[str, FieldValue, FieldValue]]) -> list[FieldChange]:
    return [FieldChange(name, canonical_value(old), canonical_value(new)) for name, old, new in owed]


class _ActivityOutbox:
    """Collects per-contact field changes into messages of bounded size, one change per message (its origin,
    stamp and id make the activities' keys), and queues them ten at a time (one SendMessageBatch). What is not
    queued yet when an invocation dies is not lost: the contacts keep, per field, the change that wrote it and the
    value before (their outbox), and the redelivered change queues the same activities again."""

    def __init__(self, publisher: ActivityPublisher, account_id: str) -> None:
        self._publisher = publisher
        self._account_id = account_id
        # per change and the path that applied it (on one contact, one path; across contacts, a resumed change
        # may show two)
        self._pending: dict[tuple[ChangeRef, SyncPath | None], list[ContactFieldChange]] = {}
        self._pending_bytes: dict[tuple[ChangeRef, SyncPath | None], int] = {}
        self._ready: list[ActivityBatchMessage] = []
        self._queued = 0

    def add(
        self, contact_id: str, ref: ChangeRef, changes: Iterable[FieldChange], path: SyncPath | None = None
    ) -> None:
        key = (ref, path)
        for change in changes:
            if change.old == change.new:
                continue  # a mark written on a contact, not a change of its value
            item = ContactFieldChange(contact_id, change.field, change.old, change.new)
            size = 64 + len(contact_id) + len(change.field) + len(str(change.old)) + len(str(change.new))
            pending = self._pending.setdefault(key, [])
            if pending and (
                len(pending) >= ACTIVITY_CHANGES_PER_MESSAGE
                or self._pending_bytes.get(key, 0) + size > ACTIVITY_BYTES_PER_MESSAGE
            ):
                self._send(key)
                pending = self._pending.setdefault(key, [])
            pending.append(item)
            self._pending_bytes[key] = self._pending_bytes.get(key, 0) + size

    def flush(self) -> int:
        for key in list(self._pending):
            if self._pending[key]:
                self._send(key)
        self._publish()
        return self._queued

    def _send(self, key: tuple[ChangeRef, SyncPath | None]) -> None:
        ref, path = key
        self._ready.append(
            ActivityBatchMessage(
                account_id=self._account_id,
                origin=ref.origin,
                system_modstamp=ref.stamp,
                changes=tuple(self._pending.pop(key)),
                change_id=ref.change_id,
                path=path,
            )
        )
        self._pending_bytes.pop(key, None)
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


__all__ = ["FanOut", "FanOutBatch", "FanOutConfig", "FanOutReport"]
