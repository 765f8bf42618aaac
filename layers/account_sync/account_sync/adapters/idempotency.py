"""The marketing API's Idempotency-Keys, remembered in the sync-state table (`idempotency#<edit id>` items).

One conditional PutItem claims a key; a key already claimed is read back (strongly consistent) to compare its
fingerprint. A key is kept a day (`expires_at`, the table's TTL): an item past it is claimed again as new, even
before DynamoDB's TTL has removed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pynamodb.exceptions import PutError

from account_sync.adapters.dynamodb import is_condition_failure, translate
from account_sync.adapters.dynamodb_models import SyncStateItem
from account_sync.services.local_edit import KeyedEdit

KEY_LIFETIME_SECONDS = 24 * 3600


class DynamoIdempotencyKeys:
    def __init__(self, clock: Callable[[], float] = time.time, lifetime: int = KEY_LIFETIME_SECONDS) -> None:
        self._clock = clock
        self._lifetime = lifetime

    def claim(self, keyed: KeyedEdit) -> KeyedEdit:
        now = int(self._clock())
        item = SyncStateItem(
            f"idempotency#{keyed.edit_id}",
            fingerprint=keyed.fingerprint,
            edit_id=keyed.edit_id,
            account_id=keyed.account_id,
            edited_at=keyed.edited_at,
            expires_at=now + self._lifetime,
        )
        try:
            item.save(condition=SyncStateItem.state_id.does_not_exist() | (SyncStateItem.expires_at < now))
        except PutError as exc:
            if not is_condition_failure(exc):
                raise translate(exc) from exc
            kept = SyncStateItem.get(item.state_id, consistent_read=True)
            assert kept.fingerprint and kept.account_id and kept.edited_at
            return KeyedEdit(keyed.edit_id, kept.fingerprint, kept.account_id, kept.edited_at)
        return keyed
