"""The REST API: request routing and the JSON shapes of Salesforce's REST API.

Shapes follow Salesforce's REST API Developer Guide (developer.salesforce.com/docs/atlas.en-us.api_rest):
"Query" / "QueryAll" / "Query More Results" (``totalSize``, ``done``, ``nextRecordsUrl`` like
``/services/data/v62.0/query/01gRO0000016PIAYA2-2000``, ``records`` with ``attributes``), "sObject Get
Updated" (``ids``, ``latestDateCovered``, 30 days) and "sObject Get Deleted" (``deletedRecords`` of
``{id, deletedDate}``, ``earliestDateAvailable``, ``latestDateCovered``, 15 days, ``EXCEEDED_ID_LIMIT``
over 600,000 ids), "sObject Describe" / "Describe Global", "sObject Rows" / "sObject Rows by External
ID" (upsert: 201 ``created: true`` / 200 ``created: false``), "Composite" (``compositeRequest`` ->
``compositeResponse`` of ``{body, httpHeaders, httpStatusCode, referenceId}``, ``allOrNone``, 25
subrequests, ``PROCESSING_HALTED``), "Limits" (``DailyApiRequests``), "Status Codes and Error
Responses" (``[{"message", "errorCode", "fields"}]``) and "Limit Info Header" (``Sforce-Limit-Info:
api-usage=n/m`` on every call but the Versions URI); the token endpoint follows "OAuth 2.0 JWT
Bearer Flow for Server-to-Server Integration" (Salesforce Help). Bulk API 2.0 query jobs (``jobs/query``) are
served by bulk.py, the admin switches under ``/_emulator/`` (not Salesforce's API) by admin.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .admin import Admin
from .auth import Auth, OAuthError
from .bulk import DAILY_QUERY_JOBS, BulkQueries
from .change_events import CHANGE_ORIGIN
from .clock import Clock
from .cursors import Cursor, Cursors
from .errors import SalesforceApiError, invalid_session, limit_exceeded, not_found
from .faults import ApiUsage, Faults
from .schema import Schema, SObject
from .soql import parse as parse_soql
from .store import Store, api_record, api_value
from .values import format_datetime, normalize_id, parse_datetime

JSON_TYPE = "application/json;charset=UTF-8"
LATEST_VERSION = "62.0"
_VERSION_SEGMENT = re.compile(r"v(\d{2,3}\.\d)$")
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_REFERENCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*$")
UPDATED_WINDOW = timedelta(days=30)
DELETED_WINDOW = timedelta(days=15)
MAX_COMPOSITE = 25
_HALTED = "The transaction was rolled back since another operation in the same transaction failed."


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):  # a CSV page of Bulk API results
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


class Api:
    """Everything behind the socket: authentication, API accounting, faults and the resources."""

    def __init__(
        self,
        *,
        store: Store,
        auth: Auth,
        usage: ApiUsage,
        cursors: Cursors,
        faults: Faults,
        clock: Clock,
        page_size: int,
        replication_id_limit: int,
        schema: Schema | None = None,
        bulk: BulkQueries | None = None,
    ):
        self.schema = schema or Schema()
        self.bulk = bulk or BulkQueries(store, self.schema, clock, auth.user_id)
        self.admin = Admin(store, self.schema, clock, self.bulk)
        self.store = store
        self.auth = auth
        self.usage = usage
        self.cursors = cursors
        self.faults = faults
        self.clock = clock
        self.page_size = page_size
        self.replication_id_limit = replication_id_limit
        self.instance_url = ""
        self._log_lock = threading.Lock()
        self._request_log: list[tuple[str, str]] = []

    # ----- entry point ---------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response | None:
        """Answer one HTTP request (``target``: path and query string); None: drop the connection."""
        parts = urlsplit(target)
        path = parts.path
        params = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.startswith("/_emulator/"):  # admin switches: not Salesforce's API, never logged or counted
            try:
                status, answer = self.admin.handle(method, [s for s in path.split("/") if s][1:], body)
            except SalesforceApiError as error:
                return _error(error)
            return Response(status, answer)
        self.log(method, path_kind(method, path))
        if self.faults.take_drop():
            return None
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        if path.rstrip("/") == "/services/oauth2/token":
            return self._token(method, body, params)
        segments = [unquote(s) for s in path.split("/") if s]
        if segments[:2] != ["services", "data"]:
            return _error(not_found())
        if len(segments) == 2:  # the Versions URI: public, not an API call, no Sforce-Limit-Info
            return Response(200, self._versions())
        # Change Data Capture names the API client of a change in its changeOrigin (change_events.py)
        version = segments[2].lstrip("v") if len(segments) > 2 else ""
        call_options = headers.get("sforce-call-options", "")
        origin = f"com/salesforce/api/rest/{version}" + (f";{call_options}" if call_options else "")
        token = CHANGE_ORIGIN.set(origin)
        try:
            return self._data_call(method, segments[2:], params, headers, body)
        finally:
            CHANGE_ORIGIN.reset(token)

    def log(self, method: str, kind: str) -> None:
        with self._log_lock:
            self._request_log.append((method, kind))

    def logged(self) -> list[tuple[str, str]]:
        with self._log_lock:
            return list(self._request_log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._request_log.clear()

    # ----- OAuth ---------------------------------------------------------------------------------
    def _token(self, method: str, body: bytes, params: dict[str, str]) -> Response:
        if method != "POST":
            return Response(405, {"error": "invalid_request", "error_description": "must use HTTP POST"})
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()} or params
        try:
            return Response(200, self.auth.exchange(form, self.instance_url))
        except OAuthError as error:
            return Response(error.status, error.body())

    # ----- /services/data/vNN.N/... ---------------------------------------------------------------
    def _data_call(
        self, method: str, segments: list[str], params: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Response:
        response = self._counted_call(method, segments, params, headers, body)
        response.headers["Sforce-Limit-Info"] = self.usage.header()
        return response

    def _counted_call(
        self, method: str, segments: list[str], params: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Response:
        failure = self.faults.take_failure()
        if failure is not None:
            return _error(failure)
        if not self.auth.is_valid(headers.get("authorization")):
            return _error(invalid_session())
        if not self.usage.consume():
            return _error(limit_exceeded())
        match = _VERSION_SEGMENT.match(segments[0])
        if match is None:
            return _error(not_found())
        try:
            data = _json_body(body) if method in ("POST", "PATCH", "PUT") else None
            if segments[1:] == ["composite"]:
                if method != "POST":
                    raise _method_not_allowed(method, "POST")
                return self._composite(match[1], data)
            return self.dispatch(method, match[1], segments[1:], params, headers, data)
        except SalesforceApiError as error:
            return _error(error)

    def dispatch(
        self,
        method: str,
        version: str,
        segments: list[str],
        params: dict[str, str],
        headers: dict[str, str],
        data: Any,
    ) -> Response:
        """Route a resource below ``/services/data/vNN.N/`` (also used by composite subrequests)."""
        head = segments[0] if segments else ""
        rest = segments[1:]
        if method in ("POST", "PATCH") and data is not None and not isinstance(data, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        if not segments:
            _allow(method, "GET")
            return Response(200, self._resources(version))
        if head == "limits" and not rest:
            _allow(method, "GET")
            used, limit = self.usage.snapshot()
            jobs = self.bulk.jobs_today()
            return Response(
                200,
                {
                    "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
                    "DailyBulkV2QueryJobs": {"Max": DAILY_QUERY_JOBS, "Remaining": max(0, DAILY_QUERY_JOBS - jobs)},
                },
            )
        if head in ("query", "queryAll") and len(rest) <= 1:
            _allow(method, "GET")
            if rest:
                return self._query_more(version, rest[0])
            return self._query(version, params, headers, include_deleted=head == "queryAll")
        if head == "sobjects":
            return self._sobjects(method, version, rest, params, data)
        if head == "jobs" and rest[:1] == ["query"]:
            status, answer, answer_headers = self.bulk.handle(method, version, rest[1:], params, data)
            return Response(status, answer, answer_headers)
        raise not_found()

    # ----- resources -----------------------------------------------------------------------------
    @staticmethod
    def _versions() -> list[dict]:
        labels = {"59.0": "Winter '24", "60.0": "Spring '24", "61.0": "Summer '24", "62.0": "Winter '25"}
        return [{"label": label, "url": f"/services/data/v{v}", "version": v} for v, label in labels.items()]

    @staticmethod
    def _resources(version: str) -> dict:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        return {name: f"{base}/{name}" for name in names}

    def _query(self, version: str, params: dict[str, str], headers: dict[str, str], *, include_deleted: bool):
        text = params.get("q", "")
        if self.faults.take_query_timeout():
            raise SalesforceApiError(400, "QUERY_TIMEOUT", "Your query request was running for too long.")
        query = parse_soql(text, self.schema.find)
        rows = self.store.rows(query.sobject)
        if not include_deleted:
            rows = [row for row in rows if not row["IsDeleted"]]
        result = query.run(rows)
        if query.is_count:
            return Response(200, {"totalSize": len(result), "done": True, "records": []})
        cursor = self.cursors.open(query, result, self._batch_size(headers))
        return Response(200, self._page(cursor, 0, version))

    def _batch_size(self, headers: dict[str, str]) -> int:
        options = headers.get("sforce-query-options", "")
        match = re.search(r"batchSize\s*=\s*(\d+)", options)
        if match:
            return max(1, min(self.page_size, max(200, int(match[1]))))
        return self.page_size

    def _query_more(self, version: str, locator: str) -> Response:
        cursor, offset = self.cursors.find(locator)
        return Response(200, self._page(cursor, offset, version))

    @staticmethod
    def _page(cursor: Cursor, offset: int, version: str) -> dict:
        sobject, fields = cursor.query.sobject, cursor.query.fields
        chunk = cursor.rows[offset : offset + cursor.batch_size]
        records = []
        for row in chunk:
            record: dict = {
                "attributes": {
                    "type": sobject.name,
                    "url": f"/services/data/v{version}/sobjects/{sobject.name}/{row['Id']}",
                }
            }
            for f in fields:
                record[f.name] = api_value(f, row.get(f.name))
            records.append(record)
        end = offset + len(chunk)
        page: dict = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not page["done"]:
            page["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor.id}-{end}"
        page["records"] = records
        return page

    def _sobjects(self, method: str, version: str, rest: list[str], params: dict[str, str], data: Any):
        if not rest:
            _allow(method, "GET")
            return Response(
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [obj.summary(version) for obj in self.schema.objects()],
                },
            )
        sobject = self.schema.find(rest[0])
        if sobject is None:
            raise not_found()
        if len(rest) == 1:
            if method == "POST":
                record = self.store.create(sobject, data)
                location = f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}"
                return Response(201, {"id": record["Id"], "success": True, "errors": []}, {"Location": location})
            _allow(method, "GET", "POST")
            return Response(200, {"objectDescribe": sobject.summary(version), "recentItems": []})
        if len(rest) == 2 and rest[1] == "describe":
            _allow(method, "GET")
            return Response(200, sobject.describe(version))
        if len(rest) == 2 and rest[1] in ("updated", "deleted"):
            _allow(method, "GET")
            return Response(200, self._replication(sobject, rest[1], params))
        if len(rest) == 2:
            return self._record(method, version, sobject, rest[1], params, data)
        if len(rest) == 3:
            return self._by_external_id(method, version, sobject, rest[1], rest[2], params, data)
        raise not_found()

    def _record(self, method: str, version: str, sobject: SObject, record_id: str, params, data) -> Response:
        _allow(method, "GET", "PATCH", "DELETE")
        if normalize_id(record_id) is None:
            raise not_found(f"Provided external ID field does not exist or is not accessible: {record_id}")
        if method == "PATCH":
            self.store.update(sobject, record_id, data)
            return Response(204)
        if method == "DELETE":
            self.store.delete(sobject, record_id)
            return Response(204)
        record = self.store.get(sobject, record_id)
        if record is None or record["IsDeleted"]:
            raise not_found()
        return Response(200, self._record_body(sobject, record, version, params.get("fields")))

    def _by_external_id(self, method, version, sobject: SObject, field_name, value, params, data) -> Response:
        _allow(method, "GET", "PATCH", "DELETE")
        field = sobject.field(field_name)
        if field is None or not (field.external_id or field.name == "Id"):
            raise not_found(f"Provided external ID field does not exist or is not accessible: {field_name}")
        with self.store.lock:
            if field.name == "Id":
                found = self.store.get(sobject, value)
                record = None if found is None or found["IsDeleted"] else found
            else:
                record = self.store.find_by_external_id(sobject, field, value)
            if method == "GET":
                if record is None:
                    raise not_found()
                return Response(200, self._record_body(sobject, record, version, params.get("fields")))
            if method == "DELETE":
                if record is None:
                    raise not_found()
                self.store.delete(sobject, record["Id"])
                return Response(204)
            if isinstance(data, dict):
                for key, given in data.items():
                    if key.lower() == field.name.lower() and given != value:
                        raise SalesforceApiError(
                            400,
                            "INVALID_FIELD",
                            f"The value of the external ID field '{field.name}' in the request body doesn't "
                            "match the value in the URL",
                            [field.name],
                        )
            if record is None:
                if field.name == "Id":
                    raise not_found()
                values = {k: v for k, v in (data or {}).items() if k.lower() != field.name.lower()}
                created = self.store.create(sobject, {**values, field.name: value})
                location = f"/services/data/v{version}/sobjects/{sobject.name}/{created['Id']}"
                body = {"id": created["Id"], "success": True, "errors": [], "created": True}
                return Response(201, body, {"Location": location})
            values = {k: v for k, v in (data or {}).items() if k.lower() != field.name.lower()}
            self.store.update(sobject, record["Id"], values)
            return Response(200, {"id": record["Id"], "success": True, "errors": [], "created": False})

    @staticmethod
    def _record_body(sobject: SObject, record: dict, version: str, fields_param: str | None) -> dict:
        fields = list(sobject.fields)
        if fields_param:
            fields = []
            for name in fields_param.split(","):
                found = sobject.field(name.strip())
                if found is None:
                    raise SalesforceApiError(
                        400, "INVALID_FIELD", f"No such column '{name.strip()}' on entity '{sobject.name}'"
                    )
                fields.append(found)
        url = f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}"
        return {"attributes": {"type": sobject.name, "url": url}, **api_record(sobject, record, fields)}

    # ----- replication: updated / deleted --------------------------------------------------------
    def _replication(self, sobject: SObject, kind: str, params: dict[str, str]) -> dict:
        start = _replication_date(params, "start")
        end = _replication_date(params, "end")
        now = self.clock.now()
        window = UPDATED_WINDOW if kind == "updated" else DELETED_WINDOW
        if end <= start:
            raise SalesforceApiError(400, "INVALID_REPLICATION_DATE", "start date must be before end date")
        earliest = _to_minute(now - window)
        if start < earliest:
            raise SalesforceApiError(
                400,
                "INVALID_REPLICATION_DATE",
                f"start date cannot be more than {window.days} days ago (earliest: {format_datetime(earliest)})",
            )
        covered = min(end, _to_minute(now))
        rows = self.store.rows(sobject)
        if kind == "updated":
            ids = [r["Id"] for r in rows if not r["IsDeleted"] and start <= r["SystemModstamp"] < covered]
            self._check_id_limit(len(ids))
            return {"ids": ids, "latestDateCovered": format_datetime(covered)}
        deleted = sorted(
            (r for r in rows if r["IsDeleted"] and start <= r["_deleted_at"] < covered),
            key=lambda r: (r["_deleted_at"], r["Id"]),
        )
        self._check_id_limit(len(deleted))
        return {
            "deletedRecords": [{"id": r["Id"], "deletedDate": format_datetime(r["_deleted_at"])} for r in deleted],
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(covered),
        }

    def _check_id_limit(self, count: int) -> None:
        if count > self.replication_id_limit:
            raise SalesforceApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"The number of IDs exceeds the limit of {self.replication_id_limit}. "
                "Choose start and end dates that are closer together.",
            )

    # ----- composite -----------------------------------------------------------------------------
    def _composite(self, version: str, data: Any) -> Response:
        requests = data.get("compositeRequest") if isinstance(data, dict) else None
        if not isinstance(requests, list) or not requests:
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "compositeRequest: a list of subrequests is required")
        if len(requests) > MAX_COMPOSITE:
            raise SalesforceApiError(
                400, "LIMIT_EXCEEDED", f"Composite request is limited to {MAX_COMPOSITE} subrequests"
            )
        seen: set[str] = set()
        for sub in requests:
            ref = sub.get("referenceId") if isinstance(sub, dict) else None
            if not isinstance(ref, str) or not _REFERENCE_ID.match(ref) or ref in seen:
                raise SalesforceApiError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Invalid referenceId ('{ref}'): it must be unique, start with a letter or a number and "
                    "contain only letters, numbers and underscores",
                )
            if not isinstance(sub.get("method"), str) or not isinstance(sub.get("url"), str):
                raise SalesforceApiError(400, "JSON_PARSER_ERROR", f"Subrequest '{ref}' needs a method and a url")
            seen.add(ref)
        if data.get("allOrNone", False):
            return Response(200, {"compositeResponse": self._all_or_none(requests)})
        with self.store.lock:
            bodies: dict[str, Any] = {}
            results = []
            for sub in requests:
                response = self._subrequest(sub, bodies)
                if response.status < 300:
                    bodies[sub["referenceId"]] = response.body
                results.append(_sub_result(sub["referenceId"], response))
        return Response(200, {"compositeResponse": results})

    def _all_or_none(self, requests: list[dict]) -> list[dict]:
        """Run subrequests in one transaction; at the first failure roll everything back."""
        bodies: dict[str, Any] = {}
        results: list[dict] = []
        halted = _sub_result("", _error(_halted(_HALTED)))
        try:
            with self.store.transaction():
                for index, sub in enumerate(requests):
                    response = self._subrequest(sub, bodies)
                    if response.status >= 300:
                        results = [{**halted, "referenceId": r["referenceId"]} for r in requests]
                        results[index] = _sub_result(sub["referenceId"], response)
                        raise _RollBack
                    bodies[sub["referenceId"]] = response.body
                    results.append(_sub_result(sub["referenceId"], response))
        except _RollBack:
            pass
        return results

    def _subrequest(self, sub: dict, bodies: dict[str, Any]) -> Response:
        try:
            url = _resolve(sub["url"], bodies, in_url=True)
            data = _resolve(sub.get("body"), bodies)
        except _UnresolvedReference as missing:
            return _error(
                _halted(
                    f"Invalid reference specified. No value for {missing.expression} found in {missing.ref}. "
                    f"Provided referenceId ('{missing.ref}') must refer to an earlier successful subrequest."
                )
            )
        parts = urlsplit(url)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if segments[:2] != ["services", "data"] or len(segments) < 3 or not _VERSION_SEGMENT.match(segments[2]):
            return _error(not_found())
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        method = sub["method"].upper()
        try:
            with self.store.transaction():
                return self.dispatch(method, segments[2][1:], segments[3:], params, {}, data)
        except SalesforceApiError as error:
            return _error(error)


class _RollBack(Exception):
    """Raised inside an allOrNone composite transaction to undo it."""


class _UnresolvedReference(Exception):
    def __init__(self, ref: str, expression: str):
        super().__init__(expression)
        self.ref = ref
        self.expression = expression


def _resolve(value: Any, bodies: dict[str, Any], *, in_url: bool = False) -> Any:
    """Replace ``@{ref.path}`` references with values from earlier subresponses."""
    if isinstance(value, dict):
        return {k: _resolve(v, bodies) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, bodies) for v in value]
    if not isinstance(value, str) or "@{" not in value:
        return value

    def lookup(match: re.Match[str]) -> Any:
        ref, path = match[1], match[2]
        if ref not in bodies:
            raise _UnresolvedReference(ref, match[0][2:-1])
        current = bodies[ref]
        for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
            key, index = step
            try:
                current = current[key] if key else current[int(index)]
            except (KeyError, IndexError, TypeError):
                raise _UnresolvedReference(ref, match[0][2:-1]) from None
        return current

    whole = _REFERENCE.fullmatch(value)
    if whole and not in_url:
        return lookup(whole)
    return _REFERENCE.sub(lambda m: str(lookup(m)), value)


def _sub_result(reference_id: str, response: Response) -> dict:
    return {
        "body": response.body,
        "httpHeaders": dict(response.headers),
        "httpStatusCode": response.status,
        "referenceId": reference_id,
    }


def _halted(message: str) -> SalesforceApiError:
    return SalesforceApiError(400, "PROCESSING_HALTED", message)


def _error(error: SalesforceApiError) -> Response:
    return Response(error.status, error.body())


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _method_not_allowed(method, *allowed)


def _method_not_allowed(method: str, *allowed: str) -> SalesforceApiError:
    return SalesforceApiError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
    )


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        message = f"Unexpected character in the request body: {error}"
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", message) from None


def _replication_date(params: dict[str, str], name: str) -> datetime:
    text = params.get(name)
    if not text:
        raise SalesforceApiError(400, "MISSING_ARGUMENT", f"Missing required parameter: {name}")
    # A hand-built URL may carry "+00:00" unencoded, which form decoding turns into " 00:00".
    text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", text.strip())
    try:
        return _to_minute(parse_datetime(text))
    except ValueError:
        raise SalesforceApiError(
            400, "INVALID_REPLICATION_DATE", f"{name}: expected an ISO 8601 date and time, got {text}"
        ) from None


def _to_minute(value: datetime) -> datetime:
    """Salesforce ignores the seconds of replication dates."""
    return value.replace(second=0, microsecond=0)


def path_kind(method: str, path: str) -> str:
    """A short name for the request log: token, query, queryAll, query_more, describe, composite ..."""
    segments = [s for s in path.split("/") if s]
    if segments[:3] == ["services", "oauth2", "token"]:
        return "token"
    if segments[:2] != ["services", "data"]:
        return "unknown"
    rest = segments[3:]
    if len(segments) == 2:
        return "versions"
    if not rest:
        return "resources"
    head = rest[0]
    if head in ("query", "queryAll"):
        return "query_more" if len(rest) > 1 else head
    if head in ("limits", "composite"):
        return head
    if head == "jobs" and rest[1:2] == ["query"]:
        if len(rest) == 2:
            return "bulk_job_create" if method == "POST" else "bulk_jobs"
        return "bulk_results" if rest[3:4] == ["results"] else "bulk_job"
    if head == "sobjects":
        if len(rest) == 1:
            return "describe_global"
        if len(rest) == 2:
            return "create" if method == "POST" else "sobject"
        if rest[2] in ("describe", "updated", "deleted") and len(rest) == 3:
            return rest[2]
        return "record" if len(rest) == 3 else ("upsert" if method == "PATCH" else "external_id")
    return "unknown"
