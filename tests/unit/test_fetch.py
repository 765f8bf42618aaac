"""The fetch: windows with overlap, watermark discipline, leases, configuration errors."""

from __future__ import annotations

import pytest
from account_sync.contracts import AccountChangeMessage, ContactChangesMessage
from account_sync.domain.timestamps import EPOCH, shift
from account_sync.ports import ApiUsage, ConfigurationError, RecordedUsage, SalesforceBudgetExhausted
from account_sync.services.fetch_changes import (
    BUDGET_RECHECK_SECONDS,
    LEASE_MARGIN_SECONDS,
    FetchConfig,
    fetch_changes,
)

from tests.unit.factories import SYNCED, account_id, contact_id, stamp
from tests.unit.fakes import FakeSalesforce, FakeSyncState, RecordingPublisher


class Scenario:
    def __init__(self) -> None:
        self.salesforce = FakeSalesforce(fields=SYNCED)
        self.queue = RecordingPublisher()
        self.state = FakeSyncState()
        self.clock = stamp(10)

    def account(self, n: int, minute: int, second: int = 0, deleted: bool = False, **fields: object) -> None:
        row = {
            "Id": account_id(n),
            "SystemModstamp": stamp(minute, second).replace("Z", "+0000"),
            "IsDeleted": deleted,
            "Name": f"Account {n}",
            "Industry": "Energy",
            "BillingCountry": "France",
        }
        row.update(fields)
        self.salesforce.records["Account"].append(row)

    def contact(self, n: int, account: int, minute: int) -> None:
        self.salesforce.records["Contact"].append(
            {
                "Id": contact_id(n),
                "AccountId": account_id(account),
                "SystemModstamp": stamp(minute),
                "IsDeleted": False,
                "LastName": f"C{n}",
                "FirstName": None,
                "Email": None,
            }
        )

    def run_with(self, run_id: str = "run-1", **config: object):
        return fetch_changes(
            self.salesforce,
            self.queue,
            self.state,
            FetchConfig(SYNCED, lookback_seconds=120, **config),  # type: ignore[arg-type]
            now=lambda: self.clock,
            run_id=run_id,
        )

    def run(self, run_id: str = "run-1", lookback: int = 120, fields=SYNCED):
        return fetch_changes(
            self.salesforce,
            self.queue,
            self.state,
            FetchConfig(tuple(fields), lookback_seconds=lookback),
            now=lambda: self.clock,
            run_id=run_id,
        )


@pytest.fixture
def scenario() -> Scenario:
    return Scenario()


def test_first_run_reads_everything_accounts_before_contacts(scenario):
    scenario.account(1, minute=1)
    scenario.contact(1, account=1, minute=2)
    report = scenario.run()
    assert [type(m) for m in scenario.queue.messages] == [AccountChangeMessage, ContactChangesMessage]
    assert report.queued == {"Account": 1, "Contact": 1}
    assert scenario.salesforce.windows[0] == ("Account", EPOCH, stamp(10))
    assert scenario.state.watermarks == {"Account": stamp(10), "Contact": stamp(10)}


def test_contacts_travel_grouped_by_account_a_hundred_at_most_per_message(scenario):
    for n in range(250):
        scenario.contact(n, account=1 + n % 2, minute=1)
    scenario.contact(999, account=3, minute=2)
    report = scenario.run()
    sizes = sorted((m.group_id, len(m.versions)) for m in scenario.queue.messages)
    assert sizes == [
        (account_id(1), 25),
        (account_id(1), 100),
        (account_id(2), 25),
        (account_id(2), 100),
        (account_id(3), 1),
    ]
    assert report.queued["Contact"] == 251 and report.messages["Contact"] == 5


def test_the_next_window_overlaps_the_last_by_the_lookback(scenario):
    scenario.run()
    scenario.clock = stamp(15)
    scenario.run(run_id="run-2", lookback=120)
    assert scenario.salesforce.windows[-2] == ("Account", stamp(8), stamp(15))


