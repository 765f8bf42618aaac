"""The emulator's server clock: every SystemModstamp comes from here.

Unfrozen, ``stamp()`` follows wall time at millisecond precision and never hands out the same value
twice (so records never share a stamp by accident). A test can freeze it (several records then share
one stamp, as they do in a real org under load) and move it forward; the clock never goes back on its
own, and unfreezing continues from the frozen instant.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

_MS = timedelta(milliseconds=1)


def _wall() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Clock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen: datetime | None = None
        self._last: datetime | None = None

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def now(self) -> datetime:
        """The current server time (does not consume a stamp)."""
        with self._lock:
            return self._current()

    def stamp(self) -> datetime:
        """A modification stamp: strictly increasing milliseconds unless the clock is frozen."""
        with self._lock:
            current = self._current()
            if self._frozen is None and self._last is not None and current <= self._last:
                current = self._last + _MS
            self._last = current if self._last is None else max(self._last, current)
            return current

    def freeze_at(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("freeze_at needs an aware datetime (UTC)")
        with self._lock:
            when = when.astimezone(UTC)
            self._frozen = when.replace(microsecond=when.microsecond // 1000 * 1000)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the server clock only moves forward")
        with self._lock:
            step = timedelta(seconds=seconds)
            if self._frozen is not None:
                self._frozen += step
            else:
                self._offset += step

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - _wall()
                self._frozen = None

    def _current(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return _wall() + self._offset
