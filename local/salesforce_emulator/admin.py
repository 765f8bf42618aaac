"""Admin routes under ``/_emulator/``: what a person or a script driving the local stack from outside can switch
(the in-process methods of ``SalesforceEmulator`` do the same for tests). Not Salesforce's API: no token, no API
call counted, no ``Sforce-Limit-Info``; the emulator listens on 127.0.0.1 unless told otherwise.

``POST /_emulator/faults/late-commit`` ``{"sobject": "Account", "id": "001...", "values": {...},
"seconds_ago": 900}``: a transaction that commits now, stamped ``seconds_ago`` in the past (204).
``POST /_emulator/faults/bulk-job-failure`` ``{"message": "..."}``: the next Bulk API query job fails (204).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import SalesforceApiError, not_found

if TYPE_CHECKING:
    from .bulk import BulkQueries
    from .clock import Clock
    from .schema import Schema
    from .store import Store

MAX_LATE_SECONDS = 30 * 86_400


class Admin:
    def __init__(self, store: Store, schema: Schema, clock: Clock, bulk: BulkQueries):
        self._store = store
        self._schema = schema
        self._clock = clock
        self._bulk = bulk

    def handle(self, method: str, segments: list[str], body: bytes) -> tuple[int, Any]:
        if method != "POST":
            raise SalesforceApiError(405, "METHOD_NOT_ALLOWED", "Admin routes take POST")
        data = _object(body)
        if segments == ["faults", "late-commit"]:
            return self._late_commit(data)
        if segments == ["faults", "bulk-job-failure"]:
            message = data.get("message") or "Query failed: an internal error occurred"
            self._bulk.fail_next_job(str(message))
            return 204, None
        raise not_found()

    def _late_commit(self, data: dict[str, Any]) -> tuple[int, Any]:
        sobject = self._schema.find(str(data.get("sobject", "")))
        if sobject is None:
            raise SalesforceApiError(400, "INVALID_TYPE", f"unknown object {data.get('sobject')!r}")
        record_id, values, seconds = data.get("id"), data.get("values", {}), data.get("seconds_ago", 120)
        if not isinstance(record_id, str) or not isinstance(values, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "id (a string) and values (an object) are required")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_LATE_SECONDS:
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "seconds_ago must be a number of seconds, 0 to 30 days")
        stamp = self._clock.now() - timedelta(seconds=seconds)
        self._store.update(sobject, record_id, values, stamp=stamp)
        return 204, None


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
    return data
