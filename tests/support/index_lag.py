"""Index lag, injected: DynamoDB's global secondary indexes are eventually consistent (a contact written a moment
ago may be missing from a query on `by_account_keys`), and moto's are not. `LaggingIndex` wraps a contact repository
(the DynamoDB adapter or the in-memory fake) so that its account-index reads do not show the contacts that joined
an account in the last `writes` Contact writes, or in the last `seconds`; its strongly consistent reads
(`contact`) and its writes are the wrapped repository's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from account_sync.domain.records import ContactVersion
from account_sync.ports import AccountJoin, AccountUnchanged, ContactSnapshot


class LaggingIndex:
    def __init__(
        self, contacts: Any, writes: int = 0, seconds: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._contacts = contacts
        self._writes = writes
        self._seconds = seconds
        self._clock = clock
        self._joins: list[tuple[str, float]] = []  # (contact id, when), in the order they joined an account

    def __getattr__(self, name: str) -> Any:
        return getattr(self._contacts, name)

    def _hidden(self) -> set[str]:
        recent = self._joins[-self._writes :] if self._writes else []
        now = self._clock()
        return {cid for cid, _ in recent} | {cid for cid, at in self._joins if now - at < self._seconds}

    def apply_contact_version(
        self,
        version: ContactVersion,
        expected: ContactSnapshot | None,
        join: AccountJoin | None,
        account_unchanged: AccountUnchanged | None = None,
    ) -> bool:
        written = self._contacts.apply_contact_version(version, expected, join, account_unchanged)
        if (
            written
            and version.account_id
            and not version.is_deleted
            and (expected is None or expected.account_id != version.account_id or expected.is_deleted)
        ):
            self._joins.append((version.contact_id, self._clock()))
        return written

    def members(
        self, account_id: str, after: str | None = None, through: str | None = None
    ) -> Iterator[ContactSnapshot]:
        hidden = self._hidden()
        return (c for c in self._contacts.members(account_id, after, through) if c.contact_id not in hidden)

    def count_members(self, account_id: str, limit: int) -> int:
        return min(limit, sum(1 for _ in self.members(account_id)))

    def member_key_pages(self, account_id: str, page_size: int) -> Iterator[tuple[str | None, str]]:
        ids = [c.contact_id for c in self.members(account_id)]
        after = None
        for start in range(0, len(ids), page_size):
            through = ids[start : start + page_size][-1]
            yield after, through
            after = through