def test_a_transaction_committed_late_with_an_earlier_stamp_is_caught_by_the_overlap(scenario):
    scenario.run()  # watermark 10:00
    scenario.account(7, minute=9, second=30)  # committed after the run, stamped before its end
    scenario.clock = stamp(15)
    scenario.run(run_id="run-2")
    assert [m.version.account_id for m in scenario.queue.messages] == [account_id(7)]


def test_records_sharing_a_timestamp_are_all_queued(scenario):
    for n in range(1, 6):
        scenario.account(n, minute=3)
    scenario.run()
    assert len(scenario.queue.messages) == 5


def test_deleted_records_are_queued_as_deletes_and_values_normalised(scenario):
    scenario.account(1, minute=3, deleted=True, AnnualRevenue=None)
    scenario.run()
    (message,) = scenario.queue.messages
    assert message.version.is_deleted and message.version.system_modstamp == stamp(3)


def test_a_crash_mid_window_leaves_the_watermark_and_the_next_run_reads_it_again(scenario):
    for n in range(1, 4):
        scenario.account(n, minute=n)
    scenario.salesforce.fail_after_records = 2
    with pytest.raises(RuntimeError):
        scenario.run()
    assert scenario.state.watermarks == {}
    assert scenario.state.lease_owner is None  # released on the way out
    scenario.salesforce.fail_after_records = None
    scenario.run(run_id="run-2")
    assert {m.version.account_id for m in scenario.queue.messages} == {account_id(1), account_id(2), account_id(3)}


def test_an_exhausted_api_budget_stops_and_leaves_the_watermark(scenario, monkeypatch):
    scenario.account(1, minute=1)

    def exhausted(*args, **kwargs):
        raise SalesforceBudgetExhausted("REQUEST_LIMIT_EXCEEDED")
        yield  # pragma: no cover

    monkeypatch.setattr(scenario.salesforce, "read_window", exhausted)
    with pytest.raises(SalesforceBudgetExhausted):
        scenario.run()
    assert scenario.state.watermarks == {}


def test_an_unknown_configured_field_is_a_clear_error_before_any_query(scenario):
    with pytest.raises(ConfigurationError, match="Not_A_Field__c"):
        scenario.run(fields=("Name", "Not_A_Field__c"))
    assert scenario.salesforce.windows == []


def test_a_second_run_while_one_holds_the_lease_does_nothing(scenario):
    scenario.state.lease_owner = "slow-run"
    report = scenario.run(run_id="duplicate-schedule-event")
    assert report.outcome == "skipped_another_run_active"
    assert scenario.salesforce.windows == [] and scenario.state.lease_owner == "slow-run"


def test_the_watermark_never_moves_back(scenario):
    scenario.state.watermarks = {"Account": stamp(20), "Contact": stamp(20)}
    scenario.run()  # a run whose clock says 10:00 finishing late
    assert scenario.state.watermarks == {"Account": stamp(20), "Contact": stamp(20)}


# --- a window of any size drains over successive runs -------------------------------------------------------


class LambdaClock:
    """The Lambda context's remaining time, running down by `ms_per_record` for each record read."""

    def __init__(self, budget_ms: int, ms_per_record: int) -> None:
        self.budget_ms = budget_ms
        self.ms_per_record = ms_per_record
        self.left = budget_ms

    def start_run(self) -> None:
        self.left = self.budget_ms

    def tick(self) -> None:
        self.left -= self.ms_per_record

    def remaining_ms(self) -> int:
        return self.left


def resumable_run(scenario: Scenario, clock: LambdaClock, run_id: str, **config: object):
    clock.start_run()
    return fetch_changes(
        scenario.salesforce,
        scenario.queue,
        scenario.state,
        FetchConfig(SYNCED, lookback_seconds=120, checkpoint_records=10, stop_margin_ms=1000, **config),
        now=lambda: scenario.clock,
        run_id=run_id,
        remaining_ms=clock.remaining_ms,
    )


