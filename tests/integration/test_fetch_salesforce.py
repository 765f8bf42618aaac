"""The fetch through the real simple-salesforce client, over HTTPS, against the local Salesforce emulator.

Secrets Manager, the sync state table and the FIFO queue are moto, created from template.yaml.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import boto3
import pytest
from account_sync.adapters.salesforce import SalesforceRestSource
from account_sync.contracts import AccountChangeMessage, ContactChangesMessage, parse_change_message
from account_sync.domain.timestamps import shift, utc_now
from account_sync.ports import (
    ConfigurationError,
    SalesforceAuthError,
    SalesforceBudgetExhausted,
    SalesforceQueryError,
)
from account_sync.services.fetch_changes import FetchConfig, FetchReport, fetch_changes
from account_sync.settings import Settings, load_settings
from account_sync.wiring import build_change_publisher, build_sync_state, salesforce_source_factory
from local_stack.__main__ import build_parser
from local_stack.lambda_runtime import LambdaRuntime
from local_stack.salesforce_faults import parse_values, send_late_commit
from local_stack.template import lambda_functions
from salesforce_emulator import SalesforceEmulator

from tests.support.events import load_event
from tests.unit.fakes import RecordingPublisher

SYNCED = ("Name", "Industry", "BillingCountry")


@pytest.fixture
def emulator(salesforce, monkeypatch) -> SalesforceEmulator:
    """The shared emulator fixture, with the fetch syncing three fields and a 5-minute overlap."""
    monkeypatch.setenv("SYNCED_ACCOUNT_FIELDS", ",".join(SYNCED))
    monkeypatch.setenv("LOOKBACK_SECONDS", "300")
    return salesforce


class Fetch:
    """The fetch service with its real adapters; one `run()` is one scheduled cycle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.new_source = salesforce_source_factory(settings)
        self.publisher = build_change_publisher(settings)
        self.state = build_sync_state(settings)
        self.runs = 0
        self.last_source: SalesforceRestSource | None = None

    def run(self, fields=SYNCED) -> FetchReport:
        self.runs += 1
        self.last_source = self.new_source()
        config = FetchConfig(tuple(fields), lookback_seconds=self.settings.lookback_seconds)
        return fetch_changes(self.last_source, self.publisher, self.state, config, utc_now, f"run-{self.runs}")

    def queued(self) -> list:
        sqs = boto3.client("sqs")
        url = self.settings.account_changes_queue_url
        messages = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                messages.append(parse_change_message(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return messages


@pytest.fixture
def fetch(emulator) -> Fetch:
    return Fetch(load_settings())


def account_ids(messages) -> list[str]:
    return [m.version.account_id for m in messages if isinstance(m, AccountChangeMessage)]


def test_pages_through_every_changed_record_at_one_query_page_per_page(emulator, fetch):
    fetch.run()  # an initial load of an empty org: later windows are read by REST queries
    ids = emulator.bulk_create("Account", [{"Name": f"A{n}", "Industry": "Energy"} for n in range(12)])
    emulator.bulk_create("Contact", [{"LastName": f"C{n}", "AccountId": ids[0]} for n in range(7)])
    emulator.reset_request_log()
    report = fetch.run()
    assert report.queued == {"Account": 12, "Contact": 7}
    queued = fetch.queued()
    assert sorted(account_ids(queued)) == sorted(ids)
    assert sum(len(m.versions) for m in queued if isinstance(m, ContactChangesMessage)) == 7
    calls = [kind for method, kind in emulator.request_log if kind != "token"]
    assert len(calls) == 1 + 3 + 2  # describe, 12 accounts in pages of 5, 7 contacts in pages of 5
    assert report.api_calls == 6


def test_a_transaction_committing_late_with_an_earlier_stamp_is_not_missed(emulator, fetch):
    (late,) = emulator.bulk_create("Account", [{"Name": "Late"}])
    fetch.run()
    fetch.queued()
    emulator.commit_late("Account", late, {"Industry": "Committed late"}, seconds_ago=60)
    fetch.run()
    (message,) = fetch.queued()
    assert message.version.fields["Industry"] == "Committed late"


def test_records_sharing_one_timestamp_across_pages_are_all_queued_once(emulator, fetch):
    emulator.clock.freeze_at(datetime.now(UTC))
    ids = emulator.bulk_create("Account", [{"Name": f"Same stamp {n}"} for n in range(13)])
    emulator.clock.unfreeze()
    fetch.run()
    assert sorted(account_ids(fetch.queued())) == sorted(ids)


def test_an_expired_session_is_renewed_once(emulator, fetch):
    emulator.create("Account", {"Name": "Before"})
    fetch.run()
    emulator.faults.expire_sessions()
    emulator.create("Account", {"Name": "After"})
    emulator.reset_request_log()
    fetch.run()
    tokens = [kind for _, kind in emulator.request_log if kind == "token"]
    assert len(tokens) == 1
    assert "After" in [m.version.fields["Name"] for m in fetch.queued() if isinstance(m, AccountChangeMessage)]


def test_a_session_refused_again_after_renewal_fails_clearly(emulator, fetch, monkeypatch):
    source = fetch.new_source()
    authenticator = source._authenticator
    issue = authenticator.token

    def token_expiring_at_once(renew: bool = False):
        token = issue(renew=renew)
        emulator.faults.expire_sessions()
        return token

    monkeypatch.setattr(authenticator, "token", token_expiring_at_once)
    with pytest.raises(SalesforceAuthError, match="renewed session"):
        source.account_field_names()
    assert [kind for _, kind in emulator.request_log].count("token") == 2


def test_request_limit_exceeded_stops_and_leaves_the_watermark(emulator, fetch):
    emulator.create("Account", {"Name": "One"})
    fetch.run()
    watermark = fetch.state.load_watermark("Account")
    emulator.create("Account", {"Name": "Two"})
    emulator.faults.exhaust_daily_limit()
    with pytest.raises(SalesforceBudgetExhausted, match="REQUEST_LIMIT_EXCEEDED"):
        fetch.run()
    assert fetch.state.load_watermark("Account") == watermark


def test_the_configured_share_of_the_daily_limit_is_never_passed(emulator, fetch):
    emulator.create("Account", {"Name": "One"})
    _, limit = emulator.api_usage
    emulator.faults.set_api_usage(int(limit * 0.5))  # the default budget is 50 %
    with pytest.raises(SalesforceBudgetExhausted, match="daily API calls used"):
        fetch.run()
    assert emulator.api_usage[0] == int(limit * 0.5) + 1  # the describe that reported it, nothing after
    assert fetch.state.load_watermark("Account") is None


def test_server_errors_are_retried(emulator, fetch, monkeypatch):
    emulator.create("Account", {"Name": "Despite 503s"})
    emulator.faults.fail_next(count=2, status=503)
    report = fetch.run()
    assert report.queued["Account"] == 1


def test_an_unknown_configured_field_is_a_clear_error_and_no_query(emulator, fetch):
    emulator.reset_request_log()
    with pytest.raises(ConfigurationError, match="Not_A_Field__c"):
        fetch.run(fields=("Name", "Not_A_Field__c"))
    assert [kind for _, kind in emulator.request_log if kind in ("query", "queryAll")] == []


def test_an_invalid_query_locator_restarts_from_the_last_record_without_loss_or_repeat(emulator, fetch):
    ids = emulator.bulk_create("Account", [{"Name": f"A{n}"} for n in range(12)])
    source = fetch.new_source()
    end = shift(utc_now(), 60)  # the emulator's stamps run a few ms ahead after a bulk insert
    records = source.changed_records("Account", ["Id", "SystemModstamp"], "2000-01-01T00:00:00.000Z", end)
    seen = [next(records)["Id"] for _ in range(5)]
    emulator.faults.invalidate_query_locators()
    seen += [record["Id"] for record in records]
    assert seen == ids  # bulk ids are in stamp order


def test_the_fetch_handler_runs_a_cycle_from_the_schedule_event(emulator, function_env, stack_resources, sam_template):
    emulator.create("Account", {"Name": "Scheduled"})
    runtime = LambdaRuntime(lambda_functions(sam_template, stack_resources))
    runtime.add_env(
        {
            "SALESFORCE_TOKEN_URL": emulator.token_url,
            "SALESFORCE_CA_BUNDLE": emulator.ca_bundle,
            "SYNCED_ACCOUNT_FIELDS": ",".join(SYNCED),
        }
    )
    result = runtime.invoke("fetch_changes", load_event("fetch_schedule.json"))
    assert result.error is None, result.payload
    assert result.payload["outcome"] == "completed"
    assert result.payload["queued"]["Account"] == 1


def test_every_completed_run_reports_how_far_the_sweep_is_behind(
    emulator, function_env, stack_resources, sam_template, capsys
):
    """Issue 11, item 3: what the sweep cannot catch is made visible. `SweepLagSeconds` (the Account watermark
    minus the sweep's) is the metric an alarm watches: past ReconcileIntervalSeconds + ReconcileLookbackSeconds,
    a commit that late may go unseen."""
    emulator.create("Account", {"Name": "Scheduled"})
    runtime = LambdaRuntime(lambda_functions(sam_template, stack_resources))
    runtime.add_env(
        {
            "SALESFORCE_TOKEN_URL": emulator.token_url,
            "SALESFORCE_CA_BUNDLE": emulator.ca_bundle,
            "SYNCED_ACCOUNT_FIELDS": ",".join(SYNCED),
        }
    )
    lags = []
    for _ in range(2):
        time.sleep(0.05)
        result = runtime.invoke("fetch_changes", load_event("fetch_schedule.json"))
        assert result.error is None and result.payload["outcome"] == "completed", result.payload
        lags.append(result.payload["sweep_lag_seconds"])
    emitted = [
        line["SweepLagSeconds"]
        for line in map(json.loads, filter(None, capsys.readouterr().out.splitlines()))
        if "SweepLagSeconds" in line
    ]
    # the first run starts the sweep's clock at its own window's end; the second is behind by the time between them
    assert lags[0] == 0 and 0 < lags[1] < 60
    assert emitted == [[lag] for lag in lags], emitted


# --- large windows: Bulk API 2.0, resumable runs ---------------------------------------------------------------


def bulk_fetch(settings: Settings, **source_options) -> tuple[SalesforceRestSource, RecordingPublisher]:
    """The real Salesforce adapter (a new client, as each run has) and a publisher that only records: these tests
    count Salesforce calls, not queue sends."""
    factory = salesforce_source_factory(settings)
    source = factory()
    for name, value in source_options.items():
        setattr(source, f"_{name}", value)
    return source, RecordingPublisher()


def test_an_initial_load_is_read_by_bulk_jobs_at_fewer_than_one_call_per_ten_thousand_records(emulator, fetch):
    # given an org of 100,000 accounts and 20,000 contacts, never synced, whose query jobs take a poll to finish
    account_ids = emulator.bulk_create("Account", [{"Name": f"A{n}", "Industry": "Energy"} for n in range(100_000)])
    emulator.bulk_create("Contact", [{"LastName": f"C{n}", "AccountId": account_ids[n]} for n in range(20_000)])
    emulator.bulk.polls_in_progress = 1
    emulator.reset_request_log()
    source, queue = bulk_fetch(fetch.settings, sleep=lambda seconds: None)
    # when the first fetch runs
    report = fetch_changes(source, queue, fetch.state, FetchConfig(SYNCED), utc_now, "initial-load")
    # then every record is queued once, read by one query job per object
    assert report.outcome == "completed" and report.reads == {"Account": "bulk", "Contact": "bulk"}
    assert report.queued == {"Account": 100_000, "Contact": 20_000}
    assert len({m.version.account_id for m in queue.messages if isinstance(m, AccountChangeMessage)}) == 100_000
    # and the emulator counted fewer than one API call per 10,000 records
    calls = [kind for _, kind in emulator.request_log if kind != "token"]
    assert calls.count("bulk_job_create") == 2
    assert len(calls) <= 120_000 / 10_000, calls
    # and the values have the REST API's types (no spurious change against a REST read of the same record)
    first = next(m.version for m in queue.messages if isinstance(m, AccountChangeMessage))
    assert first.fields["Name"].startswith("A") and first.fields["BillingCountry"] is None
    assert first.is_deleted is False


def test_a_bulk_read_stopped_before_the_timeout_resumes_with_the_same_job_in_the_next_run(emulator, fetch):
    # given an initial load of 3,500 accounts read in pages of 1,000, and runs with time for about 1,500 records
    emulator.bulk_create("Account", [{"Name": f"A{n}"} for n in range(3_500)])
    remaining = {"ms": 0}

    class TimedPublisher(RecordingPublisher):
        def publish(self, messages) -> None:
            super().publish(messages)
            remaining["ms"] -= 20 * len(messages)

    queue = TimedPublisher()
    config = FetchConfig(SYNCED, checkpoint_records=500, stop_margin_ms=1_000)
    outcomes = []
    emulator.reset_request_log()
    for run in range(1, 8):
        remaining["ms"] = 21_000
        source, _ = bulk_fetch(fetch.settings, bulk_page_records=1_000)
        report = fetch_changes(
            source, queue, fetch.state, config, utc_now, f"run-{run}", remaining_ms=lambda: remaining["ms"]
        )
        outcomes.append(report.outcome)
        if report.outcome == "completed":
            break
    # then the load took several runs, one query job, and every account was queued once
    assert outcomes[0] == "paused_before_timeout" and outcomes[-1] == "completed" and len(outcomes) >= 3
    kinds = [kind for _, kind in emulator.request_log]
    assert kinds.count("bulk_job_create") == 2  # one per object: the Account job was resumed, never recreated
    ids = [m.version.account_id for m in queue.messages if isinstance(m, AccountChangeMessage)]
    assert len(ids) == 3_500 and len(set(ids)) == 3_500


def test_a_bulk_job_gone_before_the_next_run_is_replaced_and_nothing_is_lost(emulator, fetch):
    emulator.bulk_create("Account", [{"Name": f"A{n}"} for n in range(1_200)])
    remaining = {"ms": 31_000}

    class TimedPublisher(RecordingPublisher):
        def publish(self, messages) -> None:
            super().publish(messages)
            remaining["ms"] -= 50 * len(messages)

    queue = TimedPublisher()
    config = FetchConfig(SYNCED, checkpoint_records=500, stop_margin_ms=1_000)
    source, _ = bulk_fetch(fetch.settings, bulk_page_records=1_000)
    first = fetch_changes(source, queue, fetch.state, config, utc_now, "run-1", remaining_ms=lambda: remaining["ms"])
    assert first.outcome == "paused_before_timeout"
    emulator.bulk.delete_all()  # Salesforce deleted the job (or its results expired)
    source, _ = bulk_fetch(fetch.settings, bulk_page_records=1_000)
    second = fetch_changes(source, queue, fetch.state, config, utc_now, "run-2")
    assert second.outcome == "completed"
    ids = {m.version.account_id for m in queue.messages if isinstance(m, AccountChangeMessage)}
    assert len(ids) == 1_200


def test_a_change_committed_later_than_the_lookback_arrives_by_the_sweep(emulator, fetch):
    # given a synced org, a 5-minute lookback and an hourly sweep reaching an hour back
    (late,) = emulator.bulk_create("Account", [{"Name": "Late"}])
    config = FetchConfig(SYNCED, lookback_seconds=300, reconcile_interval_seconds=3600, reconcile_lookback_seconds=3600)
    source, queue = bulk_fetch(fetch.settings)
    fetch_changes(source, queue, fetch.state, config, utc_now, "initial")
    # when, from outside (the local stack's CLI uses the emulator's admin route), a transaction commits now with a
    # SystemModstamp 15 minutes old
    send_late_commit(emulator.url, emulator.ca_bundle, "Account", late, {"Industry": "Committed late"}, 900)
    # then the next regular run does not see it: its window reaches 5 minutes back only
    regular = fetch_changes(bulk_fetch(fetch.settings)[0], queue, fetch.state, config, utc_now, "regular")
    assert regular.outcome == "completed" and regular.queued["Account"] == 0
    # and the first run an hour later sweeps the last hour and queues it
    an_hour_later = lambda: shift(utc_now(), 3600)  # noqa: E731
    swept = fetch_changes(bulk_fetch(fetch.settings)[0], queue, fetch.state, config, an_hour_later, "sweep")
    assert swept.swept["Account"] == 1
    (message,) = [m for m in queue.messages[1:] if isinstance(m, AccountChangeMessage)]
    assert message.version.account_id == late and message.version.fields["Industry"] == "Committed late"


@pytest.mark.parametrize(("changed", "read"), [(20, "rest"), (21, "bulk")])
def test_a_window_is_read_by_rest_up_to_the_threshold_and_by_a_bulk_job_above_it(emulator, fetch, changed, read):
    # given a synced org where `changed` accounts then changed, and a threshold of 20 records
    ids = emulator.bulk_create("Account", [{"Name": f"A{n}"} for n in range(changed)])
    source, queue = bulk_fetch(fetch.settings)
    fetch_changes(source, queue, fetch.state, FetchConfig(SYNCED), utc_now, "initial")
    for account in ids:
        emulator.update("Account", account, {"Industry": "Retail"})
    time.sleep(0.05)  # the emulator's stamps run a few ms ahead after a burst of writes
    emulator.reset_request_log()
    # when the next run reads the window
    source, queue = bulk_fetch(fetch.settings, bulk_threshold=20)
    report = fetch_changes(source, queue, fetch.state, FetchConfig(SYNCED), utc_now, "window")
    # then a window of the threshold itself stays on REST pages, one record more goes to a query job
    assert report.reads == {"Account": read}
    kinds = [kind for _, kind in emulator.request_log if kind != "token"]
    if read == "bulk":  # after one REST page, which told the window's size (no contact changed: an empty page)
        assert kinds == ["describe", "queryAll", "bulk_job_create", "bulk_job", "bulk_results", "queryAll"]
    else:
        assert "bulk_job_create" not in kinds
    assert sorted(m.version.account_id for m in queue.messages) == sorted(ids)
    assert {m.version.fields["Industry"] for m in queue.messages} == {"Retail"}


def test_the_late_commit_command_takes_json_values_and_its_seconds():
    command = "late-commit Account 001000000000001AAA Industry=Retail NumberOfEmployees=12 --seconds-ago 60"
    args = build_parser().parse_args(command.split())
    assert (args.sobject, args.record_id, args.seconds_ago) == ("Account", "001000000000001AAA", 60.0)
    assert parse_values(args.values) == {"Industry": "Retail", "NumberOfEmployees": 12}
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        parse_values(["Industry"])


def test_a_rest_read_stopped_before_the_timeout_resumes_at_its_keyset_in_the_next_run(emulator, fetch):
    # given a synced org where 40 accounts then changed (REST pages of 5), and runs with time for about 15 records
    source, queue = bulk_fetch(fetch.settings)
    fetch_changes(source, queue, fetch.state, FetchConfig(SYNCED), utc_now, "initial")
    emulator.clock.freeze_at(datetime.now(UTC))  # a few share one stamp: the keyset resumes between them too
    ids = emulator.bulk_create("Account", [{"Name": f"A{n}"} for n in range(40)])
    emulator.clock.unfreeze()
    time.sleep(0.05)
    remaining = {"ms": 0}

    class TimedPublisher(RecordingPublisher):
        def publish(self, messages) -> None:
            super().publish(messages)
            remaining["ms"] -= 1_000 * len(messages)

    queue = TimedPublisher()
    config = FetchConfig(SYNCED, checkpoint_records=5, stop_margin_ms=1_000)
    reports = []
    emulator.reset_request_log()
    for run in range(1, 10):
        remaining["ms"] = 11_000
        source, _ = bulk_fetch(fetch.settings)
        time_left = lambda: remaining["ms"]  # noqa: E731
        reports.append(fetch_changes(source, queue, fetch.state, config, utc_now, f"run-{run}", remaining_ms=time_left))
        if reports[-1].outcome == "completed":
            break
    # then each run queued what its time allowed, the next one resuming at its keyset, each account once
    assert [r.outcome for r in reports[:-1]] == ["paused_before_timeout"] * (len(reports) - 1) and len(reports) >= 3
    assert all(r.reads.get("Account", "rest") == "rest" for r in reports)
    queued = [m.version.account_id for m in queue.messages if isinstance(m, AccountChangeMessage)]
    assert sorted(queued) == sorted(ids)


def test_a_failed_bulk_job_fails_the_run_clearly_and_the_next_run_reads_the_window_with_a_new_job(emulator, fetch):
    ids = emulator.bulk_create("Account", [{"Name": f"A{n}"} for n in range(7)])
    emulator.bulk.fail_next_job("Query failed: too many retries")
    with pytest.raises(SalesforceQueryError, match=r"BULK_JOB_LOST.*too many retries"):
        fetch.run()
    assert fetch.state.load_watermark("Account") is None
    report = fetch.run()
    assert report.outcome == "completed" and sorted(account_ids(fetch.queued())) == sorted(ids)
