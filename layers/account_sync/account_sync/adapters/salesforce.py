"""Salesforce REST through simple-salesforce. Only the fetch and Convert Person functions import this module.

simple-salesforce has no retry of its own: this adapter retries 5xx, 420/429 and connection errors with
backoff, renews the token once on 401, stops on REQUEST_LIMIT_EXCEEDED or once the configured share of the
daily API limit (`Sforce-Limit-Info`) is used, and restarts a window from its last record on
INVALID_QUERY_LOCATOR. Salesforce errors are translated into the project's own exceptions. Convert Person checks
once per container, before its first write, that the org has the external id field it upserts by.
"""

from __future__ import annotations

import csv
import functools
import io
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)
from simple_salesforce.format import format_soql
from simple_salesforce.util import exception_handler

from account_sync.adapters.salesforce_auth import JwtBearerAuthenticator
from account_sync.change_events import ACCOUNT_SYNC_CLIENT_ID
from account_sync.domain.conversion import EXTERNAL_ID_FIELD, ConversionOrder, ConvertedRecords
from account_sync.domain.timestamps import EPOCH, normalize_timestamp
from account_sync.ports import (
    ApiUsage,
    FieldSetup,
    QueryLocatorExpired,
    SalesforceAuthError,
    SalesforceBudgetExhausted,
    SalesforceQueryError,
    SalesforceRejected,
    SalesforceSetupError,
    SetupProblem,
    SubrequestFailure,
    TransientError,
    WindowItem,
)

_T = TypeVar("_T")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CANONICAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_TRANSIENT_STATUS = {406, 420, 429, 500, 502, 503, 504}
MAX_QUERY_RESTARTS = 5
# Ids per `WHERE Id IN` query of the push path: far under SOQL's 100,000 characters, one page of results.
IDS_PER_QUERY = 200
BULK_MAX_POLL_SECONDS = 10.0  # well under the run's stop margin: a wait never runs into the deadline
_NUMBER_TYPES = {"double", "currency", "percent"}
IDS_PER_QUERY = 200  # ids of one `Id IN (...)` query: 200 x 21 characters, well under SOQL's 100,000


class BulkJobLost(SalesforceQueryError):
    """A Bulk API query job that cannot give its results: failed, aborted, or gone."""

    def __init__(self, message: str) -> None:
        super().__init__("BULK_JOB_LOST", message)


