"""The fetch: windows with overlap, watermark discipline, leases, configuration errors."""

from __future__ import annotations

import pytest
from account_sync.contracts import AccountChangeMessage, ContactChangesMessage
from account_sync.domain.timestamps import EPOCH
from account_sync.ports import ConfigurationError, SalesforceBudgetExhausted
from account_sync.services.fetch_changes import FetchConfig, fetch_changes

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
