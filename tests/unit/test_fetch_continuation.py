"""A run paused by its remaining time starts the next at once; one stopped otherwise waits for the schedule.

The next run is an asynchronous invocation of the fetch's own function (`RunContinuation`). Here a fake records
the events it was given, and the test plays Lambda: it runs each recorded event as the next run.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from account_sync.adapters.lambda_invoke import LambdaRunContinuation
from account_sync.ports import ApiUsage, ContinuationFailed, QueueSendError, RecordedUsage, SalesforceBudgetExhausted
from account_sync.services.fetch_changes import FetchConfig, FetchContinuation, FetchReport, fetch_changes
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.factories import SYNCED, account_id, stamp
from tests.unit.fakes import FakeSyncState, RecordingPublisher
from tests.unit.test_fetch import LambdaClock, Scenario


class RecordingContinuation:
    """Records the next runs asked for, and whether the asking run still held the lease at that moment."""

    def __init__(self, state: FakeSyncState, fails: bool = False) -> None:
        self.state = state
        self.fails = fails
        self.events: list[Mapping[str, object]] = []
        self.lease_held: list[bool] = []

    def start_next_run(self, event: Mapping[str, object]) -> None:
        self.lease_held.append(self.state.lease_owner is not None)
        if self.fails:
            raise ContinuationFailed("TooManyRequestsException")
        self.events.append(event)


def paused_run(
    scenario: Scenario, clock: LambdaClock, continuation: RecordingContinuation, event: object, run_id: str, limit=20
) -> FetchReport:
    clock.start_run()
    return fetch_changes(
        scenario.salesforce,
        scenario.queue,
        scenario.state,
        FetchConfig(SYNCED, checkpoint_records=10, stop_margin_ms=1000, continuation_limit=limit),
        now=lambda: scenario.clock,
        run_id=run_id,
        remaining_ms=clock.remaining_ms,
        continuation=continuation,
        chain=FetchContinuation.from_event(event).chain,
    )


def large_window(scenario: Scenario, accounts: int) -> LambdaClock:
    """`accounts` changed accounts, and runs with time for about 30 records before their stop margin."""
    for n in range(accounts):
        scenario.account(n, minute=1 + n % 8, second=n % 60)
    clock = LambdaClock(budget_ms=4000, ms_per_record=100)
    scenario.salesforce.on_record = clock.tick
    return clock


def test_a_paused_run_starts_the_next_at_once_and_the_chain_drains_the_window():
    # given a window larger than one run can queue
    scenario = Scenario()
    clock = large_window(scenario, 95)
    continuation = RecordingContinuation(scenario.state)
    # when the schedule starts a run, and every run the last one asked for is run at once (as Lambda would)
    reports = [paused_run(scenario, clock, continuation, {}, "scheduled")]
    while len(continuation.events) == len(reports) and len(reports) < 20:
        reports.append(paused_run(scenario, clock, continuation, continuation.events[-1], f"next-{len(reports)}"))
    # then each paused run started exactly one next run, as the next link of the chain, once its lease was released
    assert [r.outcome for r in reports[:-1]] == ["paused_before_timeout"] * (len(reports) - 1)
    assert len(reports) >= 3 and reports[-1].outcome == "completed"
    assert [r.chain for r in reports] == list(range(len(reports)))
    assert [r.continued for r in reports] == ["started"] * (len(reports) - 1) + [None]
    assert continuation.events == [{"continuation": {"chain": n}} for n in range(1, len(reports))]
    assert continuation.lease_held == [False] * (len(reports) - 1)
    # and the chain resumed where each run stopped: every change queued once, the window done
    queued = [m.version.account_id for m in scenario.queue.messages]
    assert sorted(queued) == sorted(account_id(n) for n in range(95))
    assert scenario.state.watermarks["Account"] == stamp(10) and scenario.state.progress == {}


@settings(max_examples=30, deadline=None)
@given(limit=st.integers(min_value=0, max_value=6), accounts=st.integers(min_value=31, max_value=400))
def test_a_chain_never_runs_more_than_its_limit_back_to_back(limit, accounts):
    # given a window of any size and any limit
    scenario = Scenario()
    clock = large_window(scenario, accounts)
    continuation = RecordingContinuation(scenario.state)
    # when the schedule starts a run and each asked-for run is run at once
    reports = [paused_run(scenario, clock, continuation, {}, "scheduled", limit=limit)]
    while len(continuation.events) == len(reports):
        reports.append(paused_run(scenario, clock, continuation, continuation.events[-1], "next", limit=limit))
    # then at most limit + 1 runs went back to back; a chain cut by its limit says so, and the schedule goes on
    assert len(reports) <= limit + 1
    if reports[-1].outcome == "paused_before_timeout":
        assert len(reports) == limit + 1 and reports[-1].continued == "chain_limit"
        assert paused_run(scenario, clock, continuation, {}, "next schedule", limit=limit).chain == 0


def test_a_run_stopped_by_the_api_budget_starts_no_next_run(monkeypatch):
    scenario = Scenario()
    large_window(scenario, 50)
    continuation = RecordingContinuation(scenario.state)

    def exhausted(*args, **kwargs):
        raise SalesforceBudgetExhausted("REQUEST_LIMIT_EXCEEDED")
        yield  # pragma: no cover

    monkeypatch.setattr(scenario.salesforce, "read_window", exhausted)
    with pytest.raises(SalesforceBudgetExhausted):
        paused_run(scenario, LambdaClock(4000, 100), continuation, {}, "run")
    assert continuation.events == [] and continuation.lease_held == []


def test_a_run_that_fails_starts_no_next_run():
    # given a run whose queue fails after its first checkpoint
    scenario = Scenario()
    clock = large_window(scenario, 50)
    continuation = RecordingContinuation(scenario.state)

    class FailingQueue(RecordingPublisher):
        def publish(self, messages):
            if self.messages:
                raise QueueSendError("1 of 10 messages not queued after 5 attempts")
            super().publish(messages)

    scenario.queue = FailingQueue()
    with pytest.raises(QueueSendError):
        paused_run(scenario, clock, continuation, {"continuation": {"chain": 3}}, "run")
    assert continuation.events == []


def test_a_run_that_finds_another_run_active_starts_none():
    scenario = Scenario()
    clock = large_window(scenario, 50)
    continuation = RecordingContinuation(scenario.state)
    scenario.state.lease_owner = "another run"
    assert paused_run(scenario, clock, continuation, {}, "run").outcome == "skipped_another_run_active"
    assert continuation.events == []


def test_a_run_that_finds_the_budget_spent_starts_none():
    scenario = Scenario()
    clock = large_window(scenario, 50)
    continuation = RecordingContinuation(scenario.state)
    scenario.state.usage = RecordedUsage(ApiUsage(used=90, limit=100), scenario.clock)
    clock.start_run()
    report = fetch_changes(
        scenario.salesforce,
        scenario.queue,
        scenario.state,
        FetchConfig(SYNCED, api_budget_share=0.5, checkpoint_records=10, stop_margin_ms=1000),
        now=lambda: scenario.clock,
        run_id="run",
        remaining_ms=clock.remaining_ms,
        continuation=continuation,
        chain=2,
    )
    assert report.outcome == "skipped_api_budget" and continuation.events == []


def test_a_next_run_that_cannot_be_started_leaves_it_to_the_schedule():
    scenario = Scenario()
    clock = large_window(scenario, 50)
    continuation = RecordingContinuation(scenario.state, fails=True)
    report = paused_run(scenario, clock, continuation, {}, "run")
    assert report.outcome == "paused_before_timeout"
    assert report.continued == "failed: TooManyRequestsException"
    assert scenario.state.progress  # the position is saved: the next scheduled run resumes there


def test_a_run_without_a_continuation_pauses_as_before():
    scenario = Scenario()
    clock = large_window(scenario, 50)
    clock.start_run()
    report = fetch_changes(
        scenario.salesforce,
        scenario.queue,
        scenario.state,
        FetchConfig(SYNCED, checkpoint_records=10, stop_margin_ms=1000),
        now=lambda: scenario.clock,
        run_id="run",
        remaining_ms=clock.remaining_ms,
    )
    assert report.outcome == "paused_before_timeout" and report.continued is None


@pytest.mark.parametrize(
    ("event", "chain"),
    [
        ({}, 0),  # the schedule's (ScheduleV2: an empty object)
        ({"resync": "all"}, 0),
        ({"continuation": {"chain": 4}}, 4),
        ({"continuation": {"chain": 0}}, 0),
        ({"continuation": {"chain": -2}}, 0),
        ({"continuation": {"chain": True}}, 0),
        ({"continuation": {"chain": "7"}}, 0),
        ({"continuation": 3}, 0),
        ("not an object", 0),
    ],
)
def test_the_link_of_a_chain_is_read_from_the_event_and_anything_else_is_a_first_run(event, chain):
    assert FetchContinuation.from_event(event).chain == chain
    if chain:
        assert FetchContinuation.from_event(FetchContinuation(chain).to_event()).chain == chain


# --- the adapter -------------------------------------------------------------------------------------------


class FakeLambda:
    def __init__(self, status: int = 202, error: Exception | None = None) -> None:
        self.status, self.error = status, error
        self.calls: list[dict] = []

    def invoke(self, **request):
        self.calls.append(request)
        if self.error:
            raise self.error
        return {"StatusCode": self.status}


def test_the_next_run_is_an_asynchronous_invocation_of_the_function_with_the_event():
    client, made = FakeLambda(), []
    continuation = LambdaRunContinuation("account-sync-dev-fetch-changes", make_client=lambda: made.append(1) or client)
    continuation.start_next_run({"continuation": {"chain": 2}})
    continuation.start_next_run({"continuation": {"chain": 3}})
    assert client.calls[0] == {
        "FunctionName": "account-sync-dev-fetch-changes",
        "InvocationType": "Event",
        "Payload": b'{"continuation": {"chain": 2}}',
    }
    assert len(client.calls) == 2 and made == [1]  # one client, made at the first continuation


@pytest.mark.parametrize(
    "client",
    [
        FakeLambda(error=ClientError({"Error": {"Code": "TooManyRequestsException"}}, "Invoke")),
        FakeLambda(status=200),
    ],
)
def test_an_invocation_lambda_refuses_is_a_continuation_failure(client):
    with pytest.raises(ContinuationFailed):
        LambdaRunContinuation("f", make_client=lambda: client).start_next_run({})
