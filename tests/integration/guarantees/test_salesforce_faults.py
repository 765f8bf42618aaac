"""Guarantee 8: Salesforce misbehaving never loses a window.

Through the real simple-salesforce client over HTTPS against the emulator's fault switches: 5xx answers and
dropped connections are retried with growing backoff (the token request too); what cannot be retried in the run
(the API budget, QUERY_TIMEOUT, a query locator expiring again and again) stops the run before the watermark
moves, and the next run reads the same window. Covered elsewhere, with the same emulator:
`tests/integration/test_fetch_salesforce.py::test_an_expired_session_is_renewed_once`,
`::test_a_session_refused_again_after_renewal_fails_clearly`,
`::test_request_limit_exceeded_stops_and_leaves_the_watermark`,
`::test_an_invalid_query_locator_restarts_from_the_last_record_without_loss_or_repeat`.
"""

from __future__ import annotations

import pytest
from account_sync.adapters import salesforce as salesforce_adapter
from account_sync.adapters.dynamodb import DynamoSyncStateStore
from account_sync.adapters.salesforce import MAX_QUERY_RESTARTS
from account_sync.domain.timestamps import shift
from account_sync.ports import QueryLocatorExpired, RecordedUsage, SalesforceQueryError, TransientError
from account_sync.services.fetch_changes import BUDGET_RECHECK_SECONDS

from tests.integration.guarantees.conftest import SCHEDULE_EVENT
from tests.integration.guarantees.test_partial_send_failures import queued_account_ids


@pytest.fixture
def no_jitter(monkeypatch):
    """Every backoff at its upper bound, so that its growth shows."""
    monkeypatch.setattr(salesforce_adapter.random, "uniform", lambda low, high: high)


def test_dropped_connections_and_5xx_are_retried_with_growing_backoff(salesforce, fetch, pipeline, no_jitter):
    # given a changed account, and Salesforce dropping two connections (the first is the token request) then
    # answering 503 once
    (account,) = salesforce.bulk_create("Account", [{"Name": "Despite it all"}])
    salesforce.faults.drop_next_connections(2)
    salesforce.faults.fail_next(count=1, status=503)
    # when the fetch runs
    report = fetch.run()
    # then it waited longer before each new attempt, and queued the account
    assert fetch.sleeps == [1.0, 2.0, 4.0]
    assert report.outcome == "completed" and queued_account_ids(pipeline) == [account]


def test_salesforce_down_beyond_the_attempts_keeps_the_window_for_the_next_run(salesforce, fetch, pipeline, no_jitter):
    (account,) = salesforce.bulk_create("Account", [{"Name": "Later"}])
    fetch.run()  # a first run: the token is cached and the watermark set
    pipeline.bodies("AccountChangesQueue")
    state = DynamoSyncStateStore()
    watermark = state.load_watermark("Account")
    salesforce.update("Account", account, {"Industry": "Retail"})
    salesforce.faults.fail_next(count=4, status=500)
    with pytest.raises(TransientError, match="Salesforce unavailable after 4 attempts"):
        fetch.run()
    assert state.load_watermark("Account") == watermark
    report = fetch.run()
    assert report.queued["Account"] == 1 and state.load_watermark("Account") == report.window_end


def test_request_limit_exceeded_stops_the_run_and_the_next_run_reads_the_window(salesforce, pipeline, fetch, capsys):
    # given a changed account and an org whose daily API allocation is spent
    (account,) = salesforce.bulk_create("Account", [{"Name": "Limited"}])
    used, limit = salesforce.api_usage
    salesforce.faults.exhaust_daily_limit()
    # when the scheduled fetch runs
    stopped = pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload
    # then it stops cleanly (no function error) with a metric, and leaves the watermark
    assert stopped["outcome"] == "stopped_api_budget"
    assert '"ApiBudgetStops":[1.0]' in capsys.readouterr().out
    assert DynamoSyncStateStore().load_watermark("Account") is None
    # and the next scheduled runs, deciding from the usage the stopped run recorded, make no call at all
    salesforce.faults.set_api_usage(used)
    salesforce.reset_request_log()
    skipped = pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload
    assert skipped["outcome"] == "skipped_api_budget" and skipped["api_calls"] == 0
    assert salesforce.request_log == []
    # and when the recorded usage is old enough to ask again (the allocation is back), the change is queued
    recorded = DynamoSyncStateStore().load_api_usage()
    assert recorded is not None
    older = shift(recorded.measured_at, -BUDGET_RECHECK_SECONDS)
    DynamoSyncStateStore().save_api_usage(RecordedUsage(recorded.usage, older))
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "completed"
    assert queued_account_ids(pipeline) == [account]
    assert limit > used


def test_a_query_timeout_fails_the_run_clearly_and_the_next_run_reads_the_window(salesforce, pipeline, fetch):
    fetch.run()  # an initial load of an empty org (a Bulk API job): the next windows are REST queries
    watermark = DynamoSyncStateStore().load_watermark("Account")
    (account,) = salesforce.bulk_create("Account", [{"Name": "Slow query"}])
    salesforce.faults.query_timeout_next(1)
    failed = pipeline.invoke("fetch_changes", SCHEDULE_EVENT)
    assert failed.error["errorType"] == SalesforceQueryError.__name__
    assert failed.error["errorMessage"].startswith("QUERY_TIMEOUT")
    assert DynamoSyncStateStore().load_watermark("Account") == watermark
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "completed"
    assert queued_account_ids(pipeline) == [account]


def test_query_locators_expiring_again_and_again_restart_from_the_watermark_in_the_next_run(
    salesforce, fetch, pipeline
):
    # given more changed accounts than pages of 5 the adapter may restart through, and every cursor expiring
    # as soon as Salesforce has answered a page
    fetch.run()  # an initial load of an empty org (a Bulk API job): the next windows are REST queries
    ids = salesforce.bulk_create("Account", [{"Name": f"Account {n}"} for n in range(5 * (MAX_QUERY_RESTARTS + 3))])
    source = fetch.source(on_response=lambda response, **kwargs: salesforce.faults.invalidate_query_locators())
    state = DynamoSyncStateStore()
    # when a run meets one expired cursor too many
    watermark = state.load_watermark("Account")
    with pytest.raises(QueryLocatorExpired):
        fetch.run(source=source)
    # then the watermark stays, and the next run reads the whole window from it: every account queued once
    assert state.load_watermark("Account") == watermark
    report = fetch.run()
    assert report.outcome == "completed"
    assert sorted(queued_account_ids(pipeline)) == sorted(ids)
