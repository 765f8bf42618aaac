"""API usage accounting (Sforce-Limit-Info, REQUEST_LIMIT_EXCEEDED) and every fault switch."""

from __future__ import annotations

import time

import pytest
import requests
from simple_salesforce import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from .factories import account_values

pytestmark = pytest.mark.integration


def test_sforce_limit_info_is_parsed_by_simple_salesforce(emulator, sf):
    # when two API calls are made
    sf.query("SELECT COUNT() FROM Account")
    sf.query("SELECT COUNT() FROM Account")

    # then the client's api_usage matches the emulator's count (the token exchange is not an API call)
    usage = sf.api_usage["api-usage"]
    assert (usage.used, usage.total) == emulator.api_usage == (2, 100_000)


def test_the_limits_resource_reports_daily_api_requests(emulator, sf):
    emulator.faults.set_api_usage(500)

    limits = sf.limits()

    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - 501}


def test_calls_beyond_the_daily_limit_answer_403_request_limit_exceeded(make_emulator, connect):
    # given an org with 3 API calls a day
    emulator = make_emulator(api_limit=3)
    sf = connect(emulator)
    for _ in range(3):
        sf.query("SELECT COUNT() FROM Account")

    # when one more call is made
    with pytest.raises(SalesforceRefusedRequest) as raised:
        sf.query("SELECT COUNT() FROM Account")

    # then 403, Salesforce's message, and the usage stays at the limit
    assert raised.value.status == 403
    assert raised.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert emulator.api_usage == (3, 3)


def test_exhaust_daily_limit(emulator, sf):
    emulator.faults.exhaust_daily_limit()

    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT COUNT() FROM Account")
    assert emulator.api_usage == (100_000, 100_000)


def test_error_responses_carry_the_limit_header_too(emulator, sf):
    emulator.faults.exhaust_daily_limit()

    response = sf.session.get(emulator.url + "/services/data/v62.0/limits/", headers=sf.headers)

    assert response.headers["Sforce-Limit-Info"] == "api-usage=100000/100000"


@pytest.mark.parametrize(
    ("status", "error_code"),
    [(503, "SERVER_UNAVAILABLE"), (500, "UNKNOWN_EXCEPTION"), (502, "SERVER_UNAVAILABLE"), (420, None)],
)
def test_fail_next_answers_the_status_with_a_salesforce_error_body(emulator, sf, status, error_code):
    # given two failures queued
    emulator.faults.fail_next(count=2, status=status)

    # when three calls are made, then two fail and the third works
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as raised:
            sf.query("SELECT COUNT() FROM Account")
        assert raised.value.status == status
        [error] = raised.value.content
        assert set(error) == {"message", "errorCode"}
        if error_code:
            assert error["errorCode"] == error_code
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_fail_next_with_a_custom_error_code(emulator, sf):
    emulator.faults.fail_next(status=400, error_code="UNABLE_TO_LOCK_ROW", message="unable to obtain exclusive access")

    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT COUNT() FROM Account")

    assert raised.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"


def test_dropped_connections_fail_without_an_answer(emulator, sf):
    emulator.faults.drop_next_connections(1)

    with pytest.raises(requests.exceptions.ConnectionError):
        sf.query("SELECT COUNT() FROM Account")
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_latency_slows_every_request(emulator, sf):
    emulator.faults.latency_ms = 60

    started = time.perf_counter()
    sf.query("SELECT COUNT() FROM Account")

    assert time.perf_counter() - started >= 0.06


def test_query_timeout_next(emulator, sf):
    emulator.faults.query_timeout_next()

    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id FROM Account")

    assert raised.value.content[0]["errorCode"] == "QUERY_TIMEOUT"
    assert sf.query("SELECT Id FROM Account")["done"] is True


def test_invalidated_query_locators(emulator, sf):
    # given an open cursor
    emulator.bulk_create("Account", [account_values() for _ in range(6)])
    first = sf.query("SELECT Id FROM Account")

    # when the locators are invalidated, then the next page answers INVALID_QUERY_LOCATOR
    emulator.faults.invalidate_query_locators()
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert raised.value.content == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


def test_cursors_expire_after_two_days(emulator, sf):
    emulator.bulk_create("Account", [account_values() for _ in range(6)])
    first = sf.query("SELECT Id FROM Account")

    emulator.clock.advance(2 * 24 * 3600 + 1)

    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert raised.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_expire_sessions_answers_401(emulator, sf):
    emulator.faults.expire_sessions()

    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT COUNT() FROM Account")


def test_reset_turns_pending_faults_off(emulator, sf):
    emulator.faults.fail_next(count=5)
    emulator.faults.drop_next_connections(5)
    emulator.faults.query_timeout_next(5)
    emulator.faults.latency_ms = 500

    emulator.faults.reset()

    started = time.perf_counter()
    assert sf.query("SELECT Id FROM Account")["done"] is True
    assert time.perf_counter() - started < 0.5


def test_the_request_log_names_each_call(emulator, connect):
    # given a fresh log
    emulator.reset_request_log()
    emulator.bulk_create("Account", [account_values() for _ in range(6)])

    # when a client logs in, describes and pages a queryAll
    sf = connect(emulator)
    sf.Account.describe()
    first = sf.query("SELECT Id FROM Account", include_deleted=True)
    sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)

    # then
    assert emulator.request_log == [
        ("POST", "token"),
        ("GET", "describe"),
        ("GET", "queryAll"),
        ("GET", "query_more"),
    ]
