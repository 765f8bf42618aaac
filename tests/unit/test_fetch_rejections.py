"""A change the queue can never take is set aside and reported, and the fetch goes on: it used to fail every
run at that record, so the watermark never moved again and every later change of every account waited."""

from __future__ import annotations

import pytest
from account_sync.contracts import AccountChangeMessage
from account_sync.ports import MessagesRejected, RejectedMessage
from account_sync.services.fetch_changes import FetchConfig, fetch_changes

from tests.support.cfn_template import load_template
from tests.unit.factories import SYNCED, account_id, contact_id, stamp
from tests.unit.fakes import FakeSalesforce, FakeSyncState, RecordingPublisher


class RefusingPublisher:
    """Queues every message but those of `too_large` accounts, which it names as MessagesRejected does."""

    def __init__(self, too_large: set[str]) -> None:
        self.too_large = too_large
        self.messages: list = []

    def publish(self, messages) -> None:
        refused = [
            m for m in messages if isinstance(m, AccountChangeMessage) and m.version.account_id in self.too_large
        ]
        self.messages += [m for m in messages if m not in refused]
        if refused:
            raise MessagesRejected([RejectedMessage(m, "300000 bytes, over the queue's 262144") for m in refused])


def test_an_account_too_large_for_the_queue_is_reported_and_the_window_completes():
    # given three changed accounts, the second one with a description far larger than a queue message
    salesforce, state = FakeSalesforce(fields=(*SYNCED, "Description")), FakeSyncState()
    for n in (1, 2, 3):
        salesforce.records["Account"].append(
            {
                "Id": account_id(n),
                "SystemModstamp": stamp(n),
                "IsDeleted": False,
                "Name": f"Account {n}",
                "Description": "x" * (300_000 if n == 2 else 10),
            }
        )
    publisher = RefusingPublisher(too_large={account_id(2)})
    # when the fetch runs
    report = fetch_changes(
        salesforce, publisher, state, FetchConfig((*SYNCED, "Description")), now=lambda: stamp(10), run_id="run-1"
    )
    # then the two others are queued, the large one is reported without its values, and the watermark moved on
    assert [m.version.account_id for m in publisher.messages] == [account_id(1), account_id(3)]
    assert report.queued["Account"] == 2 and report.outcome == "completed"
    (rejected,) = report.rejected
    assert rejected == {
        "sobject": "Account",
        "reason": "300000 bytes, over the queue's 262144",
        "record_id": account_id(2),
        "system_modstamp": stamp(2),
        "largest_fields": {"Description": 300_002, "Name": 11, "Industry": 4},
    }
    assert state.watermarks["Account"] == stamp(10)


@pytest.mark.parametrize(
    ("alarm_id", "metric"),
    [("RejectedChangesAlarm", "RejectedChanges"), ("PendingChangesDroppedAlarm", "PendingChangesDropped")],
)
def test_the_alarms_on_what_is_set_aside_or_dropped_watch_the_metrics_the_functions_emit(alarm_id, metric):
    template = load_template()
    alarm = template["Resources"][alarm_id]["Properties"]
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (metric, 0, "GreaterThanThreshold")


