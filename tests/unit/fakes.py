"""In-memory fakes of the ports, with the same conditions as the DynamoDB adapters, recording their calls."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from account_sync.contracts import ActivityBatchMessage, ChangeMessage
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import AccountChange, ChangeDecision, OutboxEntry
from account_sync.domain.fields import FieldChange, FieldValue
from account_sync.domain.local_edits import mark_of
from account_sync.domain.records import (
    ActivitySuppression,
    ChangeDataValueActivity,
    ContactVersion,
    LocalEdit,
)
from account_sync.ports import (
    Acceptance,
    AcceptResult,
    AccountJoin,
    AccountState,
    AccountUnchanged,
    ApiUsage,
    ContactSnapshot,
    RecordedUsage,
    StoredContact,
    StreamState,
    WindowItem,
    WindowProgress,
    stays_in_account,
)


class FakeAccounts:
    def __init__(self) -> None:
        self.items: dict[str, AccountState] = {}
        self.joiner_writes = 0  # writes of an account's recent joiners (one per account and contact message)
        self.plans_done: dict[tuple[str, str], set[int]] = {}  # (account, plan) -> segments done: not the account
        self.applied_marks = 0  # writes of a version's applied mark: one per version, whatever its segments

    def get(self, account_id: str) -> AccountState | None:
        return self.items.get(account_id)

    def accept_version(
        self, version, decision: ChangeDecision, changed_fields, path=None, superseded=()
    ) -> AcceptResult:
        current = self.items.get(version.account_id)
        if (
            current is not None
            and current.system_modstamp is not None
            and (current.system_modstamp >= version.system_modstamp)
        ):
            if current.system_modstamp == version.system_modstamp:
                applied = current.applied_modstamp == version.system_modstamp
                return AcceptResult(Acceptance.ALREADY_APPLIED if applied else Acceptance.RESUME, current)
            return AcceptResult(Acceptance.STALE, current)
        state = AccountState(
            account_id=version.account_id,
            fields=dict(version.fields),
            system_modstamp=version.system_modstamp,
            applied_modstamp=None,
            is_deleted=version.is_deleted,
            activity_logging=decision.activity_logging,
            contacts_counted=decision.contacts_counted,
            changed_fields=tuple(changed_fields),
            segmented=decision.segmented,
            local_edits=dict(current.local_edits) if current else {},  # kept: each names the version it was over
            recent_joiners=dict(current.recent_joiners) if current else {},
            joiners_overflow_at=current.joiners_overflow_at if current else None,
            sync_path=path,
            superseded=tuple(superseded),
            changes_accepted=(current.changes_accepted or 0) + 1 if current else 1,
        )
        self.items[version.account_id] = state
        return AcceptResult(Acceptance.NEW, state, dict(current.fields) if current else {})

    def record_plan(self, change: AccountChange, plan_id: str, total: int) -> None:
        state = self.items[change.account_id]
        if change.version is not None:
            if state.system_modstamp == change.stamp:
                self.items[change.account_id] = replace(
                    state, segments_plan=plan_id, segments_total=total, segments_done=frozenset()
                )
            return
        assert change.edit is not None
        mark = state.local_edits.get(change.edit.field)
        if mark is not None and mark.is_edit(change.edit) and state.system_modstamp == change.base_modstamp:
            marks = {**state.local_edits, change.edit.field: replace(mark, plan_id=plan_id, segments_total=total)}
            self.items[change.account_id] = replace(state, local_edits=marks)

    def complete_segment(self, account_id: str, plan_id: str, index: int, total: int) -> bool:
        done = self.plans_done.setdefault((account_id, plan_id), set())
        done.add(index)
        return len(done) >= total

    def plan_complete(self, account_id: str, plan_id: str, total: int) -> bool:
        return len(self.plans_done.get((account_id, plan_id), ())) >= total

    def apply_local_edit(
        self, edit: LocalEdit, stored: AccountState, decision: ChangeDecision, changed: bool, earlier=()
    ) -> bool:
        state = self.items.get(edit.account_id)
        if (
            state is None
            or state.is_deleted
            or state.system_modstamp is None
            or state.system_modstamp != stored.system_modstamp
            or state.local_edits.get(edit.field) != stored.local_edits.get(edit.field)
            or state.changes_accepted != stored.changes_accepted
        ):
            return False
        previous = state.local_edits.get(edit.field)
        counted = (state.changes_accepted or 0) + 1
        mark = mark_of(
            edit,
            previous,
            state.system_modstamp,
            state.fields.get(edit.field),
            decision,
            changed,
            tuple(earlier),
            accepted_as=counted,
        )
        self.items[edit.account_id] = replace(
            state,
            fields={**state.fields, edit.field: edit.value},
            local_edits={**state.local_edits, edit.field: mark},
            changes_accepted=counted,
        )
        return True

    def mark_applied(self, account_id: str, system_modstamp: str, plan_id: str | None = None) -> bool:
        state = self.items[account_id]
        if (
            state.system_modstamp != system_modstamp
            or state.applied_modstamp == system_modstamp
            or (plan_id is not None and state.segments_plan != plan_id)
        ):
            return False
        self.items[account_id] = replace(state, applied_modstamp=system_modstamp, superseded=())
        self.applied_marks += 1
        return True

    def accept_unchanged_version(self, version, stored) -> bool:
        state = self.items.get(version.account_id)
        if (
            state is None
            or state.system_modstamp != stored.system_modstamp
            or state.applied_modstamp != stored.system_modstamp
            or state.is_deleted != stored.is_deleted
        ):
            return False
        self.items[version.account_id] = replace(
            state,
            system_modstamp=version.system_modstamp,
            applied_modstamp=version.system_modstamp,
            changed_fields=(),
        )
        return True

    def refresh_fields(self, account_id: str, system_modstamp: str, fields) -> int | None:
        state = self.items.get(account_id)
        if state is None or state.system_modstamp != system_modstamp or state.applied_modstamp != system_modstamp:
            return None
        counted = (state.changes_accepted or 0) + 1
        self.items[account_id] = replace(state, fields=dict(fields), changes_accepted=counted)
        return counted

    def note_joiners(self, account_id: str, contact_ids, joined_at: str, forget, overflow: bool) -> None:
        self.joiner_writes += 1
        state = self.items.get(account_id) or AccountState(account_id, {}, None, None, False, None, None)
        joiners = {c: at for c, at in state.recent_joiners.items() if forget.get(c) != at}
        if overflow:
            self.items[account_id] = replace(state, recent_joiners=joiners, joiners_overflow_at=joined_at)
        else:
            self.items[account_id] = replace(state, recent_joiners={**joiners, **dict.fromkeys(contact_ids, joined_at)})


@dataclass
class FakeContact:
    contact_id: str
    account_id: str | None = None
    account_fields: dict[str, FieldValue] = field(default_factory=dict)
    account_modstamp: str | None = None
    account_outbox: dict[str, OutboxEntry] = field(default_factory=dict)
    account_deleted: bool = False
    account_fields_source: str | None = None
    contact_modstamp: str | None = None
    is_deleted: bool = False
    deleted_from_account_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    changes_at_join: int | None = None
    revision: int | None = None  # Account Sync's writes of the item


class FakeContacts:
    """Contacts keyed like the table. `index_lag` hides from the account index (count, key pages, members) the
    contacts that joined an account in the last `index_lag` Contact writes, as DynamoDB's eventually consistent
    index may; `contact` (a strongly consistent read) always sees them."""

    def __init__(self, accounts: FakeAccounts | None = None) -> None:
        self.accounts = accounts  # a leave conditioned on its account item reads it here, as a transaction would
        self.items: dict[str, FakeContact] = {}
        self.account_writes = 0
        self.local_writes = 0
        self.contact_reads = 0  # strongly consistent reads of one contact (GetItem)
        self.count_calls = 0
        self.fail_writes_after: int | None = None  # simulate a crash after N contact writes (of either kind)
        self.index_lag = 0
        self._joins: list[str] = []  # contact ids, in the order they joined an account
        self.hidden_from_index: set[str] = set()  # contacts a test hides from the index by name, until it clears them
        self._lock = threading.Lock()  # the fan-out writes from its executor's threads

    @property
    def writes(self) -> int:
        return self.account_writes + self.local_writes

    def _crash_if_due(self) -> None:
        if self.fail_writes_after is not None and self.writes >= self.fail_writes_after:
            raise RuntimeError("simulated crash (Lambda timeout)")

    def add(self, contact: FakeContact) -> None:
        self.items[contact.contact_id] = contact

    def _members(self, account_id: str) -> list[FakeContact]:
        lagging = set(self._joins[-self.index_lag :]) if self.index_lag else set()
        lagging |= self.hidden_from_index
        return sorted(
            (
                c
                for c in self.items.values()
                if c.account_id == account_id and not c.is_deleted and c.contact_id not in lagging
            ),
            key=lambda c: c.contact_id,
        )

    def count_members(self, account_id: str, limit: int) -> int:
        self.count_calls += 1
        return min(len(self._members(account_id)), limit)

    def member_key_pages(self, account_id: str, page_size: int) -> Iterator[tuple[str | None, str]]:
        members = self._members(account_id)
        after = None
        for start in range(0, len(members), page_size):
            through = members[start : start + page_size][-1].contact_id
            yield after, through
            after = through

    @staticmethod
    def _snapshot(c: FakeContact) -> ContactSnapshot:
        return ContactSnapshot(
            c.contact_id,
            dict(c.account_fields),
            c.account_modstamp,
            c.account_deleted,
            dict(c.account_outbox),
            c.account_id,
            c.contact_modstamp,
            c.is_deleted,
            c.changes_at_join,
            c.revision,
        )

    def members(self, account_id, after=None, through=None) -> Iterator[ContactSnapshot]:
        for c in self._members(account_id):
            if (after is not None and c.contact_id <= after) or (through is not None and c.contact_id > through):
                continue
            yield self._snapshot(c)

    def get_contact(self, contact_id: str) -> StoredContact | None:
        """The contact as the HTTP API reads it (a strongly consistent GetItem)."""
        c = self.items.get(contact_id)
        if c is None:
            return None
        return StoredContact(
            contact_id=c.contact_id,
            account_id=c.account_id,
            is_salesforce_contact=c.contact_modstamp is not None,
            is_deleted=c.is_deleted,
            account_deleted=c.account_deleted,
            first_name=c.first_name,
            last_name=c.last_name,
            email=c.email,
        )

    def contact(self, contact_id: str) -> ContactSnapshot | None:
        with self._lock:
            self.contact_reads += 1
            c = self.items.get(contact_id)
            return self._snapshot(c) if c else None

    def write_change(
        self,
        contact_id: str,
        change: AccountChange,
        changes: Sequence[FieldChange],
        kept: Mapping[str, tuple[FieldValue, OutboxEntry]] | None = None,
        as_read: ContactSnapshot | None = None,
    ) -> bool:
        with self._lock:
            self._crash_if_due()
            c = self.items[contact_id]
            kept = kept or {}
            if c.account_id != change.account_id or c.is_deleted or change.overtaken_on(c.account_modstamp):
                return False
            if as_read is not None and c.revision != as_read.revision:
                return False  # written since it was read
            if not change.rewrites_own_stamp and c.account_modstamp == change.guard_modstamp:
                return False  # a version writes a contact at an older one only
            edited = change.edited_over(c.account_outbox)
            if {n: e.change for n, e in edited.items()} != {n: e.change for n, (_, e) in kept.items()}:
                return False  # a local edit over the version reached a field since the contact was read
            entries = {fc.field: OutboxEntry(change.ref, fc.old, change.base_modstamp, change.path) for fc in changes}
            if change.version is not None:
                c.account_fields = {**change.version.fields, **{n: value for n, (value, _) in kept.items()}}
                c.account_modstamp = change.version.system_modstamp
                c.account_outbox = {**entries, **{n: entry for n, (_, entry) in kept.items()}}
                c.account_deleted = change.version.is_deleted
                c.account_fields_source = "salesforce"
                self.account_writes += 1
            else:
                c.account_fields = {**c.account_fields, **change.values}
                c.account_outbox = {**c.account_outbox, **entries}
                c.account_fields_source = "local"
                self.local_writes += 1
            c.revision = (c.revision or 0) + 1
            return True

    def apply_contact_version(
        self,
        version: ContactVersion,
        expected: ContactSnapshot | None,
        join: AccountJoin | None,
        account_unchanged: AccountUnchanged | None = None,
    ) -> bool:
        with self._lock:
            if account_unchanged is not None:  # the transaction's ConditionCheck on the account item
                assert self.accounts is not None, "a conditioned leave needs FakeContacts(accounts)"
                account = self.accounts.items.get(account_unchanged.account_id)
                if (account.changes_accepted if account else None) != account_unchanged.changes_accepted:
                    return False
            c = self.items.get(version.contact_id)
            if c is None:
                if expected is not None:
                    return False
                c = self.items[version.contact_id] = FakeContact(version.contact_id)
            elif expected is None or (c.account_id, c.account_modstamp, c.is_deleted, c.revision) != (
                expected.account_id,
                expected.account_modstamp,
                expected.is_deleted,
                expected.revision,
            ):
                return False  # changed since it was read
            if c.contact_modstamp is not None and c.contact_modstamp >= version.system_modstamp:
                return False
            stays = stays_in_account(version, expected)
            c.revision = (c.revision or 0) + 1
            c.contact_modstamp = version.system_modstamp
            c.is_deleted = version.is_deleted
            c.first_name, c.last_name, c.email = version.first_name, version.last_name, version.email
            if version.is_deleted:
                c.account_id = None
                c.deleted_from_account_id = version.account_id
                return True
            c.deleted_from_account_id = None
            c.account_id = version.account_id
            if stays:
                return True
            if version.account_id:
                self._joins.append(version.contact_id)
            c.changes_at_join = join.changes_accepted if join is not None else None
            if join is not None:
                c.account_fields = dict(join.fields)
                c.account_modstamp = join.system_modstamp
                c.account_deleted = join.is_deleted
                c.account_outbox = dict(join.outbox)
                c.account_fields_source = "salesforce"
            else:
                c.account_fields, c.account_modstamp, c.account_deleted = {}, None, False
                c.account_outbox = {}
            return True


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list = []

    def publish(self, messages: Sequence) -> None:
        self.messages.extend(messages)


class FakeActivityStore:
    """Keyed like the table: writing the same key twice leaves one activity."""

    def __init__(self) -> None:
        self.activities: dict[tuple[str, str], ChangeDataValueActivity] = {}
        self.suppressions: dict[tuple[str, str], ActivitySuppression] = {}

    def put_activities(self, activities: Iterable[ChangeDataValueActivity]) -> int:
        """Each key once, as the DynamoDB adapter writes them (a BatchWriteItem may not name a key twice)."""
        unique = {(activity.contact_id, activity.activity_key): activity for activity in activities}
        self.activities.update(unique)
        return len(unique)

    def put_suppression(self, suppression: ActivitySuppression) -> None:
        self.suppressions[(suppression.account_id, suppression.activity_key)] = suppression


class FakeSyncState:
    def __init__(self) -> None:
        self.watermarks: dict[str, str] = {}
        self.progress: dict[str, WindowProgress] = {}
        self.usage: RecordedUsage | None = None
        self.lease_owner: str | None = None
        self.lease_seconds: int | None = None
        self.saved: list[tuple[str, str]] = []
        self.synced_fields: tuple[str, ...] | None = None
        self.drift = None

    def load_watermark(self, sobject: str) -> str | None:
        return self.watermarks.get(sobject)

    def save_watermark(self, sobject: str, watermark: str, run: Mapping[str, object]) -> None:
        if sobject not in self.watermarks or self.watermarks[sobject] < watermark:
            self.watermarks[sobject] = watermark
            self.saved.append((sobject, watermark))
            self.progress.pop(sobject, None)

    def load_stream(self, stream: str) -> StreamState:
        return StreamState(self.watermarks.get(stream), self.progress.get(stream))

    def end_window(self, stream: str, run: Mapping[str, object]) -> None:
        self.progress.pop(stream, None)

    def load_synced_fields(self):
        return self.synced_fields

    def load_drift(self):
        return self.drift

    def save_drift(self, drift) -> None:
        self.drift = drift

    def save_synced_fields(self, fields, at: str) -> None:
        self.synced_fields = tuple(fields)

    def save_progress(self, stream: str, progress: WindowProgress, run: Mapping[str, object]) -> None:
        self.progress[stream] = progress

    def load_api_usage(self) -> RecordedUsage | None:
        return self.usage

    def save_api_usage(self, recorded: RecordedUsage) -> None:
        self.usage = recorded

    def acquire_lease(self, owner: str, seconds: int) -> bool:
        if self.lease_owner not in (None, owner):
            return False
        self.lease_owner = owner
        self.lease_seconds = seconds
        return True

    def release_lease(self, owner: str) -> None:
        if self.lease_owner == owner:
            self.lease_owner = None


class FakeSalesforce:
    """Records with SystemModstamp, answering windows like queryAll ordered by (SystemModstamp, Id)."""

    def __init__(self, fields: Iterable[str] = ("Name", "Industry")) -> None:
        self.fields = set(fields) | {"Id", "SystemModstamp", "IsDeleted"}
        self.records: dict[str, list[dict]] = {"Account": [], "Contact": []}
        self.windows: list[tuple[str, str, str]] = []
        self.calls = 0
        self.usage: ApiUsage | None = None
        self.fail_after_records: int | None = None
        self.page_size = 2000
        self.on_record: Callable[[], None] | None = None

    def account_field_names(self) -> set[str]:
        self.calls += 1
        return self.fields

    def read_window(self, sobject, fields, start, end, position=None):
        """Like REST queries: (SystemModstamp, Id) order, a keyset position after each record, one call per
        `page_size` records; `on_record` is called before each record is handed out (a clock for the tests)."""
        self.windows.append((sobject, start, end))
        self.calls += 1
        after = (position["after_stamp"], position["after_id"]) if position else None
        rows = sorted(
            (r for r in self.records[sobject] if start < r["SystemModstamp"] <= end),
            key=lambda r: (r["SystemModstamp"], r["Id"]),
        )
        rows = [r for r in rows if after is None or (r["SystemModstamp"], r["Id"]) > after]
        for index, row in enumerate(rows):
            if self.fail_after_records is not None and index >= self.fail_after_records:
                raise RuntimeError("simulated crash mid-window")
            if index and index % self.page_size == 0:
                self.calls += 1
            if self.on_record is not None:
                self.on_record()
            record = {name: row.get(name) for name in fields}
            yield WindowItem(record, {"mode": "rest", "after_stamp": row["SystemModstamp"], "after_id": row["Id"]})

    def accounts_after(self, fields, after_id, limit):
        self.calls += 1
        rows = sorted((r for r in self.records["Account"] if not r.get("IsDeleted")), key=lambda r: r["Id"])
        for row in [r for r in rows if after_id is None or r["Id"] > after_id][:limit]:
            yield {name: row.get(name) for name in fields}

    def accounts_by_ids(self, fields, account_ids):
        self.calls += 1
        wanted = set(account_ids)
        for row in sorted(self.records["Account"], key=lambda r: r["Id"]):
            if row["Id"] in wanted:
                yield {name: row.get(name) for name in fields}

    @property
    def api_usage(self) -> ApiUsage | None:
        return self.usage

    @property
    def api_calls(self) -> int:
        return self.calls


def activity_batches(publisher: RecordingPublisher) -> list[ActivityBatchMessage]:
    return [m for m in publisher.messages if isinstance(m, ActivityBatchMessage)]


def change_messages(publisher: RecordingPublisher) -> list[ChangeMessage]:
    return [m for m in publisher.messages if not isinstance(m, ActivityBatchMessage)]


__all__ = [
    "ActivityLogging",
    "FakeAccounts",
    "FakeActivityStore",
    "FakeContact",
    "FakeContacts",
    "FakeSalesforce",
    "FakeSyncState",
    "RecordingPublisher",
]
