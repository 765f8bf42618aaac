"""The Salesforce adapter through the real simple-salesforce client, over a canned HTTP transport (no network).

Retries: the token request is retried like any other call when the token endpoint answers 5xx or cannot be
reached (it failed the whole fetch run before). SOQL: no hostile name or value can change a query.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from account_sync.adapters import salesforce as salesforce_adapter
from account_sync.adapters.salesforce import SalesforceRestSource, _csv_value
from account_sync.adapters.salesforce_auth import AccessToken
from account_sync.ports import TransientError
from account_sync.settings import SettingsError, parse_field_list

INSTANCE = "https://acme.my.salesforce.com"
DESCRIBE = {"fields": [{"name": "Id"}, {"name": "Name"}]}


class CannedSalesforce(requests.adapters.BaseAdapter):
    """Answers each request with the next (status, JSON body) and keeps the requests."""

    def __init__(self, answers: Iterable[tuple[int, object]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers.update({"Content-Type": "application/json", "Sforce-Limit-Info": "api-usage=10/15000"})
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass

    def soql(self, index: int) -> str:
        return parse_qs(urlsplit(str(self.requests[index].url)).query)["q"][0]


class Authenticator:
    """Fails the first `failures` token requests as the real one does when the endpoint is unreachable."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[bool] = []

    def token(self, renew: bool = False) -> AccessToken:
        self.requests.append(renew)
        if self.failures:
            self.failures -= 1
            raise TransientError("token endpoint unreachable: ConnectionError")
        return AccessToken(access_token=f"token-{len(self.requests)}", instance_url=INSTANCE)