def test_a_window_larger_than_one_run_can_queue_drains_over_successive_runs_each_change_queued_once(scenario):
    # given 95 changed accounts and a run that has time to read about 30 records before its stop margin
    for n in range(95):
        scenario.account(n, minute=1 + n % 8, second=n % 60)
    clock = LambdaClock(budget_ms=4000, ms_per_record=100)
    scenario.salesforce.on_record = clock.tick
    # when the schedule fires run after run (the clock of Salesforce moving on meanwhile)
    reports = []
    for run in range(1, 10):
        reports.append(resumable_run(scenario, clock, f"run-{run}"))
        scenario.clock = stamp(10 + run)
        if reports[-1].outcome == "completed":
            break
    # then the first runs stopped cleanly before their timeout, each resuming where the last one stopped
    assert [r.outcome for r in reports[:-1]] == ["paused_before_timeout"] * (len(reports) - 1)
    assert len(reports) >= 3 and reports[-1].outcome == "completed"
    assert all(r.windows["Account"] == [EPOCH, stamp(10)] for r in reports)  # one window, its bounds fixed
    # and every change was queued exactly once, in (SystemModstamp, Id) order across the runs
    queued = [m.version.account_id for m in scenario.queue.messages]
    assert len(queued) == 95 and len(set(queued)) == 95
    assert scenario.state.watermarks["Account"] == stamp(10) and scenario.state.progress == {}


def test_a_run_killed_after_a_checkpoint_reads_again_only_what_followed_it(scenario):
    # given 35 changed accounts, and a run killed (nothing after the kill runs) at its 26th record
    for n in range(35):
        scenario.account(n, minute=1, second=n)
    scenario.salesforce.fail_after_records = 25
    clock = LambdaClock(budget_ms=600_000, ms_per_record=1)
    with pytest.raises(RuntimeError):
        resumable_run(scenario, clock, "killed")
    # then its checkpoints (every 10 records) are kept
    assert scenario.state.progress["Account"].position["after_id"] == account_id(19)
    # and the next run resumes from the last one: the 20 records queued before it are not queued again
    scenario.salesforce.fail_after_records = None
    scenario.state.lease_owner = None  # the killed run's lease has expired
    assert resumable_run(scenario, clock, "next").outcome == "completed"
    queued = [m.version.account_id for m in scenario.queue.messages]
    assert sorted(queued) == sorted(account_id(n) for n in range(35))


def test_the_lease_ends_with_the_lambdas_own_deadline(scenario):
    clock = LambdaClock(budget_ms=240_000, ms_per_record=1)
    resumable_run(scenario, clock, "run-1")
    assert scenario.state.lease_seconds == 240 + LEASE_MARGIN_SECONDS


def test_contacts_wait_for_the_accounts_window_to_be_done(scenario):
    # given more accounts than one run reads, and a contact changed in the same window
    for n in range(40):
        scenario.account(n, minute=2)
    scenario.contact(1, account=39, minute=3)
    clock = LambdaClock(budget_ms=3000, ms_per_record=100)
    scenario.salesforce.on_record = clock.tick
    # when the first run stops inside the accounts' window
    assert resumable_run(scenario, clock, "run-1").outcome == "paused_before_timeout"
    # then no contact was read yet: its account may be among those still to queue
    assert not any(isinstance(m, ContactChangesMessage) for m in scenario.queue.messages)
    while resumable_run(scenario, clock, "again").outcome != "completed":
        pass
    kinds = [type(m) for m in scenario.queue.messages]
    assert kinds[-1] is ContactChangesMessage and kinds.count(ContactChangesMessage) == 1


# --- the API budget: decided from the last known usage, before any call ---------------------------------