class SalesforceRestSource:
    def __init__(
        self,
        authenticator: JwtBearerAuthenticator,
        session: requests.Session,
        api_version: str = "62.0",
        budget_share: float = 0.5,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        bulk_threshold: int = 10_000,
        bulk_page_records: int = 50_000,
        bulk_poll_seconds: float = 2.0,
    ) -> None:
        self._bulk_threshold = bulk_threshold
        self._bulk_page_records = bulk_page_records
        self._bulk_poll_seconds = bulk_poll_seconds
        self._types: dict[str, dict[str, str]] = {}
        self._authenticator = authenticator
        self._session = session
        self._api_version = api_version
        self._budget_share = budget_share
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep
        self._client: Salesforce | None = None
        self._usage: ApiUsage | None = None
        self._calls = 0

    # --- SalesforceSource ----------------------------------------------------------------------------

    @property
    def api_usage(self) -> ApiUsage | None:
        return self._usage

    @property
    def api_calls(self) -> int:
        return self._calls

    def account_field_names(self) -> set[str]:
        entries = self.describe("Account").get("fields", [])
        self._types["Account"] = {str(e.get("name")): str(e.get("type")) for e in entries if isinstance(e, dict)}
        return set(self._types["Account"])

    def describe(self, sobject: str, timeout: float | tuple[float, float] | None = None) -> Mapping[str, Any]:
        """GET /sobjects/<sobject>/describe: the object and its fields, as the integration user sees them."""
        if not _NAME.match(sobject):
            raise ValueError(f"not a Salesforce API name: {sobject!r}")
        described: Any = self._call(lambda sf: sf.restful(f"sobjects/{sobject}/describe/", timeout=timeout))
        return described if isinstance(described, dict) else {}

    def changed_records(
        self, sobject: str, fields: Sequence[str], start: str, end: str
    ) -> Iterator[Mapping[str, object]]:
        """Records with `start < SystemModstamp <= end` (deleted ones too), in (SystemModstamp, Id) order, by
        REST queries only (whatever the window's size)."""
        for item in self._rest_window(sobject, fields, start, end, None, switch_to_bulk=False):
            if item.record is not None:
                yield item.record

    def read_window(
        self,
        sobject: str,
        fields: Sequence[str],
        start: str,
        end: str,
        position: Mapping[str, str] | None = None,
    ) -> Iterator[WindowItem]:
        """The window by REST queries, or by a Bulk API 2.0 query job for an initial load (a window from the
        epoch) and when the first REST page says the window holds more than `bulk_threshold` records (that page
        is the only call spent on finding out)."""
        _check_names(sobject, fields)
        position = dict(position or {})
        if position.get("mode") == "bulk" and position.get("job"):
            yield from self._resume_bulk(sobject, fields, start, end, position)
            return
        after = (position["after_stamp"], position["after_id"]) if position.get("after_id") else None
        if after is None and start == EPOCH:
            # An initial load: as large as the org, so no REST page is spent on finding out.
            yield from self._bulk_window(sobject, fields, _window_soql(sobject, fields, start, end, None))
            return
        yield from self._rest_window(sobject, fields, start, end, after, switch_to_bulk=True)

    def _rest_window(
        self,
        sobject: str,
        fields: Sequence[str],
        start: str,
        end: str,
        after: tuple[str, str] | None,
        switch_to_bulk: bool,
    ) -> Iterator[WindowItem]:
        _check_names(sobject, fields)
        last = after
        restarts = 0
        first_page = True
        while True:
            soql = _window_soql(sobject, fields, start, end, last, ordered=True)
            try:
                page: Any = self._call(lambda sf, q=soql: sf.query(q, include_deleted=True))  # type: ignore[misc]
                if first_page and switch_to_bulk and int(page.get("totalSize") or 0) > self._bulk_threshold:
                    # A large window: one Bulk API job reads it in a handful of calls, from where we are.
                    yield from self._bulk_window(sobject, fields, _window_soql(sobject, fields, start, end, last))
                    return
                first_page = False
                while True:
                    for record in page.get("records", []):
                        last = (str(record["SystemModstamp"]), str(record["Id"]))
                        yield WindowItem(record, {"mode": "rest", "after_stamp": last[0], "after_id": last[1]})
                    next_url = page.get("nextRecordsUrl")
                    if page.get("done", True) or not next_url:
                        return
                    page = self._call(
                        lambda sf, u=next_url: sf.query_more(u, identifier_is_url=True, include_deleted=True)  # type: ignore[misc]
                    )
            except QueryLocatorExpired:
                restarts += 1
                if restarts > MAX_QUERY_RESTARTS:
                    raise
                # The cursor is gone: read the rest of the window again from the last record seen.

    def records_by_id(
        self, sobject: str, fields: Sequence[str], record_ids: Sequence[str]
    ) -> Iterator[Mapping[str, object]]:
        """The records named (deleted ones too), as a window's read returns them: one `queryAll` per
        `IDS_PER_QUERY` ids (the push path's targeted read; ids the org no longer has are simply absent)."""
        _check_names(sobject, fields)
        bad = [record_id for record_id in record_ids if not _RECORD_ID.match(record_id)]
        if bad:
            raise ValueError(f"not Salesforce record ids: {bad[:3]!r}")
        for first in range(0, len(record_ids), IDS_PER_QUERY):
            chunk = list(record_ids[first : first + IDS_PER_QUERY])
            select = f"SELECT {', '.join(fields)} FROM {sobject}"  # noqa: S608 - names checked above  # nosec B608
            soql = format_soql(f"{select} WHERE Id IN {{}}", chunk)
            page: Any = self._call(lambda sf, q=soql: sf.query(q, include_deleted=True))  # type: ignore[misc]
            while True:
                yield from page.get("records", [])
                next_url = page.get("nextRecordsUrl")
                if page.get("done", True) or not next_url:
                    break
                page = self._call(
                    lambda sf, u=next_url: sf.query_more(u, identifier_is_url=True, include_deleted=True)  # type: ignore[misc]
                )

    def accounts_by_ids(self, fields: Sequence[str], account_ids: Sequence[str]) -> Iterator[Mapping[str, object]]:
        """A resync of named accounts: the Accounts with these ids (deleted ones too), each asked once, read as the
        push path reads the records its events name. An id Salesforce does not know yields nothing."""
        return self.records_by_id("Account", fields, list(dict.fromkeys(account_ids)))

    def accounts_after(self, fields: Sequence[str], after_id: str | None, limit: int) -> Iterator[Mapping[str, object]]:
        """Drift detection's rolling sample: the next `limit` Accounts (not deleted) in Id order after `after_id`,
        in one query (`limit` stays under a page)."""
        _check_names("Account", fields)
        select = f"SELECT {', '.join(fields)} FROM Account"  # noqa: S608 - names checked above  # nosec B608
        where = format_soql(" WHERE Id > {}", after_id) if after_id else ""
        soql = f"{select}{where} ORDER BY Id LIMIT {int(limit)}"
        page: Any = self._call(lambda sf: sf.query(soql))
        yield from page.get("records", [])

    # --- Bulk API 2.0 query jobs ---------------------------------------------------------------------

    def _bulk_window(self, sobject: str, fields: Sequence[str], soql: str) -> Iterator[WindowItem]:
        """Create a queryAll job for `soql` (deleted rows too), then read it like a resumed one."""
        created: Any = self._call(
            lambda sf: sf.restful(
                "jobs/query", method="POST", json={"operation": "queryAll", "query": soql, "contentType": "CSV"}
            )
        )
        job = str(created["id"]) if isinstance(created, dict) and created.get("id") else ""
        if not job:
            raise SalesforceQueryError("UNEXPECTED_RESPONSE", "the query job was created without an id")
        yield from self._bulk_results(sobject, fields, {"mode": "bulk", "job": job, "locator": "", "offset": "0"})

    def _resume_bulk(
        self, sobject: str, fields: Sequence[str], start: str, end: str, position: dict[str, str]
    ) -> Iterator[WindowItem]:
        """A job an earlier run started: go on with it; a job Salesforce no longer has (deleted, expired,
        failed) is replaced by a new one over the whole window (re-reading is harmless, losing is not)."""
        try:
            yield from self._bulk_results(sobject, fields, position)
        except BulkJobLost:
            yield from self._bulk_window(sobject, fields, _window_soql(sobject, fields, start, end, None))

    def _bulk_results(self, sobject: str, fields: Sequence[str], position: dict[str, str]) -> Iterator[WindowItem]:
        job, locator, offset = position["job"], position.get("locator", ""), int(position.get("offset") or 0)
        delay = self._bulk_poll_seconds
        while True:
            try:
                info: Any = self._call(lambda sf: sf.restful(f"jobs/query/{job}"))
            except SalesforceQueryError as exc:
                if exc.code == "NOT_FOUND":
                    raise BulkJobLost(f"query job {job} no longer exists") from exc
                raise
            state = str(info.get("state")) if isinstance(info, dict) else ""
            if state == "JobComplete":
                break
            if state in ("Failed", "Aborted"):
                raise BulkJobLost(f"query job {job} {state}: {info.get('errorMessage', '')}")
            # UploadComplete or InProgress: the caller may stop here and a later run polls the same job.
            yield WindowItem(None, {"mode": "bulk", "job": job, "locator": locator, "offset": str(offset)})
            self._sleep(delay)
            delay = min(delay * 2, BULK_MAX_POLL_SECONDS)
        types = self._field_types(sobject)
        while True:
            page = functools.partial(self._results_page, job=job, locator=locator)
            text, next_locator = self._call(page)
            rows = csv.DictReader(io.StringIO(text))
            for index, row in enumerate(rows):
                if index < offset:
                    continue  # queued by an earlier run (the page reads the same every time)
                record = {name: _csv_value(types.get(name), row.get(name)) for name in fields}
                done = {"mode": "bulk", "job": job, "locator": locator, "offset": str(index + 1)}
                yield WindowItem(record, done)
            if not next_locator:
                return
            locator, offset = next_locator, 0
            yield WindowItem(None, {"mode": "bulk", "job": job, "locator": locator, "offset": "0"})

    def _results_page(self, sf: Salesforce, job: str, locator: str) -> tuple[str, str]:
        """GET .../jobs/query/<job>/results: a CSV page of at most `bulk_page_records` records, and the locator of
        the next one ("" when it is the last). simple-salesforce's `restful` parses JSON only: the request goes
        through the session and headers it holds, its error handler and its Sforce-Limit-Info parser."""
        params = {"maxRecords": str(self._bulk_page_records)}
        if locator:
            params["locator"] = locator
        response = sf.session.get(
            f"{sf.base_url}jobs/query/{quote(job, safe='')}/results",
            headers={**sf.headers, "Accept": "text/csv"},
            params=params,
        )
        if response.status_code >= 300:
            exception_handler(response, name="jobs/query/results")
        limit_info = response.headers.get("Sforce-Limit-Info")
        if limit_info:
            sf.api_usage = Salesforce.parse_api_usage(limit_info)
        next_locator = response.headers.get("Sforce-Locator") or ""
        return response.content.decode("utf-8").replace("\x00", ""), "" if next_locator == "null" else next_locator

    def _field_types(self, sobject: str) -> dict[str, str]:
        """Field name -> describe type, to give CSV values the types the REST API's JSON has."""
        if sobject not in self._types:
            entries = self.describe(sobject).get("fields", [])
            self._types[sobject] = {str(e.get("name")): str(e.get("type")) for e in entries if isinstance(e, dict)}
        return self._types[sobject]

    # --- writes (Convert Person only) ---------------------------------------------------------------

    def composite(
        self,
        subrequests: Sequence[Mapping[str, object]],
        all_or_none: bool = True,
        timeout: float | tuple[float, float] | None = None,
    ) -> list[Mapping[str, Any]]:
        """POST /composite; the sub-responses when every one succeeded, SalesforceRejected otherwise.

        Salesforce answers HTTP 200 even when a subrequest failed (and with allOrNone rolled everything back):
        the status of each sub-response is what says whether anything was written. The call is retried like
        every other (5xx, dropped connections, a renewed session): only idempotent subrequests belong here.
        """
        body = {"allOrNone": all_or_none, "compositeRequest": [dict(sub) for sub in subrequests]}
        answer: Any = self._call(lambda sf: sf.restful("composite", method="POST", json=body, timeout=timeout))
        responses = answer.get("compositeResponse") if isinstance(answer, dict) else None
        if not isinstance(responses, list) or len(responses) != len(subrequests):
            raise SalesforceQueryError("UNEXPECTED_RESPONSE", "the composite answer has no sub-response per request")
        failures = [_subrequest_failure(r) for r in responses if not _succeeded(r)]
        if failures:
            causes = [f for f in failures if f.code != "PROCESSING_HALTED"]
            raise SalesforceRejected(causes or failures)
        return responses

    # --- plumbing ------------------------------------------------------------------------------------

    def _salesforce(self, renew: bool = False) -> Salesforce:
        if self._client is None or renew:
            token = self._authenticator.token(renew=renew)
            self._client = Salesforce(
                instance_url=token.instance_url,
                session_id=token.access_token,
                session=self._session,
                version=self._api_version,
            )
            # Names us in the changeOrigin of what we change (Convert Person), so the push path can tell it.
            self._client.headers["Sforce-Call-Options"] = f"client={ACCOUNT_SYNC_CLIENT_ID}"
        return self._client

    def _call(self, operation: Callable[[Salesforce], _T]) -> _T:
        self._check_budget()
        renewed = renew_token = False
        attempt = 0
        while True:
            try:
                sf = self._salesforce(renew=renew_token)
            except TransientError:  # the token endpoint answered 5xx or could not be reached: retried the same way
                attempt += 1
                if attempt >= self._max_attempts:
                    raise
                self._backoff(attempt)
                continue
            renew_token = False
            self._calls += 1
            try:
                result = operation(sf)
            except SalesforceExpiredSession as exc:
                if renewed:
                    raise SalesforceAuthError("Salesforce refused a freshly renewed session") from exc
                renewed = renew_token = True
                continue
            except SalesforceRefusedRequest as exc:
                code, message = _first_error(exc)
                if code == "REQUEST_LIMIT_EXCEEDED":
                    raise SalesforceBudgetExhausted(f"Salesforce: {code}: {message}") from exc
                raise SalesforceQueryError(code, message) from exc
            except SalesforceMalformedRequest as exc:
                code, message = _first_error(exc)
                if code == "INVALID_QUERY_LOCATOR":
                    raise QueryLocatorExpired(message) from exc
                raise SalesforceQueryError(code, message) from exc
            except (SalesforceGeneralError, SalesforceError, requests.ConnectionError, requests.Timeout) as exc:
                status = getattr(exc, "status", None)
                if isinstance(exc, SalesforceError) and status not in _TRANSIENT_STATUS:
                    code, message = _first_error(exc)
                    raise SalesforceQueryError(code, message) from exc
                attempt += 1
                if attempt >= self._max_attempts:
                    raise TransientError(f"Salesforce unavailable after {attempt} attempts: {_describe(exc)}") from exc
                self._backoff(attempt)
                continue
            self._record_usage(sf)
            return result

    def _backoff(self, attempt: int) -> None:
        """Exponential backoff with full jitter: up to base x 2^attempt."""
        self._sleep(random.uniform(0, self._base_delay * 2**attempt))  # noqa: S311 - jitter  # nosec B311

    def _record_usage(self, sf: Salesforce) -> None:
        usage = (getattr(sf, "api_usage", None) or {}).get("api-usage")
        if usage is not None:
            self._usage = ApiUsage(used=int(usage.used), limit=int(usage.total))

    def _check_budget(self) -> None:
        if self._usage is not None and self._usage.share >= self._budget_share:
            raise SalesforceBudgetExhausted(
                f"{self._usage.used} of {self._usage.limit} daily API calls used "
                f"(budget {self._budget_share:.0%}); stopping before the next call"
            )