def source(authenticator: Authenticator, http: CannedSalesforce, sleeps: list[float]) -> SalesforceRestSource:
    session = requests.Session()
    session.mount("https://", http)
    return SalesforceRestSource(authenticator, session, sleep=sleeps.append)  # type: ignore[arg-type]


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff at its upper bound, so that its growth shows."""
    monkeypatch.setattr(salesforce_adapter.random, "uniform", lambda low, high: high)


def test_a_token_endpoint_that_cannot_be_reached_is_retried_with_growing_backoff(no_jitter):
    authenticator, http, sleeps = Authenticator(failures=2), CannedSalesforce([(200, DESCRIBE)]), []
    fields = source(authenticator, http, sleeps).account_field_names()
    assert fields == {"Id", "Name"}
    assert len(authenticator.requests) == 3 and sleeps == [1.0, 2.0]


def test_a_token_endpoint_down_beyond_the_attempts_is_a_transient_error(no_jitter):
    authenticator, sleeps = Authenticator(failures=9), []
    with pytest.raises(TransientError, match="token endpoint unreachable"):
        source(authenticator, CannedSalesforce([]), sleeps).account_field_names()
    assert len(authenticator.requests) == 4 and sleeps == [1.0, 2.0, 4.0]


def test_a_renewal_that_fails_once_is_retried_and_not_taken_for_a_refused_session(no_jitter):
    # given a session Salesforce has expired, and a token endpoint that fails the renewal once
    expired = [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]
    authenticator, http, sleeps = Authenticator(), CannedSalesforce([(401, expired), (200, DESCRIBE)]), []
    client = source(authenticator, http, sleeps)

    def fail_the_renewal_once(renew: bool = False) -> AccessToken:
        if renew and authenticator.requests.count(True) == 0:
            authenticator.requests.append(renew)
            raise TransientError("token endpoint answered 503")
        return Authenticator.token(authenticator, renew)

    authenticator.token = fail_the_renewal_once  # type: ignore[method-assign]
    # when a call meets the expired session
    assert client.account_field_names() == {"Id", "Name"}
    # then the renewal was asked again, and the call went through with the new token
    assert authenticator.requests == [False, True, True]
    assert http.requests[-1].headers["Authorization"] == "Bearer token-3"


# --- SOQL: a hostile name or value cannot change the query ---------------------------------------------


@pytest.mark.parametrize(
    ("sobject", "fields"),
    [
        ("Account", ["Id", "Name FROM User WHERE Name != ''"]),
        ("Account", ["Id", "Name,(SELECT Id FROM Contacts)"]),
        ("Account WHERE IsDeleted = true", ["Id"]),
        ("Account", ["Id", "Name\nFROM User"]),
        ("Account", ["Id", "N\u0430me"]),  # a Cyrillic "a" that looks like Name
    ],
)
def test_a_hostile_object_or_field_name_never_reaches_a_query(sobject, fields):
    http = CannedSalesforce([])
    records = source(Authenticator(), http, []).changed_records(
        sobject, fields, "2026-11-27T10:00:00.000Z", "2026-11-27T10:05:00.000Z"
    )
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        next(records)
    assert http.requests == []


@pytest.mark.parametrize("end", ["2026-11-27T10:05:00Z OR Name != ''", "2026-11-27", "TODAY"])
def test_a_window_bound_that_is_not_a_canonical_timestamp_never_reaches_a_query(end):
    http = CannedSalesforce([])
    records = source(Authenticator(), http, []).changed_records("Account", ["Id"], "2026-11-27T10:00:00.000Z", end)
    with pytest.raises(ValueError, match="not a canonical datetime"):
        next(records)
    assert http.requests == []


def test_a_hostile_record_id_in_a_restarted_query_is_a_quoted_literal():
    # given a first page whose last record has a hostile Id, and a query locator that expires before page two
    hostile = "001' OR Name != 'x"
    first_page = {
        "totalSize": 2,
        "done": False,
        "nextRecordsUrl": "/services/data/v62.0/query/01gD0000000001-2000",
        "records": [{"Id": hostile, "SystemModstamp": "2026-11-27T10:01:00.000+0000"}],
    }
    gone = [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}]
    http = CannedSalesforce([(200, first_page), (400, gone), (200, {"done": True, "records": []})])
    # when the window is read
    records = source(Authenticator(), http, []).changed_records(
        "Account", ["Id", "SystemModstamp"], "2026-11-27T10:00:00.000Z", "2026-11-27T10:05:00.000Z"
    )
    assert [r["Id"] for r in records] == [hostile]
    # then the restart names the Id as one escaped string literal, and the query is otherwise the keyset one
    assert http.soql(2) == (
        "SELECT Id, SystemModstamp FROM Account WHERE (SystemModstamp > 2026-11-27T10:01:00.000Z OR "
        "(SystemModstamp = 2026-11-27T10:01:00.000Z AND Id > '001\\' OR Name != \\'x')) "
        "AND SystemModstamp <= 2026-11-27T10:05:00.000Z ORDER BY SystemModstamp ASC, Id ASC"
    )


def test_a_hostile_record_stamp_stops_the_read_before_any_query():
    page = {
        "done": False,
        "nextRecordsUrl": "/services/data/v62.0/query/01gD0000000001-2000",
        "records": [{"Id": "001000000000000001", "SystemModstamp": "2026-11-27T10:01:00Z) OR (Name != ''"}],
    }
    gone = [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}]
    http = CannedSalesforce([(200, page), (400, gone)])
    records = source(Authenticator(), http, []).changed_records(
        "Account", ["Id", "SystemModstamp"], "2026-11-27T10:00:00.000Z", "2026-11-27T10:05:00.000Z"
    )
    next(records)
    with pytest.raises(ValueError):
        next(records)
    assert len(http.requests) == 2  # the first page and the expired cursor: no restarted query


@pytest.mark.parametrize(
    "raw",
    [
        "Name, Industry FROM User WHERE Name != ''",
        "Name,(SELECT Id FROM Contacts)",
        "Name;DELETE",
        "Name\nFROM User",
        "Name--",
        "Name,N\u0430me",
        "Industry__c) FROM Account",
        "Name,Owner.Email",
    ],
)
def test_a_hostile_synced_field_list_is_refused_at_cold_start(raw):
    with pytest.raises(SettingsError, match="invalid field names"):
        parse_field_list(raw)


@pytest.mark.parametrize(
    ("field_type", "cell", "value"),
    [
        ("string", "", None),
        ("string", "true", "true"),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("int", "42", 42),
        ("currency", "1500000.0", 1500000.0),
        ("double", "2.5", 2.5),
        ("datetime", "2026-11-27T10:00:00.000Z", "2026-11-27T10:00:00.000Z"),
        (None, "x", "x"),
    ],
)
def test_a_bulk_csv_cell_gets_the_type_the_rest_api_json_gives_it(field_type, cell, value):
    assert _csv_value(field_type, cell) == value and type(_csv_value(field_type, cell)) is type(value)


def test_records_by_id_reads_200_ids_a_query_with_deleted_rows_and_names_the_client():
    # the push path's read (issue 13): one queryAll per 200 ids; every call carries Sforce-Call-Options, so that
    # Salesforce names Account Sync in the changeOrigin of what it changes (Convert Person)
    ids = [f"001{n:015d}" for n in range(1, 251)]
    http = CannedSalesforce(
        [
            (200, {"totalSize": 1, "done": True, "records": [{"Id": ids[0]}]}),
            (200, {"totalSize": 0, "done": True, "records": []}),
        ]
    )
    records = list(source(Authenticator(), http, []).records_by_id("Account", ["Id"], ids))
    assert records == [{"Id": ids[0]}]
    assert [urlsplit(str(r.url)).path.rstrip("/").rsplit("/", 1)[-1] for r in http.requests] == ["queryAll"] * 2
    assert http.soql(0).count("'001") == 200 and http.soql(1).count("'001") == 50
    assert all(r.headers["Sforce-Call-Options"] == "client=AccountSync" for r in http.requests)


def test_records_by_id_refuses_what_is_not_a_record_id_before_any_query():
    http = CannedSalesforce([])
    with pytest.raises(ValueError, match="not Salesforce record ids"):
        list(source(Authenticator(), http, []).records_by_id("Account", ["Id"], ["001' OR Name != '"]))
    assert http.requests == []