def test_the_sweep_behind_alarm_watches_the_emitted_lag_against_two_reconcile_intervals():
    template = load_template()
    alarm = template["Resources"]["SweepBehindAlarm"]["Properties"]
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    lag, ratio = alarm["Metrics"]
    metric = lag["MetricStat"]["Metric"]
    assert metric["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert metric["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert (metric["MetricName"], lag["MetricStat"]["Stat"], lag["ReturnData"]) == ("SweepLagSeconds", "Maximum", False)
    assert ratio["Expression"] == {"Fn::Sub": f"{lag['Id']} / ${{ReconcileIntervalSeconds}}"}
    assert ratio["ReturnData"] is True
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (2, "GreaterThanThreshold")
    assert "ReconcileIntervalSeconds" in template["Parameters"]


def _fetch_accounts(*descriptions: object):
    salesforce, state = FakeSalesforce(fields=(*SYNCED, "AnnualRevenue")), FakeSyncState()
    for n, revenue in enumerate(descriptions, start=1):
        salesforce.records["Account"].append(
            {"Id": account_id(n), "SystemModstamp": stamp(n), "IsDeleted": False, "Name": "A", "AnnualRevenue": revenue}
        )
    publisher = RecordingPublisher()
    report = fetch_changes(
        salesforce, publisher, state, FetchConfig((*SYNCED, "AnnualRevenue")), now=lambda: stamp(10), run_id="run-1"
    )
    return publisher, state, report


def test_an_account_with_a_value_dynamodb_cannot_store_is_set_aside_and_the_window_completes():
    # given three changed accounts, the second with a revenue of more than 38 significant digits
    publisher, state, report = _fetch_accounts(1.5, int("9" * 40), 2.5)
    # then the two others are queued, the bad one is reported (its field and the problem, not the value) and the
    # watermark moved on: it never reaches the queue, so it can never fail a write
    assert [m.version.account_id for m in publisher.messages] == [account_id(1), account_id(3)]
    assert report.queued["Account"] == 2 and state.watermarks["Account"] == stamp(10)
    (rejected,) = report.rejected
    assert rejected["record_id"] == account_id(2) and rejected["system_modstamp"] == stamp(2)
    assert rejected["reason"] == "AnnualRevenue: a number of more than 38 significant digits"
    assert "9999" not in str(rejected)


def test_nan_infinity_and_numbers_outside_dynamodbs_range_are_set_aside():
    publisher, _, report = _fetch_accounts(float("nan"), float("inf"), 1e126, 1e-131, 0.0)
    assert [m.version.account_id for m in publisher.messages] == [account_id(5)]  # zero is fine
    assert [r["record_id"] for r in report.rejected] == [account_id(n) for n in (1, 2, 3, 4)]


def test_contacts_without_an_account_each_travel_in_their_own_group():
    # given five account-less contacts and three of one account, in one window
    salesforce, state = FakeSalesforce(fields=SYNCED), FakeSyncState()
    for n in range(1, 9):
        salesforce.records["Contact"].append(
            {
                "Id": contact_id(n),
                "SystemModstamp": stamp(n),
                "IsDeleted": False,
                "AccountId": account_id(1) if n > 5 else None,
                "LastName": "L",
            }
        )
    publisher = RecordingPublisher()
    fetch_changes(salesforce, publisher, state, FetchConfig(SYNCED), now=lambda: stamp(10), run_id="run-1")
    # then each account-less contact is a message of its own group (its id), and the account's three share one
    groups = [(m.group_id, len(m.versions)) for m in publisher.messages]
    assert sorted(groups) == sorted([(contact_id(n), 1) for n in range(1, 6)] + [(account_id(1), 3)])


def test_a_contact_whose_text_dynamodb_cannot_store_is_set_aside():
    salesforce, state = FakeSalesforce(fields=SYNCED), FakeSyncState()
    for n, name in enumerate(["Ok", "bad\ud800", "Ok"], start=1):
        salesforce.records["Contact"].append(
            {"Id": contact_id(n), "SystemModstamp": stamp(n), "IsDeleted": False, "AccountId": None, "LastName": name}
        )
    publisher = RecordingPublisher()
    report = fetch_changes(salesforce, publisher, state, FetchConfig(SYNCED), now=lambda: stamp(10), run_id="run-1")
    assert sorted(m.group_id for m in publisher.messages) == [contact_id(1), contact_id(3)]
    (rejected,) = report.rejected
    assert rejected == {
        "sobject": "Contact",
        "reason": "LastName: text is not valid Unicode (a lone surrogate)",
        "record_ids": [contact_id(2)],
    }
    assert report.queued["Contact"] == 2
