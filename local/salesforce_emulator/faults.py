"""Fault switches: what a test turns on to make the emulator misbehave like Salesforce sometimes does."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from .errors import SalesforceApiError

if TYPE_CHECKING:
    from .auth import Auth
    from .cursors import Cursors

_DEFAULT_ERRORS = {
    406: ("NOT_ACCEPTABLE", "The content type for the resource isn't one of the accepted types."),
    420: ("EDGE_ROUTING_UNAVAILABLE", "Salesforce Edge doesn't have routing information for the request host."),
    429: ("TOO_MANY_REQUESTS", "Too many requests, slow down."),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support."),
    502: ("SERVER_UNAVAILABLE", "Bad gateway."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable."),
    504: ("SERVER_UNAVAILABLE", "Gateway timeout."),
}


class ApiUsage:
    """The org's daily API request allocation, as ``Sforce-Limit-Info`` reports it."""

    def __init__(self, limit: int):
        self._lock = threading.Lock()
        self.limit = limit
        self.used = 0

    def consume(self) -> bool:
        """Count one API call; False (nothing counted) once the allocation is spent."""
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def set(self, used: int) -> None:
        with self._lock:
            self.used = max(0, used)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.used, self.limit

    def header(self) -> str:
        used, limit = self.snapshot()
        return f"api-usage={used}/{limit}"


class Faults:
    def __init__(self, usage: ApiUsage, auth: Auth, cursors: Cursors):
        self._lock = threading.Lock()
        self._usage = usage
        self._auth = auth
        self._cursors = cursors
        self.latency_ms = 0
        self._failures: deque[SalesforceApiError] = deque()
        self._drops = 0
        self._query_timeouts = 0

    # ----- switches ------------------------------------------------------------------------------
    def fail_next(
        self, count: int = 1, status: int = 503, error_code: str | None = None, message: str | None = None
    ) -> None:
        """The next ``count`` API requests (``/services/data``) answer ``status`` with an error body."""
        default_code, default_message = _DEFAULT_ERRORS.get(status, ("UNKNOWN_EXCEPTION", "Request failed."))
        error = SalesforceApiError(status, error_code or default_code, message or default_message)
        with self._lock:
            self._failures.extend([error] * count)

    def drop_next_connections(self, count: int = 1) -> None:
        """The next ``count`` requests (any path) are read, then the socket is closed unanswered."""
        with self._lock:
            self._drops += count

    def expire_sessions(self) -> None:
        """Every access token issued so far answers 401 INVALID_SESSION_ID from now on."""
        self._auth.expire_all()

    def exhaust_daily_limit(self) -> None:
        self._usage.set(self._usage.limit)

    def set_api_usage(self, used: int) -> None:
        self._usage.set(used)

    def query_timeout_next(self, count: int = 1) -> None:
        """The next ``count`` queries answer 400 QUERY_TIMEOUT."""
        with self._lock:
            self._query_timeouts += count

    def invalidate_query_locators(self) -> None:
        """Every open cursor answers 400 INVALID_QUERY_LOCATOR from now on."""
        self._cursors.invalidate_all()

    def reset(self) -> None:
        """Turn off the pending switches (latency, failures, drops, timeouts); usage and sessions stay."""
        with self._lock:
            self.latency_ms = 0
            self._failures.clear()
            self._drops = 0
            self._query_timeouts = 0

    # ----- consumed by the server ----------------------------------------------------------------
    def take_failure(self) -> SalesforceApiError | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def take_drop(self) -> bool:
        with self._lock:
            if self._drops:
                self._drops -= 1
                return True
            return False

    def take_query_timeout(self) -> bool:
        with self._lock:
            if self._query_timeouts:
                self._query_timeouts -= 1
                return True
            return False
