"""A simulated queue world: the account-changes FIFO queue, the activity queue and their dead-letter queues, with
what SQS and Lambda's event source mapping really allow (PRODUCTION.md):

- FIFO: one batch per message group at a time, in group order; a failed message and the messages of its group
  after it in the batch come back at the head of the group (the real `partial_batch_response` decides which);
  every receive counts, and a message received `MAX_RECEIVES` times (the template's 35) goes to the dead-letter queue.
- A poison message is set aside in the dead-letter queue by the consumer itself, as the fan-out's handler does it
  (`queue_records.PoisonPolicy` with this world's dead-letter queue as its sink, the receive count in each record's
  `ApproximateReceiveCount`), so that it fails alone.
- Deduplication: a message whose deduplication id was sent less than 5 minutes ago (simulated time) is dropped.
- At least once: a batch whose deletion failed comes back at the head of its group (only the group's last batch,
  as nothing after it may have run); the activity queue (standard) delivers in any order, duplicates too.
- A Lambda killed (`SandboxKilled`, not an Exception: no `except` of the code sees it) hands its whole batch back.
- Two invocations at once (`deliver_alongside`): while one is paused in the middle of its batch, another group's
  runs whole; the paused one's messages still count as waiting (`waiting_in`) until it goes on and finishes.

Messages are routed by what they are, not by their class: anything published on the change queue goes back to the
fan-out in its group; every activity batch to the logging step. Messages sent by the fetch and the API carry a
`tag` (the message itself), which the reference model is told about once the fan-out applied it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from account_sync.queue_records import PoisonPolicy, QueueRecord, partial_batch_response

from tests.integration.guarantees.faults import SandboxKilled

DEDUP_WINDOW_MS = 5 * 60 * 1000
MAX_RECEIVES = 35  # the template's maxReceiveCount on AccountChangesQueue and the activity queue (an hour)


@dataclass
class Entry:
    message_id: str
    body: str
    group: str | None
    tag: object | None = None
    receives: int = 0


@dataclass
class QueueStats:
    delivered: int = 0
    failed_receives: int = 0
    kills: int = 0
    deduplicated: int = 0


@dataclass
class QueueWorld:
    clock_ms: Callable[[], int]
    apply_change: Callable[[str], object]  # parses and applies one change body (raises on failure)
    apply_activity: Callable[[str], object]
    on_applied: Callable[[Entry], None]
    revive: Callable[[], None]  # after a kill: a new execution environment
    begin_batch: Callable[[], None] = lambda: None  # what the fan-out's handler does first in each invocation
    # Told of each message of a failed try as it goes back to its group (or to the dead-letter queue): the store
    # may already hold what the try accepted before it failed (issue 10, 2.2).
    on_failed: Callable[[Entry], None] = lambda entry: None
    # Told of each message as the fan-out is handed it, with the messages of its batch after it (not yet applied).
    before_apply: Callable[[Entry, list[Entry]], None] = lambda entry, later: None
    groups: dict[str, list[Entry]] = field(default_factory=dict)
    activities: list[Entry] = field(default_factory=list)
    change_dlq: list[Entry] = field(default_factory=list)
    activity_dlq: list[Entry] = field(default_factory=list)
    last_batch: dict[str, list[Entry]] = field(default_factory=dict)
    sent_dedup: dict[str, int] = field(default_factory=dict)
    stats: QueueStats = field(default_factory=QueueStats)
    _in_flight: dict[str, Entry] = field(default_factory=dict)
    # The invocation in flight: the messages it applied so far, and the one it is applying.
    _applied: list[Entry] = field(default_factory=list)
    _current: Entry | None = None
    # The batches of invocations paused while another runs (`deliver_alongside`), the innermost last.
    _paused: list[dict[str, Entry]] = field(default_factory=list)
    _ids: int = 0

    # --- sending --------------------------------------------------------------------------------------------

    def _next_id(self) -> str:
        self._ids += 1
        return f"m{self._ids}"

    def send_change(self, body: str, group: str, dedup_id: str, tag: object | None = None) -> bool:
        now = self.clock_ms()
        sent = self.sent_dedup.get(dedup_id)
        if sent is not None and now - sent < DEDUP_WINDOW_MS:
            self.stats.deduplicated += 1
            return False
        self.sent_dedup[dedup_id] = now
        self.groups.setdefault(group, []).append(Entry(self._next_id(), body, group, tag))
        return True

    def send_activity(self, body: str) -> None:
        self.activities.append(Entry(self._next_id(), body, None))

    # --- what is waiting -----------------------------------------------------------------------------------

    def busy_groups(self) -> list[str]:
        return sorted(group for group, entries in self.groups.items() if entries)

    def quiet(self) -> bool:
        return not self.busy_groups() and not self.activities

    def pending_in(self, group: str) -> int:
        """What waits in `group`, and, for an account's group, in its segments' groups (`<account>#<plan>#<index>`:
        they run side by side, but they are the account's work still to do)."""
        return sum(len(entries) for name, entries in self.groups.items() if name == group or _of(name, group))

    def waiting_in(self, group: str) -> list[Entry]:
        """The entries `pending_in` counts, and those of a paused invocation's batch (not done until it goes on)."""
        queued = [entry for name, entries in self.groups.items() for entry in entries]
        paused = [entry for batch in self._paused for entry in batch.values()]
        return [entry for entry in [*queued, *paused] if entry.group == group or _of(entry.group or "", group)]

    def in_flight(self) -> tuple[list[Entry], Entry | None]:
        """The invocation in flight: the messages it applied so far (in order), and the one it is applying."""
        return list(self._applied), self._current

    def deliver_alongside(self, group: str, batch_size: int) -> None:
        """Another invocation, with up to `batch_size` messages of `group`, run whole while the one in flight waits
        (between two of its store writes: a real consumer runs groups side by side); the one in flight then goes on
        as it was."""
        paused = self._in_flight, self._applied, self._current
        self._paused.append(self._in_flight)
        try:
            self._deliver_once(group, batch_size)
        finally:
            self._paused.pop()
            self._in_flight, self._applied, self._current = paused

    # --- delivering ----------------------------------------------------------------------------------------

    def deliver_changes(self, group: str, batch_size: int) -> None:
        """One invocation of the fan-out with up to `batch_size` messages of `group`, as Lambda would; a message
        that failed is received again at once, before any other group runs (`deliver_once` lets others run
        between a failed try and its retry)."""
        while self._deliver_once(group, batch_size):
            pass

    def deliver_once(self, group: str, batch_size: int) -> None:
        """One invocation of the fan-out, as Lambda makes it: what failed goes back to the head of its group, and is
        received again only once its visibility timeout passed, after whatever other groups (and new messages of
        the API and the fetch) the machine runs meanwhile."""
        self._deliver_once(group, batch_size)

    def set_aside(self, record: QueueRecord, failure: str, reason: str) -> None:
        """The poison policy's sink (`queue_records.DeadLetters`): the message leaves its group for the DLQ."""
        self.change_dlq.append(self._in_flight[record.message_id])

    def _deliver_once(self, group: str, batch_size: int) -> bool:
        """True when messages came back to the head of the group (not to the dead-letter queue)."""
        queue = self.groups.get(group) or []
        batch = queue[:batch_size]
        if not batch:
            return False
        del queue[: len(batch)]
        for entry in batch:
            entry.receives += 1
        applied: list[Entry] = []
        self._in_flight, self._applied, self._current = {entry.message_id: entry for entry in batch}, applied, None
        self.begin_batch()

        def handle(record: Any) -> None:
            index = next(i for i, e in enumerate(batch) if e.message_id == record.message_id)
            entry = batch[index]
            self.before_apply(entry, batch[index + 1 :])
            self._current = entry
            self.apply_change(record.body)
            self._current = None
            applied.append(entry)

        try:
            response = partial_batch_response(
                _event(batch), handle, fifo=True, poison=PoisonPolicy(self, max_receive_count=MAX_RECEIVES)
            )
        except SandboxKilled:
            # Lambda's timeout: the whole batch comes back, what was applied before the kill included. What the
            # fan-out finished before the kill is in the store whole: the reference model takes it now, in order
            # (a later message of the batch may supersede it, and its redelivery then changes nothing).
            self.stats.kills += 1
            self.revive()
            for entry in applied:
                self.on_applied(entry)
            return self._hand_back(group, batch)
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for entry in applied:
            if entry.message_id not in failed:
                self.stats.delivered += 1
                self.on_applied(entry)
        self.last_batch[group] = [e for e in batch if e.message_id not in failed]
        return self._hand_back(group, [e for e in batch if e.message_id in failed])

    def _hand_back(self, group: str, entries: list[Entry]) -> bool:
        back = []
        for entry in entries:
            self.stats.failed_receives += 1
            self.on_failed(entry)
            if entry.receives >= MAX_RECEIVES:
                self.change_dlq.append(entry)
            else:
                back.append(entry)
        self.groups[group] = back + self.groups.get(group, [])
        return bool(back)

    def redeliver_last_batch(self, group: str) -> bool:
        """The batch's deletion failed: SQS hands it out again, before anything after it in the group."""
        batch = self.last_batch.pop(group, None)
        if not batch:
            return False
        self.groups[group] = list(batch) + self.groups.get(group, [])
        return True

    def deliver_activities(self, indexes: list[int], duplicate: bool = False) -> None:
        """The logging function with the activity messages at `indexes` (a standard queue: any order)."""
        picked = sorted({i % len(self.activities) for i in indexes}) if self.activities else []
        batch = [self.activities[i] for i in picked]
        if not batch:
            return
        if not duplicate:
            self.activities = [e for i, e in enumerate(self.activities) if i not in picked]
        for entry in batch:
            entry.receives += 1

        def handle(record: Any) -> None:
            self.apply_activity(record.body)

        try:
            response = partial_batch_response(_event(batch), handle, fifo=False)
        except SandboxKilled:
            self.revive()
            failed = {e.message_id for e in batch}
        else:
            failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for entry in batch:
            if entry.message_id in failed and not duplicate:
                if entry.receives >= MAX_RECEIVES:
                    self.activity_dlq.append(entry)
                else:
                    self.activities.append(entry)

    def drain(self, max_invocations: int = 2000) -> None:
        """Every queue until empty: a failed message comes back at once (the visibility timeout passes)."""
        for _ in range(max_invocations):
            groups = self.busy_groups()
            if groups:
                for group in groups:
                    self.deliver_changes(group, 10)
                continue
            if self.activities:
                self.deliver_activities(list(range(min(10, len(self.activities)))))
                continue
            return
        raise AssertionError(f"queues not drained after {max_invocations} invocations: a message loops")


def _of(name: str, account_group: str) -> bool:
    """`name` is the group of one of `account_group`'s segments."""
    return name.startswith(f"{account_group}#")


def _event(batch: list[Entry]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": entry.message_id,
                "body": entry.body,
                "attributes": {
                    "ApproximateReceiveCount": str(entry.receives),
                    **({"MessageGroupId": entry.group} if entry.group else {}),
                },
            }
            for entry in batch
        ]
    }
