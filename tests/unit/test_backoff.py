"""Retries back off exponentially with full jitter: each wait is drawn from [0, base x 2^attempt], capped.

Growing waits give a throttled table or queue time to recover; the jitter keeps many invocations that were
throttled together from retrying together.
"""

from __future__ import annotations

import pytest
from account_sync.adapters.dynamodb import DynamoActivityStore
from account_sync.domain.records import ChangeDataValueActivity, ChangeOrigin
from account_sync.ports import TransientError

from tests.unit.factories import account_id, contact_id, stamp

ACTIVITY = ChangeDataValueActivity(
    contact_id(1), account_id(1), "Industry", "A", "B", ChangeOrigin.ACCOUNT, stamp(1), "2026-11-27T12:00:00.000Z"
)


class NothingProcessed:
    """BatchWriteItem under sustained throttling: every item comes back unprocessed."""

    def batch_write_item(self, RequestItems: dict) -> dict:
        return {"UnprocessedItems": RequestItems}


def test_the_activity_store_waits_longer_before_each_attempt_with_jitter():
    # given a table that processes nothing, written to 300 times
    waits: list[list[float]] = []
    for _ in range(300):
        sleeps: list[float] = []
        store = DynamoActivityStore(max_attempts=6, base_delay=0.05, sleep=sleeps.append, client=NothingProcessed())
        with pytest.raises(TransientError, match="unprocessed after 6 attempts"):
            store.put_activities([ACTIVITY])
        waits.append(sleeps)
    # then there were five waits between the six attempts, each within its doubling bound, and spread within it
    assert {len(sleeps) for sleeps in waits} == {5}
    for attempt in range(5):
        bound = 0.05 * 2**attempt
        drawn = [sleeps[attempt] for sleeps in waits]
        assert all(0 <= wait <= bound for wait in drawn)
        assert min(drawn) < bound / 4 and max(drawn) > bound * 3 / 4