class SalesforcePersonConverter:
    """Convert Person (SPEC R5) in one composite call with allOrNone: the Account, the Contact and the
    Opportunity, each upserted (PATCH by external id) by the conversion key. A retry of the same order updates
    the same three records with the same values: never a second account.

    Before its first composite, the converter checks that the org has the external id field on the three objects
    (one describe each); without it every upsert answers NOT_FOUND, which Salesforce reports as a refused record.
    The converter is built once per container (the handler caches it): a verdict that the org is ready is kept
    for the container's life, so a warm container pays no call for it. A verdict that it is not is kept for
    `RECHECK_SECONDS`, then the objects found wrong are described again, so that an org an administrator fixes
    is seen without a deployment, at a cost of at most three describes per container per interval while it is
    broken. Only answers are kept: a describe that failed (unavailable, session, limit) is asked again by the
    next conversion.
    """

    # Convert Person answers a person waiting on an HTTP API (30 s at most): few, short attempts.
    MAX_ATTEMPTS = 3
    TIMEOUT = (3.05, 8.0)  # connect, read (seconds)
    OBJECTS = ("Account", "Contact", "Opportunity")
    RECHECK_SECONDS = 300.0

    def __init__(
        self,
        new_client: Callable[[], SalesforceRestSource],
        api_version: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._new_client = new_client
        self._api_version = api_version
        self._clock = clock
        self._setup: dict[str, SetupProblem | None] = {}  # per object: what is wrong with the key field, or None
        self._setup_checked_at: dict[str, float] = {}
        self._setup_reported = False

    def convert(self, order: ConversionOrder) -> ConvertedRecords:
        client = self._new_client()
        self._check_setup(client)
        base = f"/services/data/v{self._api_version}/sobjects"
        key = quote(order.key, safe="")

        def upsert(sobject: str, reference: str, values: Mapping[str, object]) -> dict[str, object]:
            url = f"{base}/{sobject}/{EXTERNAL_ID_FIELD}/{key}"
            return {"method": "PATCH", "url": url, "referenceId": reference, "body": dict(values)}

        subrequests = [
            upsert("Account", "account", order.account),
            upsert("Contact", "contact", {**order.contact, "AccountId": "@{account.id}"}),
            upsert("Opportunity", "opportunity", {**order.opportunity, "AccountId": "@{account.id}"}),
        ]
        responses = client.composite(subrequests, all_or_none=True, timeout=self.TIMEOUT)
        bodies = {str(r.get("referenceId")): r.get("body") or {} for r in responses}
        ids = {reference: str(body.get("id") or "") for reference, body in bodies.items()}
        if not all(ids.get(reference) for reference in ("account", "contact", "opportunity")):
            raise SalesforceQueryError("UNEXPECTED_RESPONSE", "an upsert answered without the record's id")
        return ConvertedRecords(
            account_id=ids["account"],
            contact_id=ids["contact"],
            opportunity_id=ids["opportunity"],
            created=any(body.get("created") is True for body in bodies.values()),
        )

    def _check_setup(self, client: SalesforceRestSource) -> None:
        """SalesforceSetupError, before any write, when an object lacks the external id field."""
        now = self._clock()
        for sobject in self.OBJECTS:
            known = sobject in self._setup
            stale = (
                known
                and self._setup[sobject] is not None
                and now - self._setup_checked_at[sobject] >= (self.RECHECK_SECONDS)
            )
            if not known or stale:
                self._setup[sobject] = self._key_field_problem(client, sobject)
                self._setup_checked_at[sobject] = now
        if all(problem is None for problem in self._setup.values()):
            self._setup_reported = False  # fixed: a new breakage is logged again
        problems = [
            FieldSetup(sobject, EXTERNAL_ID_FIELD, problem)
            for sobject, problem in self._setup.items()
            if problem is not None
        ]
        if problems:
            first_report, self._setup_reported = not self._setup_reported, True
            raise SalesforceSetupError(problems, first_report=first_report)

    def _key_field_problem(self, client: SalesforceRestSource, sobject: str) -> SetupProblem | None:
        try:
            described = client.describe(sobject, timeout=self.TIMEOUT)
        except SalesforceQueryError as exc:
            if exc.code == "NOT_FOUND":  # the integration user's profile does not give it the object
                return SetupProblem.OBJECT_NOT_AVAILABLE
            raise
        return external_id_problem(described, EXTERNAL_ID_FIELD)


def external_id_problem(described: Mapping[str, Any], field: str) -> SetupProblem | None:
    """What an object's describe says is wrong with `field` as a key to upsert by: None when it is a unique
    external id. API names are case-insensitive in Salesforce."""
    entries = described.get("fields")
    found = next(
        (
            entry
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, dict) and str(entry.get("name", "")).lower() == field.lower()
        ),
        None,
    )
    if found is None:
        return SetupProblem.MISSING
    if found.get("externalId") is not True:
        return SetupProblem.NOT_EXTERNAL_ID
    if found.get("unique") is not True:
        return SetupProblem.NOT_UNIQUE
    return None


