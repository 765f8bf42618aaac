"""The model-based suite of the fan-out (issue 10, section 4): random interleavings of Salesforce changes, local
edits, deliveries and faults, driven through the real services, checked at every quiet point against the
independent reference model (`reference.py`).

The machine plays Salesforce and the fetch (it queues account and contact versions as the fetch does: an account's
message, then its contacts', in the account's FIFO group), the HTTP API (local edits through `LocalEdits`), and
SQS/Lambda (`queues.py`); with `PUSH_EVENTS` a Salesforce change waits in the model's Salesforce for the push path or
the poll instead (`push.py`, `PushMachine`). Sizes are small on purpose: threshold 3 and segments of 2 exercise the
5000 rule and the segmented fan-out with a handful of contacts, and accounts start with 0, 1, 3 (= threshold) or 4
(threshold + 1).

Each family of events whose divergences are known (issue 10, section 2) is behind a switch (`Switches`): off, the
machine does not generate that interleaving (or does not check that promise); on, it does.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from account_sync.contracts import (
    AccountChangeMessage,
    ChangeSegmentMessage,
    ContactChangesMessage,
    LocalEditMessage,
    parse_change_message,
)
from account_sync.domain.changes import AccountChange
from account_sync.domain.records import AccountVersion, ContactVersion
from account_sync.services.refusals import Conflict, InvalidRequest, NotFound
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from tests.model.push import ModelSalesforce, PushEvents, account_row, contact_row, salesforce_id
from tests.model.queues import Entry, QueueWorld
from tests.model.reference import ReferenceModel
from tests.model.wiring import SYNCED, Backend, DynamoBackend, FakeBackend, build_services

THRESHOLD = 3
SEGMENT_SIZE = 2
ACCOUNTS = 3
EPOCH = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
VALUES = st.sampled_from(["a", "b", "c", "", None, 7])
# What runs while an invocation is paused (`two_invocations_at_once`): one batch of another busy group; or every
# other group of the paused one's account (its own, its segments': the writes that meet on its contacts) until
# empty, first accepting there an edit of the field the paused change writes, or a Salesforce version.
MEANWHILE = ("another group", "its account's groups", "an edit of its field", "a version")
POISON_BODIES = ["{not json", '{"type": "account_change", "schema": 1}', '{"type": "mystery", "schema": 1}']


@dataclass(frozen=True)
class Switches:
    """Families of events whose divergences from issue 10, section 2 are known; all off: the healthy machine."""

    INDEX_LAG: bool = False  # 2.4: contacts the by_account_keys index does not show yet
    CONTACTS_IN_SAME_WINDOW: bool = False  # 2.1: contact changes between a version's acceptance and its segments
    SAME_MS_EDITS: bool = False  # 2.3: two edits of one field in one millisecond
    MOVES_LOGGED: bool = False  # 3b: a move that changes a contact's account fields is a Change Data Value
    POISON_ALONE: bool = False  # 2.5: a poison message in an account's group, healthy messages behind it
    CHANGE_OVERTAKES_SEGMENTS: bool = False  # 2.1: a version or an edit accepted while a change's segments wait
    PUSH_EVENTS: bool = False  # issue 13: changes reach the store by CDC events and the poll (tests/model/push.py)
    # 2.1: members leaving while many changes of their account wait in segments, or while another invocation accepts
    # a change of it between the leaver's read of the account and its leave
    LEAVERS: bool = False

    def on(self) -> list[str]:
        return [name for name, value in vars(self).items() if value]


class _Poison:
    def __repr__(self) -> str:
        return "POISON"


POISON = _Poison()
_examples = itertools.count()
RUNS: Counter[str] = Counter()  # examples run per machine class (make chaos prints it)
# Two invocations at once: the store write the first paused before, and its contact writes refused once it went on
# (the other wrote the contact between its read and its write). make chaos prints them.
OVERLAPS: Counter[str] = Counter()


class FanOutMachine(RuleBasedStateMachine):
    BACKEND = "fakes"
    SWITCHES = Switches()

    def __init__(self) -> None:
        super().__init__()
        RUNS[type(self).__name__] += 1
        example = next(_examples)
        self.backend: Backend = DynamoBackend(prefix=f"x{example}") if self.BACKEND == "dynamo" else FakeBackend()
        self.prefix = self.backend.prefix
        self.clock = 0
        self.edit_keys = itertools.count()
        self.last_edit: tuple[str, str, object, str] | None = None
        self.lag_next = False
        self.poison_ids: set[str] = set()
        self.reference = ReferenceModel(SYNCED, THRESHOLD, moves_logged=self.SWITCHES.MOVES_LOGGED)
        services = build_services(
            self.backend,
            self.now,
            THRESHOLD,
            SEGMENT_SIZE,
            send_change=self._segment_queued,
            send_activity=lambda m: self.queues.send_activity(m.to_body()),
            send_edit=lambda m: self.queues.send_change(m.to_body(), m.group_id, m.deduplication_id, tag=m),
        )
        self.services = services
        self.queues = QueueWorld(
            clock_ms=lambda: self.clock,
            apply_change=services.apply_change,
            apply_activity=services.apply_activity,
            on_applied=self._applied,
            revive=self._revive,
            begin_batch=services.begin_batch,
            on_failed=self._failed,
            before_apply=self._before_apply,
        )
        # Queue knowledge for the reference (never the store's): the segments applied, and for each account version
        # as the fan-out was last handed it, whether segments of its account were still waiting (not yet applied).
        self.segments_applied: set[str] = set()
        self.segments_waiting: dict[str, bool] = {}
        self.second_plans: list[str] = []
        self.changes_in_a_leavers_window = 0  # LEAVERS: changes accepted between a leaver's read and its leave
        # Salesforce as it is: account -> (stamp, fields, deleted, all versions); contact -> (stamp, account, deleted)
        self.sf_accounts: dict[str, dict] = {}
        self.sf_contacts: dict[str, dict] = {}
        self.contact_numbers = itertools.count()
        # PUSH_EVENTS: Salesforce's rows and change events; once loaded, changes wait there for the push or the poll.
        self.salesforce = ModelSalesforce(publish_events=self.SWITCHES.PUSH_EVENTS)
        self.poll_waits = False

    # --- the clock and ids --------------------------------------------------------------------------------------

    def now(self) -> str:
        moment = EPOCH + timedelta(milliseconds=self.clock)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def tick(self, ms: int = 1) -> str:
        self.clock += ms
        return self.now()

    def account_ids(self) -> list[str]:
        return [salesforce_id("001", f"{self.prefix}A{n}") for n in range(ACCOUNTS)]

    def live_accounts(self) -> list[str]:
        return [a for a in self.account_ids() if not self.sf_accounts[a]["deleted"]]

    def live_contacts(self) -> list[str]:
        return sorted(c for c, state in self.sf_contacts.items() if not state["deleted"])

    # --- the fetch: what Salesforce changed, queued in the account's group ---------------------------------------

    def queue(self, message: object) -> None:
        if self.poll_waits:
            return  # PUSH_EVENTS: the change waits in Salesforce for the push path or the poll
        self.queues.send_change(message.to_body(), message.group_id, message.deduplication_id, tag=message)  # type: ignore[attr-defined]

    def new_account_version(self, account_id: str, changes: dict, deleted: bool = False) -> AccountVersion:
        state = self.sf_accounts[account_id]
        fields = {**state["fields"], **changes}
        version = AccountVersion(account_id, self.tick(), deleted, fields)
        state.update(fields=fields, deleted=deleted)
        state["versions"].append(version)
        self.salesforce.commit("Account", account_row(version))
        return version

    def new_contact_version(self, contact_id: str, account_id: str | None, deleted: bool = False) -> ContactVersion:
        self.sf_contacts[contact_id] = {"account": account_id, "deleted": deleted}
        version = ContactVersion(contact_id, self.tick(), deleted, account_id, "Ada", contact_id, None)
        self.salesforce.commit("Contact", contact_row(version))
        return version

    def group_free(self, contact_id: str, *accounts: str | None) -> bool:
        """Without CONTACTS_IN_SAME_WINDOW, a contact change is only queued behind nothing of its groups (its
        accounts', or its own while it has none: `contracts.contact_group`), so it never lands between a version's
        acceptance and its segments."""
        if self.SWITCHES.CONTACTS_IN_SAME_WINDOW:
            return True
        return all(self.queues.pending_in(account or contact_id) == 0 for account in accounts)

    @initialize(sizes=st.lists(st.sampled_from([0, 1, 3, 4]), min_size=ACCOUNTS, max_size=ACCOUNTS), data=st.data())
    def accounts_with_contacts(self, sizes: list[int], data: st.DataObject) -> None:
        for account_id, size in zip(self.account_ids(), sizes, strict=True):
            fields = {name: data.draw(VALUES, label=f"{account_id}.{name}") for name in SYNCED}
            self.sf_accounts[account_id] = {"fields": {}, "deleted": False, "versions": []}
            self.queue(AccountChangeMessage(self.new_account_version(account_id, fields)))
            versions = [self.new_contact_version(self.new_contact_id(), account_id) for _ in range(size)]
            if versions:
                self.queue(ContactChangesMessage(tuple(versions)))
        self.queues.drain()
        self.backend.catch_up()
        self.poll_waits = self.SWITCHES.PUSH_EVENTS

    def new_contact_id(self) -> str:
        return salesforce_id("003", f"{self.prefix}C{next(self.contact_numbers):02d}")

    @rule(account=st.integers(0, ACCOUNTS - 1), changes=st.dictionaries(st.sampled_from(SYNCED), VALUES, max_size=3))
    def account_changes(self, account: int, changes: dict) -> None:
        """A Salesforce change: synced fields, or none (a SystemModstamp-only change)."""
        account_id = self.account_ids()[account]
        if account_id not in self.live_accounts():
            return
        if self.SWITCHES.CHANGE_OVERTAKES_SEGMENTS or not self.queues.pending_in(account_id):
            self.queue(AccountChangeMessage(self.new_account_version(account_id, changes)))

    @rule(
        account=st.integers(0, ACCOUNTS - 1),
        changes=st.dictionaries(st.sampled_from(SYNCED), VALUES, min_size=1, max_size=3),
        creates=st.integers(0, 2),
        touch=st.booleans(),
        delete=st.booleans(),
    )
    def account_and_contacts_in_one_window(
        self, account: int, changes: dict, creates: int, touch: bool, delete: bool
    ) -> None:
        """One fetch window: the account's change, then contacts of it created, changed or deleted, behind it."""
        account_id = self.account_ids()[account]
        if account_id not in self.live_accounts() or not self.SWITCHES.CONTACTS_IN_SAME_WINDOW:
            return
        self.queue(AccountChangeMessage(self.new_account_version(account_id, changes)))
        members = [c for c in self.live_contacts() if self.sf_contacts[c]["account"] == account_id]
        versions = [self.new_contact_version(self.new_contact_id(), account_id) for _ in range(creates)]
        if touch and members:
            versions.append(self.new_contact_version(members[0], account_id))
        if delete and members:
            versions.append(self.new_contact_version(members[-1], account_id, deleted=True))
        for version in versions:
            self.queue(ContactChangesMessage((version,)))

    @rule(account=st.integers(0, ACCOUNTS - 1))
    def account_deleted(self, account: int) -> None:
        """Deleted in Salesforce, which cascades to its contacts (the same window queues their deletes)."""
        account_id = self.account_ids()[account]
        if account_id not in self.live_accounts() or not self.group_free(account_id, account_id):
            return
        if self.queues.pending_in(account_id) and not self.SWITCHES.CHANGE_OVERTAKES_SEGMENTS:
            return
        with self.salesforce.transaction():  # one change event for the cascade's contacts (PUSH_EVENTS)
            self.queue(AccountChangeMessage(self.new_account_version(account_id, {}, deleted=True)))
            for contact_id in self.live_contacts():
                if self.sf_contacts[contact_id]["account"] == account_id:
                    version = self.new_contact_version(contact_id, account_id, deleted=True)
                    self.queue(ContactChangesMessage((version,)))

    @rule(account=st.integers(-1, ACCOUNTS - 1))
    def contact_created(self, account: int) -> None:
        account_id = self.account_ids()[account] if account >= 0 else None
        contact_id = self.new_contact_id()
        if (account_id and account_id not in self.live_accounts()) or not self.group_free(contact_id, account_id):
            return
        self.queue(ContactChangesMessage((self.new_contact_version(contact_id, account_id),)))

    @rule(contact=st.integers(0, 30), account=st.integers(-1, ACCOUNTS - 1))
    def contact_moved(self, contact: int, account: int) -> None:
        contacts = self.live_contacts()
        if not contacts:
            return
        contact_id = contacts[contact % len(contacts)]
        before = self.sf_contacts[contact_id]["account"]
        account_id = self.account_ids()[account] if account >= 0 else None
        if account_id == before or (account_id and account_id not in self.live_accounts()):
            return
        if not self.group_free(contact_id, before, account_id):
            return
        self.queue(ContactChangesMessage((self.new_contact_version(contact_id, account_id),)))

    @rule(contact=st.integers(0, 30))
    def contact_deleted(self, contact: int) -> None:
        contacts = self.live_contacts()
        if not contacts:
            return
        contact_id = contacts[contact % len(contacts)]
        account_id = self.sf_contacts[contact_id]["account"]
        if self.group_free(contact_id, account_id):
            self.queue(ContactChangesMessage((self.new_contact_version(contact_id, account_id, deleted=True),)))

    @rule(contact=st.integers(0, 30))
    def contact_changed(self, contact: int) -> None:
        """A change of the contact alone (its name): the same account, a newer version."""
        contacts = self.live_contacts()
        if not contacts:
            return
        contact_id = contacts[contact % len(contacts)]
        account_id = self.sf_contacts[contact_id]["account"]
        if self.group_free(contact_id, account_id):
            self.queue(ContactChangesMessage((self.new_contact_version(contact_id, account_id),)))

    @rule(account=st.integers(0, ACCOUNTS - 1), back=st.integers(1, 3))
    def refetched(self, account: int, back: int) -> None:
        """A later window re-reads an older version (lookback overlap): sent again, deduplicated for 5 minutes."""
        versions = self.sf_accounts[self.account_ids()[account]]["versions"]
        if len(versions) > back:
            self.queue(AccountChangeMessage(versions[-1 - back]))

    # --- the HTTP API: local edits -----------------------------------------------------------------------------

    def request_edit(self, contact_id: str, field: str, value: object, key: str) -> bool:
        try:
            self.services.local_edits.request(contact_id, field, value, idempotency_key=key)  # type: ignore[arg-type]
        except (Conflict, NotFound, InvalidRequest):
            return False
        self.last_edit = (contact_id, field, value, key)
        return True

    def edit_may_queue(self, contact_id: str) -> bool:
        """Without CHANGE_OVERTAKES_SEGMENTS, an edit is only queued behind nothing of its account's group."""
        if self.SWITCHES.CHANGE_OVERTAKES_SEGMENTS:
            return True
        view = self.backend.contact_view(contact_id)
        return view is None or view.account_id is None or not self.queues.pending_in(view.account_id)

    @rule(contact=st.integers(0, 30), field=st.sampled_from(SYNCED), value=VALUES)
    def local_edit(self, contact: int, field: str, value: object) -> None:
        contacts = self.live_contacts()
        if contacts and self.edit_may_queue(contact_id := contacts[contact % len(contacts)]):
            self.tick()
            self.request_edit(contact_id, field, value, f"k{next(self.edit_keys)}")

    @precondition(lambda self: self.SWITCHES.SAME_MS_EDITS)
    @rule(contact=st.integers(0, 30), field=st.sampled_from(SYNCED), first=VALUES, second=VALUES)
    def two_edits_in_one_millisecond(self, contact: int, field: str, first: object, second: object) -> None:
        contacts = self.live_contacts()
        if contacts and self.edit_may_queue(contact_id := contacts[contact % len(contacts)]):
            self.tick()
            self.request_edit(contact_id, field, first, f"k{next(self.edit_keys)}")
            self.request_edit(contact_id, field, second, f"k{next(self.edit_keys)}")

    @precondition(lambda self: self.last_edit is not None)
    @rule()
    def edit_request_sent_again(self) -> None:
        """The caller retries with the same Idempotency-Key: the same edit (SQS drops it within 5 minutes)."""
        assert self.last_edit is not None
        if not self.edit_may_queue(self.last_edit[0]):
            return
        self.tick()
        self.request_edit(*self.last_edit)

    # --- SQS and Lambda -----------------------------------------------------------------------------------------

    @rule(group=st.integers(0, 30), batch_size=st.integers(1, 10))
    def fan_out_invoked(self, group: int, batch_size: int) -> None:
        groups = self.queues.busy_groups()
        if groups:
            self.queues.deliver_changes(groups[group % len(groups)], batch_size)

    @rule(indexes=st.lists(st.integers(0, 50), min_size=1, max_size=10), duplicate=st.booleans())
    def logging_invoked(self, indexes: list[int], duplicate: bool) -> None:
        """The activity queue is a standard queue: any order, and a message may come twice."""
        self.queues.deliver_activities(indexes, duplicate=duplicate)

    @rule(group=st.integers(0, 30))
    def batch_delivered_again(self, group: int) -> None:
        groups = sorted(self.queues.last_batch)
        if groups:
            self.queues.redeliver_last_batch(groups[group % len(groups)])

    @rule(minutes=st.sampled_from([1, 6]))
    def time_passes(self, minutes: int) -> None:
        """A minute or more: the account index has caught up (it lags by less than `FanOutConfig.index_lag_seconds`,
        the bound the fan-out's recent joiners cover; docs/decisions.md)."""
        self.tick(minutes * 60_000)
        self.backend.catch_up()

    @rule(writes=st.integers(0, 5))
    def fan_out_killed_after_writes(self, writes: int) -> None:
        """Lambda's timeout after the N-th contact write of the next invocations: nothing after it runs."""
        self.backend.sandbox.kill_after_writes = self.backend.sandbox.writes + writes

    @rule(writes=st.integers(0, 5))
    def contact_write_throttled(self, writes: int) -> None:
        self.backend.arm_throttle(writes)

    @rule()
    def activity_batch_partly_unprocessed(self) -> None:
        self.backend.arm_unprocessed_items()

    @precondition(lambda self: self.SWITCHES.INDEX_LAG)
    @rule()
    def index_lags(self) -> None:
        """From now until the next quiet point, contacts written by a contact change are not in the by_account_keys
        index yet (each write lags behind; the index catches up at the quiet point)."""
        self.lag_next = True

    @precondition(lambda self: self.SWITCHES.INDEX_LAG)
    @rule(account=st.integers(0, ACCOUNTS - 1), changes=st.dictionaries(st.sampled_from(SYNCED), VALUES, min_size=1))
    def contact_joins_just_before_a_version(self, account: int, changes: dict) -> None:
        """Issue 10, 2.4: a contact joins (its write not yet in the index), then the account's next version."""
        account_id = self.account_ids()[account]
        if account_id not in self.live_accounts() or self.queues.pending_in(account_id):
            return
        self.lag_next = True
        self.queue(ContactChangesMessage((self.new_contact_version(self.new_contact_id(), account_id),)))
        self.queues.deliver_changes(account_id, 10)
        self.queue(AccountChangeMessage(self.new_account_version(account_id, changes)))

    @rule(body=st.sampled_from(POISON_BODIES), account=st.integers(0, ACCOUNTS - 1))
    def poison_queued(self, body: str, account: int) -> None:
        """A message that can never succeed. Without POISON_ALONE it has a group of its own."""
        group = self.account_ids()[account] if self.SWITCHES.POISON_ALONE else f"poison-{self.clock}"
        self.tick()
        self.queues.send_change(body, group, f"poison-{self.clock}", tag=POISON)
        self.poison_ids.add(self.queues.groups[group][-1].message_id)

    def _before_apply(self, entry: Entry, later: list[Entry]) -> None:
        """An account version about to be applied: are segments of its account (of an earlier change) still waiting,
        in its group or after it in the batch? Then the version before it has not reached every contact."""
        if isinstance(entry.tag, AccountChangeMessage) and entry.group is not None:
            waiting = [*later, *self.queues.waiting_in(entry.group)]  # segments run in groups of their own
            self.segments_waiting[entry.message_id] = any(
                e.tag is None and e.message_id not in self.segments_applied for e in waiting
            )

    def _applied(self, entry: Entry) -> None:
        if entry.tag is None:
            self.segments_applied.add(entry.message_id)  # a segment delivered again waits for nothing
            return
        if entry.tag is POISON:
            return
        before = {cid: (c.modstamp, c.account_id, c.deleted) for cid, c in self.reference.contacts.items()}
        self.reference.applied(entry.tag, segments_waiting=self.segments_waiting.get(entry.message_id, False))
        if self.lag_next and isinstance(entry.tag, ContactChangesMessage):
            # Only a join moves a contact in the index (its key, `account_id`, changes): a stale redelivery writes
            # nothing, and a contact that stays in its account keeps its entry (keys only: the index is not written).
            joined = set()
            for v in entry.tag.versions:
                after = self.reference.contacts[v.contact_id]
                was = before.get(v.contact_id)
                if v.is_deleted or (was is not None and was[0] == after.modstamp):
                    continue
                if was is None or was[1] != after.account_id or was[2]:
                    joined.add(v.contact_id)
            self.backend.lag(joined)

    def _revive(self) -> None:
        self.backend.sandbox.dead = False

    # --- issue 10, 2.2: a decision is taken once, across retries that other groups overtake ------------------

    @rule(group=st.integers(0, 30), batch_size=st.integers(1, 10))
    def fan_out_invoked_once(self, group: int, batch_size: int) -> None:
        """One invocation; what fails waits for its visibility timeout, and the machine's next steps (other
        groups, new edits and Salesforce changes) run before its retry: a resumed version, a redelivered edit."""
        groups = self.queues.busy_groups()
        if groups:
            self.queues.deliver_once(groups[group % len(groups)], batch_size)

    def _idle_account_and_target(self, account: int, away: int) -> tuple[str, str | None, str] | None:
        """The account, the account a member moves to (None: to no account) and that member (its first), when
        neither account nor the member has a message waiting; None otherwise."""
        account_id = self.account_ids()[account]
        target = self.account_ids()[away] if away >= 0 else None
        if account_id not in self.live_accounts() or target == account_id or self.queues.pending_in(account_id):
            return None
        if target is not None and (target not in self.live_accounts() or self.queues.pending_in(target)):
            return None
        members = [c for c in self.live_contacts() if self.sf_contacts[c]["account"] == account_id]
        if not members or self.queues.pending_in(members[0]):
            return None
        return account_id, target, members[0]

    def _queue_account_change(self, account_id: str, member: str, changes: dict, edit: bool) -> bool:
        """A local edit through `member` (the first of `changes`), or a Salesforce version with `changes`, queued
        in the account's group. False when the API refused the edit."""
        if edit:
            field, value = sorted(changes.items(), key=repr)[0]
            self.tick()
            return self.request_edit(member, field, value, f"k{next(self.edit_keys)}")
        self.queue(AccountChangeMessage(self.new_account_version(account_id, changes)))
        return True

    @rule(
        account=st.integers(0, ACCOUNTS - 1),
        changes=st.dictionaries(st.sampled_from(SYNCED), VALUES, min_size=1, max_size=3),
        edit=st.booleans(),
        away=st.integers(-1, ACCOUNTS - 1),
    )
    def retried_after_a_member_left(self, account: int, changes: dict, edit: bool, away: int) -> None:
        """A version (or a local edit) of the account is accepted and its invocation killed before its next write;
        one of its contacts then moves away (in its new account's group, or its own) before the retry. The
        decision was taken with that contact counted: the retry must keep it (logged or suppressed, one plan)."""
        idle = self._idle_account_and_target(account, away)
        if idle is None:
            return
        account_id, target, member = idle
        view = self.backend.contact_view(member)
        if view is None or view.account_id != account_id:
            return
        if not self._queue_account_change(account_id, member, changes, edit):
            return
        self.backend.sandbox.kill_after_writes = self.backend.sandbox.writes + 1
        self.queues.deliver_once(account_id, 1)
        self.queue(ContactChangesMessage((self.new_contact_version(member, target),)))
        self.queues.deliver_changes(target or member, 10)
        self.backend.sandbox.kill_after_writes = None

    # --- issue 10, 2.1: what a member leaving its account must take on its way out --------------------------------

    @precondition(lambda self: self.SWITCHES.LEAVERS and not self.poll_waits)
    @rule(
        account=st.integers(0, ACCOUNTS - 1),
        versions=st.integers(0, 25),
        field=st.sampled_from(SYNCED),
        edits=st.lists(VALUES, max_size=3),
    )
    def changes_accepted_in_a_burst(self, account: int, versions: int, field: str, edits: list[object]) -> None:
        """A busy account: many versions (more than the 20 the account item used to keep for leavers), then edits
        of one field, all accepted one after the other, while the segments of each wait behind them all."""
        account_id = self.account_ids()[account]
        if account_id not in self.live_accounts() or self.queues.pending_in(account_id):
            return
        for n in range(versions):
            self.queue(AccountChangeMessage(self.new_account_version(account_id, {"Name": f"v{self.clock}.{n}"})))
        members = [c for c in self.live_contacts() if self.sf_contacts[c]["account"] == account_id]
        for value in edits if members else []:
            self.tick()
            self.request_edit(members[0], field, value, f"k{next(self.edit_keys)}")
        accepted = self.queues.pending_in(account_id)
        while accepted > 0:  # one invocation per 10 of them: what they plan is queued behind them, not delivered
            self.queues.deliver_once(account_id, min(10, accepted))
            accepted -= 10

    @precondition(lambda self: self.SWITCHES.LEAVERS and not self.poll_waits)
    @rule(account=st.integers(0, ACCOUNTS - 1), member=st.integers(0, 30), away=st.integers(-1, ACCOUNTS - 1))
    def member_leaves_while_its_account_waits(self, account: int, member: int, away: int) -> None:
        """A member moves to another account (in that account's group) or to none (its own group) while changes of
        its account still wait in segments: it must take them on its way out."""
        account_id = self.account_ids()[account]
        target = self.account_ids()[away] if away >= 0 else None
        members = [c for c in self.live_contacts() if self.sf_contacts[c]["account"] == account_id]
        if not members or target == account_id or (target is not None and target not in self.live_accounts()):
            return
        contact_id = members[member % len(members)]
        self.queue(ContactChangesMessage((self.new_contact_version(contact_id, target),)))
        self.queues.deliver_changes(target or contact_id, 10)

    @precondition(lambda self: self.SWITCHES.LEAVERS and not self.poll_waits)
    @rule(
        account=st.integers(0, ACCOUNTS - 1),
        changes=st.dictionaries(st.sampled_from(SYNCED), VALUES, min_size=1, max_size=3),
        edit=st.booleans(),
        away=st.integers(-1, ACCOUNTS - 1),
    )
    def change_accepted_while_a_member_leaves(self, account: int, changes: dict, edit: bool, away: int) -> None:
        """Two message groups at once: a member's move (in its new account's group, or its own) reads its old
        account to take what it is owed, and right then the old account's group accepts a version (or an edit),
        before the move writes the leave."""
        idle = self._idle_account_and_target(account, away)
        if idle is None:
            return
        account_id, target, member = idle
        if not self._queue_account_change(account_id, member, changes, edit):
            return
        self.queue(ContactChangesMessage((self.new_contact_version(member, target),)))

        def the_account_accepts_its_change(read: str) -> None:
            if read != account_id:
                self.backend.sandbox.after_account_read = the_account_accepts_its_change
                return
            self.changes_in_a_leavers_window += 1
            sandbox = self.backend.sandbox
            faults = sandbox.kill_after_writes, sandbox.throttle_write
            sandbox.kill_after_writes = sandbox.throttle_write = None  # the other invocation's own faults: none
            self.queues.deliver_alongside(account_id, 1)
            sandbox.kill_after_writes, sandbox.throttle_write = faults
            self.services.begin_batch()  # the move's invocation goes on with a batch cache of its own

        self.backend.sandbox.after_account_read = the_account_accepts_its_change
        self.queues.deliver_changes(target or member, 10)
        self.backend.sandbox.after_account_read = None

    # --- issue 11, item 5: two invocations at once, at store-write granularity -----------------------------------

    @rule(
        group=st.integers(0, 30),
        batch_size=st.integers(1, 10),
        writes=st.integers(0, 2),
        meanwhile=st.sampled_from(MEANWHILE),
        other=st.integers(0, 30),
        field=st.sampled_from(SYNCED),
        value=VALUES,
    )
    def two_invocations_at_once(
        self, group: int, batch_size: int, writes: int, meanwhile: str, other: int, field: str, value: object
    ) -> None:
        """Two invocations at the same moment: each message group runs beside the others (an account's segments,
        its own group, a contact's move, an edit). The first runs until just before its store write number
        `writes + 1` (a contact's write, or the account's: the reads that write is conditioned on are done), then
        `meanwhile` runs whole (`MEANWHILE`), then the first goes on."""
        groups = self.queues.busy_groups()
        if groups:
            self._paused_meanwhile(groups[group % len(groups)], batch_size, writes, meanwhile, other, field, value)

    @rule(
        account=st.integers(0, ACCOUNTS - 1),
        edit=st.booleans(),
        field=st.sampled_from(SYNCED),
        first=VALUES,
        index=st.integers(0, 3),
        writes=st.integers(0, 2),
        meanwhile=st.sampled_from(MEANWHILE[1:]),
        value=VALUES,
    )
    def a_segment_paused_while_its_account_changes(
        self,
        account: int,
        edit: bool,
        field: str,
        first: object,
        index: int,
        writes: int,
        meanwhile: str,
        value: object,
    ) -> None:
        """The side-by-side writes of issue 11, item 5, drawn directly (`two_invocations_at_once` finds an account's
        segments waiting in few examples): a change of an idle account (an edit of `field`, or a version) is
        accepted and planned in segments; one of them runs until just before its store write number `writes + 1`;
        meanwhile the account's other groups run until empty, after a change was accepted there (`MEANWHILE`);
        then the segment goes on."""
        account_id = self.account_ids()[account]
        members = [c for c in self.live_contacts() if self.sf_contacts[c]["account"] == account_id]
        if account_id not in self.live_accounts() or not members or self.queues.pending_in(account_id):
            return
        if not self.group_free(members[0], account_id) or not self._queue_account_change(
            account_id, members[0], {field: first}, edit
        ):
            return
        self.queues.deliver_changes(account_id, 10)  # accepted, and planned if the account is large
        segments = _segments([g for g in self.queues.busy_groups() if g.startswith(f"{account_id}#")])
        if segments:
            self._paused_meanwhile(segments[index % len(segments)], 10, writes, meanwhile, 0, field, value)

    def _paused_meanwhile(
        self, first: str, batch_size: int, writes: int, meanwhile: str, other: int, field: str, value: object
    ) -> None:
        """`first`'s invocation paused just before its store write number `writes + 1`, `meanwhile` run whole
        (`_meanwhile`), then the first goes on. What the first's store accepted before the pause, the reference
        takes before what ran meanwhile (`_tell_in_flight`)."""
        sandbox, resumed = self.backend.sandbox, list[int]()

        def pause(write: str) -> None:
            OVERLAPS[f"paused before {write}"] += 1
            self._tell_in_flight()
            faults = sandbox.kill_after_writes, sandbox.throttle_write
            sandbox.kill_after_writes = sandbox.throttle_write = None  # armed for the paused invocation
            with self.services.alongside():
                self._meanwhile(first, meanwhile, other, field, value)
            sandbox.kill_after_writes, sandbox.throttle_write = faults
            resumed.append(sandbox.refused)

        sandbox.pause_before_write, sandbox.meanwhile = sandbox.writes + writes, pause
        try:
            self.queues.deliver_once(first, batch_size)
        finally:
            sandbox.pause_before_write = sandbox.meanwhile = None
            if resumed:
                OVERLAPS["contact writes refused after the pause"] += sandbox.refused - resumed[0]

    def _meanwhile(self, paused: str, meanwhile: str, other: int, field: str, value: object) -> None:
        """What runs while the group `paused` waits (`MEANWHILE`). A change of the account is accepted only where a
        change may overtake segments (`CHANGE_OVERTAKES_SEGMENTS`); an edit is of the field the paused change
        writes when it is an edit's (the writes its revision condition keeps apart), else of `field`."""
        if meanwhile == "another group":
            others = [g for g in self.queues.busy_groups() if g != paused]  # a group runs one batch at a time
            if others:
                self.queues.deliver_alongside(others[other % len(others)], 10)
            return
        account_id = paused.split("#")[0]
        members = [c for c in self.live_contacts() if self.sf_contacts[c]["account"] == account_id]
        may_accept = self.SWITCHES.CHANGE_OVERTAKES_SEGMENTS and account_id in self.live_accounts() and members
        if meanwhile != "its account's groups" and may_accept:
            edit = meanwhile == "an edit of its field"
            _, current = self.queues.in_flight()
            segment = parse_change_message(current.body) if current is not None else None
            if edit and isinstance(segment, ChangeSegmentMessage) and segment.change.edit is not None:
                field = segment.change.edit.field
            if self._queue_account_change(account_id, members[0], {field: value}, edit):
                OVERLAPS[f"{meanwhile} accepted meanwhile"] += 1
        for _ in range(200):  # a message that keeps failing goes to the dead-letter queue after 35 receives
            busy = [g for g in self.queues.busy_groups() if g != paused and g.split("#")[0] == account_id]
            if not busy:
                return
            self.queues.deliver_alongside(busy[0], 10)
        raise AssertionError(f"the groups of {account_id} not drained beside {paused}: a message loops")

    def _tell_in_flight(self) -> None:
        """The paused invocation's messages done so far, in order, and what the store accepted of the one it is
        in the middle of: the reference takes them before what runs meanwhile (it ignores their second telling at
        the invocation's end, as it ignores any redelivery)."""
        done, current = self.queues.in_flight()
        for entry in done:
            self._applied(entry)
        if current is not None:
            self._tell_what_the_store_accepted(current)

    def _failed(self, entry: Entry) -> None:
        """A try that failed may have been accepted before it failed (the change's decision and plan are stored):
        the reference model takes it from that moment, not from the retry's (it ignores the retry's second
        telling, as it ignores any redelivery)."""
        self._tell_what_the_store_accepted(entry)

    def _tell_what_the_store_accepted(self, entry: Entry) -> None:
        """The reference takes what the store already accepted of a message still in flight (a try that failed,
        or one paused while another invocation runs): from the moment of its acceptance, not of its end."""
        tag = entry.tag
        if isinstance(tag, AccountChangeMessage):
            stored = self.backend.accounts.get(tag.version.account_id)
            accepted = stored is not None and stored.system_modstamp == tag.version.system_modstamp
        elif isinstance(tag, LocalEditMessage):
            stored = self.backend.accounts.get(tag.edit.account_id)
            mark = stored.local_edits.get(tag.edit.field) if stored is not None else None
            # The mark is the edit, or one applied after it in its group (a later edit of the try: FIFO order).
            accepted = mark is not None and (mark.is_edit(tag.edit) or mark.supersedes(tag.edit))
        elif isinstance(tag, ContactChangesMessage):
            # Each version lands on its own (one conditional write each): those that landed before the try failed
            # are told now, in the message's order, the others at the retry. Told as one message at the retry, a
            # leave that landed before a change of its old account was accepted looked to the reference as if it
            # came after it (found by make chaos, 2026-12-05, seed 20261208: the leaver was owed the change).
            contacts = [self.backend.contacts.contact(v.contact_id) for v in tag.versions]
            landed = tuple(
                v
                for c, v in zip(contacts, tag.versions, strict=True)
                if c is not None and c.contact_modstamp is not None and c.contact_modstamp >= v.system_modstamp
            )
            if landed and len(landed) < len(tag.versions):
                self._applied(replace(entry, tag=ContactChangesMessage(landed, tag.path)))
            accepted = len(landed) == len(tag.versions)
        else:
            return
        if accepted:
            self._applied(entry)

    def _segment_queued(self, message: ChangeSegmentMessage) -> None:
        """Rule 2.2: once a change's plan is recorded, no delivery of it queues another (a delivery that died while
        queueing, before recording, leaves no plan: the next one queues a whole new one). The store is read as the
        segment is queued, before this delivery records its own plan."""
        recorded = self._recorded_plan(message.change)
        if recorded is not None and recorded != message.plan_id:  # told at the quiet point (raised here, the
            # consumer would take it for the message's own failure)
            key = _change_key(message.change)
            self.second_plans.append(f"{key}: plan {message.plan_id} queued after {recorded} was recorded")
        self.queues.send_change(message.to_body(), message.group_id, message.deduplication_id)

    def _recorded_plan(self, change: AccountChange) -> str | None:
        stored = self.backend.accounts.get(change.account_id)
        if stored is None:
            return None
        if change.edit is None:
            current = stored.system_modstamp == change.stamp and stored.segments_total is not None
            return stored.segments_plan if current else None
        mark = stored.local_edits.get(change.edit.field)
        return mark.plan_id if mark is not None and mark.is_edit(change.edit) else None

    def check_decided_once(self) -> list[str]:
        """Rule 2.2: no change is both logged and suppressed (a redelivery that decided again could flip it), and no
        change queued a second plan once one was recorded."""
        # A change is its origin, stamp and edit id: two edits made in the same millisecond are two changes, each
        # decided on its own (found by make chaos, seed 1851003670, 2026-12-05: keyed without the id, an edit
        # suppressed at 4 members and the next one logged after a member left looked like one change decided twice).
        logged = self.backend.logged_changes(sorted(self.reference.contacts))
        suppressed = self.backend.suppressed_changes(self.account_ids())
        both = sorted(logged & suppressed)
        problems = [f"changes both logged and suppressed: {both}"] if both else []
        return problems + [f"a second set of segments: {plan}" for plan in self.second_plans]

    # --- the quiet point ----------------------------------------------------------------------------------------

    @rule()
    def quiet_point(self) -> None:
        self.queues.drain()
        try:
            self.check()
        finally:
            self.backend.catch_up()
            self.lag_next = False

    def check(self) -> None:
        problems: list[str] = []
        dead_letters = [e for e in self.queues.change_dlq if e.tag is not POISON]
        if dead_letters:
            problems.append(f"healthy messages dead-lettered: {[e.body[:80] for e in dead_letters]}")
        if self.queues.activity_dlq:
            problems.append(f"activity batches dead-lettered: {len(self.queues.activity_dlq)}")
        missing_poison = self.poison_ids - {e.message_id for e in self.queues.change_dlq}
        if missing_poison:
            problems.append(f"poison messages not dead-lettered: {sorted(missing_poison)}")
        for contact_id in sorted(self.reference.contacts):
            expected = self.reference.expected_contact_fields(contact_id)
            view = self.backend.contact_view(contact_id)
            ref = self.reference.contacts[contact_id]
            if expected is None:
                if ref.deleted and (view is None or not view.is_deleted):
                    problems.append(f"{contact_id}: deleted in Salesforce, not in the store")
                continue
            fields, account_deleted = expected
            if view is None or view.account_id != ref.account_id:
                problems.append(f"{contact_id}: account {view and view.account_id}, expected {ref.account_id}")
                continue
            got = {name: view.fields.get(name) for name in SYNCED}
            if got != fields or view.account_deleted != account_deleted:
                problems.append(
                    f"{contact_id} of {ref.account_id}: fields {got} deleted={view.account_deleted}, "
                    f"expected {fields} deleted={account_deleted}"
                )
        contact_ids = sorted(self.reference.contacts)
        actual = Counter(self.backend.activities(contact_ids))
        if not self.SWITCHES.MOVES_LOGGED:
            actual = Counter({a: n for a, n in actual.items() if a.origin != "contact"})
        expected_activities = self.reference.expected.activities
        missing = expected_activities - actual
        extra = actual - expected_activities
        if missing:
            problems.append(f"activities lost: {sorted(missing.elements(), key=repr)}")
        if extra:
            problems.append(f"activities not owed: {sorted(extra.elements(), key=repr)}")
        got_suppressions = {(s.account_id, s.origin, s.stamp) for s in self.backend.suppressions(self.account_ids())}
        want_suppressions = {(s.account_id, s.origin, s.stamp) for s in self.reference.expected.suppressions}
        if got_suppressions != want_suppressions:
            problems.append(
                f"suppression records: missing {sorted(want_suppressions - got_suppressions)}, "
                f"not owed {sorted(got_suppressions - want_suppressions)}"
            )
        problems.extend(self.check_decided_once())
        assert not problems, "divergence from the reference model:\n  " + "\n  ".join(problems)

    def teardown(self) -> None:
        self.backend.close()


def _segments(groups: list[str]) -> list[str]:
    """The groups of segments among `groups` (`<account>#<plan>#<index>`)."""
    return [group for group in groups if "#" in group]


def _change_key(change: AccountChange) -> tuple[str, str, str, str | None]:
    """(account, origin, stamp, change id): one version, or one edit."""
    ref = change.ref
    return change.account_id, ref.origin.value, ref.stamp, ref.change_id


class PushMachine(PushEvents, FanOutMachine):
    """The machine with the push path's rules (`PUSH_EVENTS`, tests/model/push.py). A class of its own: the other
    families draw exactly the rules, hence the examples, they drew before it."""
