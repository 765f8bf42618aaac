"""Bulk API 2.0 query jobs: ``/services/data/vNN.N/jobs/query[/<id>[/results]]``.

Shapes follow the Bulk API 2.0 Developer Guide (developer.salesforce.com/docs/atlas.en-us.api_asynch): "Create a
Query Job" (``{"operation": "query" | "queryAll", "query": ...}`` answers 200 with the job info, state
``UploadComplete``), "Get Information About a Query Job" (``state`` ``UploadComplete``, ``InProgress``,
``JobComplete``, ``Failed`` with ``errorMessage``, ``Aborted``; ``jobType: V2Query``, ``numberRecordsProcessed``),
"Get Results for a Query Job" (CSV with a header line, LF line endings, every value quoted and null left empty;
``maxRecords`` and ``locator`` parameters; ``Sforce-Locator`` (``null`` on the last page) and
``Sforce-NumberOfRecords`` headers; 412 ``JOB_NOT_COMPLETE`` before ``JobComplete``), "Abort a Query Job"
(PATCH ``{"state": "Aborted"}``), "Delete a Query Job" (204), and "Understanding Bulk API 2.0 Query" (no
aggregate functions such as ``COUNT()``; at most 10,000 query jobs per rolling 24 hours, ``DailyBulkV2QueryJobs``
in ``/limits``). Every request is an API call, counted like the REST API's.

The query runs when the job is created (a snapshot, like a REST cursor). A job reports ``InProgress`` for the
first ``polls_in_progress`` polls (0 unless a test sets it, so that a client's wait between polls costs no test
time), then ``JobComplete``; ``Faults.fail_next_bulk_job`` makes the next job fail.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import SalesforceApiError, not_found
from .soql import parse as parse_soql
from .values import BASE62, format_datetime, id_suffix

if TYPE_CHECKING:
    from .clock import Clock
    from .schema import Field, Schema
    from .store import Store

DAILY_QUERY_JOBS = 10_000
DEFAULT_PAGE_RECORDS = 50_000


@dataclass
class QueryJob:
    id: str
    operation: str
    object: str
    query_text: str
    api_version: str
    created: datetime
    fields: tuple[Field, ...]
    rows: list[dict]
    polls_left: int
    state: str = "UploadComplete"
    error_message: str | None = None
    pages: dict[str, int] = field(default_factory=dict)  # locator -> offset of the page it names

    def info(self, user_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": user_id,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": len(self.rows) if self.state == "JobComplete" else 0,
            "retries": 0,
            "totalProcessingTime": 0,
            "isPkChunkingSupported": True,
        }
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


@dataclass
class CsvPage:
    body: bytes
    records: int
    next_locator: str | None


class BulkQueries:
    """The org's query jobs, and the switches a test turns to make them slow or fail."""

    def __init__(self, store: Store, schema: Schema, clock: Clock, user_id: str):
        self._lock = threading.Lock()
        self._store = store
        self._schema = schema
        self._clock = clock
        self._user_id = user_id
        self._jobs: dict[str, QueryJob] = {}
        self._created_at: list[datetime] = []
        self.polls_in_progress = 0
        self._fail_next: list[str] = []

    # ----- switches ------------------------------------------------------------------------------
    def fail_next_job(self, message: str = "Query failed: an internal error occurred") -> None:
        with self._lock:
            self._fail_next.append(message)

    def delete_all(self) -> None:
        """Every job is gone (deleted by someone, or past its retention): its id answers 404 NOT_FOUND."""
        with self._lock:
            self._jobs.clear()

    def jobs_created(self) -> int:
        with self._lock:
            return len(self._created_at)

    def jobs_today(self) -> int:
        now = self._clock.now()
        with self._lock:
            return sum(1 for created in self._created_at if (now - created).total_seconds() < 86_400)

    # ----- the resource --------------------------------------------------------------------------
    def handle(
        self, method: str, version: str, rest: list[str], params: dict[str, str], data: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, body, headers); body is JSON-serialisable, bytes (CSV), or None."""
        if not rest:
            if method != "POST":
                raise _not_allowed(method, "POST")
            return 200, self._create(version, data), {}
        job = self._job(rest[0])
        if len(rest) == 1:
            if method == "GET":
                return 200, self._poll(job), {}
            if method == "PATCH":
                return 200, self._abort(job, data), {}
            if method == "DELETE":
                with self._lock:
                    self._jobs.pop(job.id, None)
                return 204, None, {}
            raise _not_allowed(method, "GET", "PATCH", "DELETE")
        if len(rest) == 2 and rest[1] == "results":
            if method != "GET":
                raise _not_allowed(method, "GET")
            page = self._results(job, version, params)
            headers = {
                "Content-Type": "text/csv",
                "Sforce-NumberOfRecords": str(page.records),
                "Sforce-Locator": page.next_locator or "null",
            }
            return 200, page.body, headers
        raise not_found()

    def _create(self, version: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        operation = data.get("operation")
        if operation not in ("query", "queryAll"):
            raise SalesforceApiError(400, "INVALIDJOB", f"Invalid operation: {operation!r}; use query or queryAll")
        for option, allowed in (("contentType", "CSV"), ("columnDelimiter", "COMMA"), ("lineEnding", "LF")):
            if data.get(option) not in (None, allowed):
                raise SalesforceApiError(400, "INVALIDJOB", f"The emulator supports {option} {allowed} only")
        text = data.get("query")
        if not isinstance(text, str) or not text.strip():
            raise SalesforceApiError(400, "INVALIDJOB", "A query job needs a query")
        query = parse_soql(text, self._schema.find)  # INVALID_FIELD, MALFORMED_QUERY... at creation
        if query.is_count:
            raise SalesforceApiError(400, "INVALIDJOB", "Aggregate queries (COUNT()) are not supported by Bulk API 2.0")
        if self.jobs_today() >= DAILY_QUERY_JOBS:
            raise SalesforceApiError(
                400, "LIMIT_EXCEEDED", f"Exceeded the limit of {DAILY_QUERY_JOBS} query jobs in 24 hours"
            )
        rows = self._store.rows(query.sobject)
        if operation == "query":
            rows = [row for row in rows if not row["IsDeleted"]]
        id15 = "750" + "".join(secrets.choice(BASE62) for _ in range(12))
        with self._lock:
            failure = self._fail_next.pop(0) if self._fail_next else None
            job = QueryJob(
                id=id15 + id_suffix(id15),
                operation=operation,
                object=query.sobject.name,
                query_text=text,
                api_version=version,
                created=self._clock.now(),
                fields=query.fields,
                rows=query.run(rows),
                polls_left=self.polls_in_progress,
                error_message=failure,
            )
            self._jobs[job.id] = job
            self._created_at.append(job.created)
        return job.info(self._user_id)

    def _job(self, job_id: str) -> QueryJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise not_found()
        return job

    def _poll(self, job: QueryJob) -> dict[str, Any]:
        with self._lock:
            if job.state in ("UploadComplete", "InProgress"):
                if job.polls_left > 0:
                    job.polls_left -= 1
                    job.state = "InProgress"
                else:
                    job.state = "Failed" if job.error_message else "JobComplete"
        return job.info(self._user_id)

    def _abort(self, job: QueryJob, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or data.get("state") != "Aborted":
            raise SalesforceApiError(400, "INVALIDJOB", "A query job can only be set to the state Aborted")
        with self._lock:
            if job.state in ("JobComplete", "Failed", "Aborted"):
                raise SalesforceApiError(
                    400, "INVALIDJOB", f"Cannot abort a job in the state {job.state}"
                )  # fmt: skip
            job.state = "Aborted"
        return job.info(self._user_id)

    def _results(self, job: QueryJob, version: str, params: dict[str, str]) -> CsvPage:
        if job.state != "JobComplete":
            raise SalesforceApiError(
                412,
                "JOB_NOT_COMPLETE",
                "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. "
                f"Current status: {_status_name(job.state)}",
            )
        if version != job.api_version:
            raise SalesforceApiError(
                409, "INVALIDJOB", f"Use the API version the job was created with (v{job.api_version})"
            )
        raw_max = params.get("maxRecords", "")
        if raw_max and (not raw_max.isdigit() or int(raw_max) < 1):
            raise SalesforceApiError(400, "INVALIDJOB", f"maxRecords must be a positive integer, got {raw_max!r}")
        page_records = int(raw_max) if raw_max else DEFAULT_PAGE_RECORDS
        locator = params.get("locator", "")
        with self._lock:
            if locator and locator not in job.pages:
                raise SalesforceApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
            offset = job.pages[locator] if locator else 0
            end = min(offset + page_records, len(job.rows))
            next_locator = None
            if end < len(job.rows):
                next_locator = _locator(end)
                job.pages[next_locator] = end
        lines = [",".join(f'"{f.name}"' for f in job.fields)]
        lines += [",".join(_csv_cell(f, row.get(f.name)) for f in job.fields) for row in job.rows[offset:end]]
        return CsvPage(("\n".join(lines) + "\n").encode(), end - offset, next_locator)


def _locator(offset: int) -> str:
    """Opaque to clients, as Salesforce's are (base64-like text); stable for a given job and offset."""
    return "".join(BASE62[(offset >> shift) % 62] for shift in range(0, 40, 5)) + str(offset)


def _csv_cell(field: Field, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif field.type == "datetime" and isinstance(value, datetime):
        text = format_datetime(value).replace("+0000", "Z")
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'


def _status_name(state: str) -> str:
    return {"UploadComplete": "UPLOAD_COMPLETE", "InProgress": "IN_PROGRESS"}.get(state, state.upper())


def _not_allowed(method: str, *allowed: str) -> SalesforceApiError:
    return SalesforceApiError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
    )