def test_once_the_budget_is_known_spent_a_run_makes_no_salesforce_call_until_the_usage_is_old(scenario):
    scenario.account(1, minute=1)
    scenario.state.usage = RecordedUsage(ApiUsage(used=60_000, limit=100_000), measured_at=stamp(9))
    report = scenario.run_with(api_budget_share=0.5)
    assert report.outcome == "skipped_api_budget" and scenario.salesforce.calls == 0
    assert scenario.state.lease_owner is None and scenario.state.watermarks == {}
    scenario.clock = shift(stamp(9), BUDGET_RECHECK_SECONDS)  # an hour after it was measured: ask again
    assert scenario.run_with(api_budget_share=0.5).outcome == "completed"
    assert scenario.salesforce.calls > 0


@pytest.mark.parametrize(("used", "outcome"), [(49_999, "completed"), (50_000, "skipped_api_budget")])
def test_the_budget_is_spent_from_the_share_itself(scenario, used, outcome):
    # the adapter stops at the share itself (usage >= share): a run decides the same way, before any call
    scenario.state.usage = RecordedUsage(ApiUsage(used=used, limit=100_000), measured_at=stamp(9))
    assert scenario.run_with(api_budget_share=0.5).outcome == outcome
    assert (scenario.salesforce.calls == 0) == (outcome == "skipped_api_budget")


def test_a_budget_stop_records_the_usage_that_stopped_it(scenario, monkeypatch):
    scenario.salesforce.usage = ApiUsage(used=50_001, limit=100_000)

    def exhausted(*args, **kwargs):
        raise SalesforceBudgetExhausted("50001 of 100000")
        yield  # pragma: no cover

    monkeypatch.setattr(scenario.salesforce, "read_window", exhausted)
    with pytest.raises(SalesforceBudgetExhausted):
        scenario.run_with(api_budget_share=0.5)
    assert scenario.state.usage == RecordedUsage(ApiUsage(50_001, 100_000), stamp(10))


def test_request_limit_exceeded_with_no_usage_known_records_the_allocation_as_spent(scenario, monkeypatch):
    def refused(*args, **kwargs):
        raise SalesforceBudgetExhausted("REQUEST_LIMIT_EXCEEDED")
        yield  # pragma: no cover

    monkeypatch.setattr(scenario.salesforce, "read_window", refused)
    with pytest.raises(SalesforceBudgetExhausted):
        scenario.run_with(api_budget_share=0.5)
    assert scenario.state.usage is not None and scenario.state.usage.usage.share == 1.0


# --- the sweep: transactions committing later than the lookback ------------------------------------------


def test_a_change_committed_later_than_the_lookback_is_fetched_by_the_next_sweep(scenario):
    # given a synced org, regular runs every 5 minutes with a 2-minute lookback, and an hourly sweep
    sweep = {"reconcile_interval_seconds": 3600, "reconcile_lookback_seconds": 3600}
    scenario.run_with(**sweep)
    scenario.clock = stamp(15)
    scenario.run_with(**sweep)
    # when a transaction stamped 10:05 commits at 10:40, long after the runs passed its stamp
    for minute in (20, 25, 30, 35):
        scenario.clock = stamp(minute)
        scenario.run_with(**sweep)
    scenario.account(7, minute=5)
    scenario.clock = stamp(40)
    regular = scenario.run_with(**sweep)
    # then the regular window misses it (its overlap reaches back to 10:33 only)
    assert regular.queued["Account"] == 0 and "Account.sweep" not in regular.windows
    assert regular.sweep_lag_seconds == 30 * 60  # the sweep last ended at 10:10
    # and the first run an hour after the last sweep reads the wide window and queues it
    an_hour_later = shift(stamp(10), 3600)
    scenario.clock = an_hour_later
    swept = scenario.run_with(**sweep)
    assert swept.windows["Account.sweep"] == [shift(stamp(10), -3600), an_hour_later]
    assert swept.swept["Account"] == 1 and [m.version.account_id for m in scenario.queue.messages] == [account_id(7)]
    assert scenario.state.watermarks["Account.sweep"] == an_hour_later and swept.sweep_lag_seconds == 0
