"""Logging: turn a batch of per-contact field changes into Change Data Value activities (SPEC R6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from account_sync.contracts import ActivityBatchMessage
from account_sync.domain.fields import value_as_text
from account_sync.domain.records import ChangeDataValueActivity
from account_sync.ports import ActivityPublisher, ActivityStore, MessagesRejected


def activities_of(batch: ActivityBatchMessage, activity_at: str) -> list[ChangeDataValueActivity]:
    return [
        ChangeDataValueActivity(
            contact_id=change.contact_id,
            account_id=batch.account_id,
            attribute_name=change.field,
            old_value=value_as_text(change.old),
            new_value=value_as_text(change.new),
            origin=batch.origin,
            system_modstamp=batch.system_modstamp,
            activity_at=activity_at,
            change_id=batch.change_id,
            path=batch.path,
        )
        for change in batch.changes
    ]


def write_activities(batch: ActivityBatchMessage, store: ActivityStore, now: Callable[[], str]) -> int:
    """Idempotent: the keys are deterministic, so a redelivered batch rewrites the same activities."""
    return store.put_activities(activities_of(batch, now()))


class ActivityPublisherWithOverflow:
    """Queues Change Data Value batches for the logging function. A change too large for any queue message (a
    long text field changed, whose old and new values together pass the queue's limit) is written to the store
    here instead, with the same deterministic keys: it is neither lost nor retried forever (docs/decisions.md)."""

    def __init__(self, queue: ActivityPublisher, store: ActivityStore, now: Callable[[], str]) -> None:
        self._queue = queue
        self._store = store
        self._now = now

    def publish(self, batches: Sequence[ActivityBatchMessage]) -> None:
        try:
            self._queue.publish(batches)
        except MessagesRejected as exc:
            for rejected in exc.rejected:
                if not isinstance(rejected.message, ActivityBatchMessage):
                    raise
                write_activities(rejected.message, self._store, self._now)
