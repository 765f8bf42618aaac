"""Guarantee 6: a fetch killed halfway loses nothing, and two fetch runs at once do the work once.

The watermark moves only once every change of its window is queued, so a run killed after queueing part of a
window leaves it where it was: the next run reads the window again and re-sends (SQS FIFO deduplication drops
what it already has; the store's version guards drop the rest). Runs take a lease on the sync state table first:
a run that starts while another holds it (a slow run overlapping the next schedule, a duplicated schedule event)
does nothing, and a run that saves an older window end than the one stored leaves the watermark where it is.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from account_sync.adapters.dynamodb import DynamoSyncStateStore
from account_sync.adapters.dynamodb_models import SyncStateItem
from account_sync.domain.timestamps import shift

from tests.integration.guarantees.conftest import SCHEDULE_EVENT, activity_keys, contact_fields
from tests.integration.guarantees.faults import Fault, Kill


def let_the_stamps_pass() -> None:
    """After a burst of writes the emulator's stamps (strictly increasing milliseconds) run a little ahead of
    the wall clock; a fetch window ends at the fetch's own clock. Wait until every change is inside the window."""
    time.sleep(0.2)


def given_a_synced_org(salesforce, pipeline, accounts: int = 12) -> tuple[list[str], list[str]]:
    """Accounts with one contact each in Salesforce, synced once by the fetch function and the pipeline."""
    account_ids = salesforce.bulk_create(
        "Account", [{"Name": f"Account {n}", "Industry": "Energy", "BillingCountry": "France"} for n in range(accounts)]
    )
    contact_ids = salesforce.bulk_create(
        "Contact", [{"LastName": f"Contact {n}", "AccountId": account_ids[n]} for n in range(accounts)]
    )
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "completed"
    assert pipeline.drain().empty
    return account_ids, contact_ids


def test_a_fetch_killed_after_queueing_part_of_a_window_is_completed_by_the_next_run(
    salesforce, fetch, pipeline, faults
):
    # given a synced org whose twelve accounts then changed in Salesforce
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline)
    state = DynamoSyncStateStore()
    watermark = state.load_watermark("Account")
    for account_id in account_ids:
        salesforce.update("Account", account_id, {"Industry": "Retail"})
    # when the fetch is killed (a timeout) after its first SendMessageBatch of ten went through
    let_the_stamps_pass()
    kill = faults.add(Fault("sqs", "SendMessageBatch", Kill(faults), after=1))
    killed = pipeline.invoke("fetch_changes", SCHEDULE_EVENT)
    assert kill.fired == 1 and killed.error["errorType"] == "Runtime.ExitError"
    faults.clear()
    # then the watermark did not move, and the run's lease keeps the next schedule out until it expires
    assert state.load_watermark("Account") == watermark
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "skipped_another_run_active"
    # and when the lease has expired (five minutes later), the next run reads the window again
    SyncStateItem(DynamoSyncStateStore.LEASE_ID).update(actions=[SyncStateItem.lease_expires_at.set(0)])
    rerun = pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload
    totals = pipeline.drain()
    # then the store is as if nothing had happened: every contact has the change, with one activity each
    assert rerun["outcome"] == "completed" and rerun["queued"]["Account"] == 12
    assert state.load_watermark("Account") > watermark
    assert totals.empty and pipeline.depth("AccountChangesDeadLetterQueue") == 0
    assert {fields["Industry"] for fields in contact_fields(contact_ids).values()} == {"Retail"}
    industry = [key for key in activity_keys() if key[1].endswith("#account#Industry")]
    assert sorted(subject for subject, _ in industry) == sorted(contact_ids)


def test_a_run_paused_by_its_remaining_time_starts_the_next_at_once_until_the_window_is_done(
    salesforce, fetch, pipeline
):
    # given an org to load (30 accounts, 4,100 contacts: read by Bulk API jobs, a checkpoint every 2,000 records),
    # and the fetch's Timeout cut to its stop margin (30 s), so that every run stops at its first checkpoint; no
    # lookback (the overlap a run after the accounts' window reads again is covered elsewhere)
    pipeline.runtime.add_env({"LOOKBACK_SECONDS": "0"})
    accounts = salesforce.bulk_create("Account", [{"Name": f"Account {n}", "Industry": "Energy"} for n in range(30)])
    salesforce.bulk_create("Contact", [{"LastName": f"C{n}", "AccountId": accounts[n % 30]} for n in range(4_100)])
    let_the_stamps_pass()
    spec = pipeline.runtime.spec("fetch_changes")
    pipeline.runtime._specs[spec.logical_id] = replace(spec, timeout=30)
    # when the schedule fires once, and Lambda runs what the runs invoke asynchronously
    first = pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload
    chain = [result.payload for result in pipeline.runtime.run_event_invocations()]
    # then the paused run started the next at once, each the next link, each resuming where the last one stopped,
    # until one completed the load: no run waited for a schedule, none found the lease held
    reports = [first, *chain]
    assert len(reports) >= 3
    assert [r["outcome"] for r in reports] == ["paused_before_timeout"] * (len(reports) - 1) + ["completed"]
    assert [r["chain"] for r in reports] == list(range(len(reports)))
    assert [r["continued"] for r in reports] == ["started"] * (len(reports) - 1) + [None]
    # and every record was queued once: the runs' reports add up to the org, and the queue holds their messages
    assert sum(r["queued"]["Account"] for r in reports) == 30
    assert sum(r["queued"]["Contact"] for r in reports) == 4_100
    assert pipeline.depth("AccountChangesQueue") == sum(sum(r["messages"].values()) for r in reports)


class SlowPublisher:
    """The publisher of a run that stalls before it queues anything, until `go` is set."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.waiting = threading.Event()
        self.go = threading.Event()

    def publish(self, messages) -> None:
        self.waiting.set()
        assert self.go.wait(10)
        self.inner.publish(messages)


def test_two_fetch_runs_at_once_do_the_work_once_and_the_watermark_only_moves_forward(salesforce, fetch, pipeline):
    # given twelve changed accounts, and a fetch run that stalls halfway through its window
    salesforce.bulk_create("Account", [{"Name": f"Account {n}"} for n in range(12)])
    slow = SlowPublisher(fetch.publisher)
    with ThreadPoolExecutor(max_workers=1) as background:
        first = background.submit(fetch.run, publisher=slow)
        assert slow.waiting.wait(10)
        # when the next schedule fires meanwhile (or the same schedule event is delivered twice)
        salesforce.reset_request_log()
        overlapping = pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload
        # then that run does nothing at all, not even a Salesforce call
        assert overlapping["outcome"] == "skipped_another_run_active"
        assert salesforce.request_log == []
        slow.go.set()
        report = first.result(timeout=30)
    state = DynamoSyncStateStore()
    assert report.outcome == "completed" and state.load_watermark("Account") == report.window_end
    # and when a run whose window ended earlier finishes late (its lease expired), the watermark stays
    late = fetch.run(now=lambda: shift(report.window_end, -60))
    assert late.outcome == "completed" and state.load_watermark("Account") == report.window_end
    # and the next scheduled run moves it forward; its overlap is read again and dropped as duplicates
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "completed"
    assert state.load_watermark("Account") > report.window_end
    totals = pipeline.drain()
    assert totals.received == 12 and totals.succeeded == 12
