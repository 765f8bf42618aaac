"""Query cursors (query locators): a result set snapshotted when the query runs, served page by page."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import Clock
from .errors import SalesforceApiError
from .soql import Query
from .values import BASE62, id_suffix

CURSOR_LIFETIME = timedelta(days=2)


@dataclass(frozen=True)
class Cursor:
    id: str
    query: Query
    rows: list[dict]  # references to immutable record dicts: later writes never show through
    batch_size: int
    opened_at: datetime


def invalid_locator() -> SalesforceApiError:
    return SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")


class Cursors:
    """Open cursors, kept two days (server clock) and at most ``max_open`` (the oldest goes first)."""

    def __init__(self, clock: Clock, max_open: int = 1000):
        self._lock = threading.Lock()
        self._clock = clock
        self._max_open = max_open
        self._open: OrderedDict[str, Cursor] = OrderedDict()

    def open(self, query: Query, rows: list[dict], batch_size: int) -> Cursor:
        id15 = "01g" + "".join(secrets.choice(BASE62) for _ in range(12))
        cursor = Cursor(id15 + id_suffix(id15), query, rows, batch_size, self._clock.now())
        with self._lock:
            self._open[cursor.id] = cursor
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        return cursor

    def find(self, locator: str) -> tuple[Cursor, int]:
        """The cursor and the offset named by a locator like ``01gXXXXXXXXXXXXXXX-2000``."""
        cursor_id, _, offset_text = locator.partition("-")
        with self._lock:
            cursor = self._open.get(cursor_id)
        if cursor is None or not offset_text.isdigit() or int(offset_text) > len(cursor.rows):
            raise invalid_locator()
        if self._clock.now() - cursor.opened_at > CURSOR_LIFETIME:
            with self._lock:
                self._open.pop(cursor_id, None)
            raise invalid_locator()
        return cursor, int(offset_text)

    def invalidate_all(self) -> None:
        with self._lock:
            self._open.clear()
