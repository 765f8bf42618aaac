"""Logging: turn a batch of per-contact field changes into Change Data Value activities (SPEC R6)."""

from __future__ import annotations

from collections.abc import Callable

from account_sync.contracts import ActivityBatchMessage
from account_sync.domain.fields import value_as_text
from account_sync.domain.records import ChangeDataValueActivity
from account_sync.ports import ActivityStore


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
        )
        for change in batch.changes
    ]


def write_activities(batch: ActivityBatchMessage, store: ActivityStore, now: Callable[[], str]) -> int:
    """Idempotent: the keys are deterministic, so a redelivered batch rewrites the same activities."""
    return store.put_activities(activities_of(batch, now()))