def _succeeded(response: Any) -> bool:
    status = response.get("httpStatusCode") if isinstance(response, dict) else None
    return isinstance(status, int) and 200 <= status < 300


def _subrequest_failure(response: Any) -> SubrequestFailure:
    reference = str(response.get("referenceId", "")) if isinstance(response, dict) else ""
    body = response.get("body") if isinstance(response, dict) else None
    error = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
    fields = error.get("fields")
    return SubrequestFailure(
        reference_id=reference,
        code=str(error.get("errorCode", "UNKNOWN")),
        fields=tuple(str(f) for f in fields) if isinstance(fields, list) else (),
    )


def _first_error(exc: SalesforceError) -> tuple[str, str]:
    content: Any = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "UNKNOWN")), str(content[0].get("message", ""))
    return "UNKNOWN", f"HTTP {getattr(exc, 'status', '?')}"


def _describe(exc: Exception) -> str:
    if isinstance(exc, SalesforceError):
        code, message = _first_error(exc)
        return f"HTTP {exc.status} {code}: {message}"
    return type(exc).__name__


def _check_names(sobject: str, fields: Sequence[str]) -> None:
    for name in (sobject, *fields):
        if not _NAME.match(name):
            raise ValueError(f"not a Salesforce API name: {name!r}")


def _window_soql(
    sobject: str, fields: Sequence[str], start: str, end: str, after: tuple[str, str] | None, ordered: bool = False
) -> str:
    """`start < SystemModstamp <= end`, after the keyset `after`; ordered for REST (Bulk API 2.0 jobs take no
    ORDER BY: it would turn off their chunking)."""
    _check_names(sobject, fields)
    select = f"SELECT {', '.join(fields)} FROM {sobject}"  # noqa: S608 - names checked above  # nosec B608
    upper = f"SystemModstamp <= {_datetime_literal(end)}"
    if after is None:
        where = f"SystemModstamp > {_datetime_literal(start)} AND {upper}"
    else:
        stamp = _datetime_literal(normalize_timestamp(after[0]))
        where = format_soql(
            f"(SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > {{}})) AND {upper}",
            after[1],
        )
    order = " ORDER BY SystemModstamp ASC, Id ASC" if ordered else ""
    return f"{select} WHERE {where}{order}"


def _csv_value(field_type: str | None, raw: str | None) -> object:
    """A Bulk API CSV cell as the REST API's JSON has it: empty is null, booleans and numbers typed."""
    if raw is None or raw == "":
        return None
    if field_type == "boolean":
        return raw.lower() == "true"
    if field_type == "int":
        return int(raw)
    if field_type in _NUMBER_TYPES:
        return float(raw)
    return raw


def _datetime_literal(value: str) -> str:
    """SOQL datetime literals are unquoted: accept only our canonical form, so nothing else reaches the query."""
    if not _CANONICAL_DATETIME.match(value):
        raise ValueError(f"not a canonical datetime: {value!r}")
    return value
