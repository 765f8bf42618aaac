"""The fetch's side of a resync (issue 12, item 1): accounts read again by id, by window, or all of them, queued
as account changes carrying the resync's id; a window drains over runs from its checkpoint."""

from __future__ import annotations

import pytest
from account_sync.contracts import AccountChangeMessage
from account_sync.domain.timestamps import EPOCH
from account_sync.services.fetch_changes import (
    RESYNC_STREAM,
    FetchConfig,
    InvalidResync,
    ResyncRequest,
    fetch_changes,
)

from tests.unit.factories import SYNCED, account_id, stamp
from tests.unit.test_fetch import Scenario


def run(scenario: Scenario, resync: ResyncRequest | None, run_id: str = "run-1", **config: object):
    return fetch_changes(
        scenario.salesforce,
        scenario.queue,
        scenario.state,
        FetchConfig(SYNCED, lookback_seconds=120, checkpoint_records=2, **config),  # type: ignore[arg-type]
        now=lambda: scenario.clock,
        run_id=run_id,
        resync=resync,
    )


def resync_messages(scenario: Scenario) -> list[AccountChangeMessage]:
    return [m for m in scenario.queue.messages if isinstance(m, AccountChangeMessage) and m.resync_id]


@pytest.fixture
def synced() -> Scenario:
    """Five accounts, all read by a first run: the store is in step."""
    scenario = Scenario()
    for n in range(1, 6):
        scenario.account(n, minute=n)
    run(scenario, None)
    scenario.queue.messages.clear()
    return scenario


def test_named_accounts_are_read_again_by_id_and_queued_with_the_resync_id(synced):
    report = run(synced, ResyncRequest(account_ids=(account_id(2), account_id(4), account_id(9))))
    messages = resync_messages(synced)
    assert [m.version.account_id for m in messages] == [account_id(2), account_id(4)]
    assert len({m.resync_id for m in messages}) == 1
    assert report.resync is not None and report.resync["not_found"] == [account_id(9)]
    assert report.resync["queued"] == 2 and report.resync["done"] is True


def test_without_a_resync_a_run_in_step_queues_nothing(synced):
    report = run(synced, None)
    assert resync_messages(synced) == [] and report.resync is None


def test_a_window_reads_the_accounts_changed_in_it(synced):
    report = run(synced, ResyncRequest(since=stamp(1, 30), until=stamp(3)))
    assert [m.version.account_id for m in resync_messages(synced)] == [account_id(2), account_id(3)]
    assert report.resync is not None and report.resync["done"] is True
    assert synced.state.load_stream(RESYNC_STREAM).progress is None


def test_everything_drains_over_runs_at_a_bounded_number_of_records_a_run(synced):
    first = run(synced, ResyncRequest(everything=True), resync_records_per_run=2)
    assert first.resync is not None and (first.resync["queued"], first.resync["done"]) == (2, False)
    progress = synced.state.load_stream(RESYNC_STREAM).progress
    assert progress is not None and progress.start == EPOCH
    second = run(synced, None, run_id="run-2", resync_records_per_run=2)
    third = run(synced, None, run_id="run-3", resync_records_per_run=2)
    assert second.resync is not None and third.resync is not None
    assert (second.resync["queued"], third.resync["queued"], third.resync["done"]) == (2, 1, True)
    assert sorted(m.version.account_id for m in resync_messages(synced)) == [account_id(n) for n in range(1, 6)]
    assert len({m.resync_id for m in resync_messages(synced)}) == 1  # one resync, the same id in every run
    assert run(synced, None, run_id="run-4").resync is None


def test_a_resync_message_is_not_deduplicated_against_the_fetchs_message_of_the_same_version(synced):
    run(synced, ResyncRequest(account_ids=(account_id(1),)))
    (resynced,) = resync_messages(synced)
    assert resynced.deduplication_id != AccountChangeMessage(resynced.version).deduplication_id


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("everything", "resync must be"),
        ({"account_ids": []}, "non-empty list"),
        ({"account_ids": ["001' OR Name != '"]}, "not Salesforce ids"),
        ({"since": "yesterday"}, "ISO-8601"),
        ({"since": stamp(2), "until": stamp(1)}, "later than since"),
        ({"account_ids": [account_id(1)], "since": stamp(1)}, "not both"),
        ({"until": stamp(1)}, "needs since"),
        ({"ids": [account_id(1)]}, "unknown keys"),
    ],
)
def test_a_bad_request_is_a_clear_error(raw, problem):
    with pytest.raises(InvalidResync, match=problem):
        ResyncRequest.from_event(raw)


def test_requests_parse():
    assert ResyncRequest.from_event("all") == ResyncRequest(everything=True)
    assert ResyncRequest.from_event({"account_ids": [account_id(1), account_id(1)]}).account_ids == (account_id(1),)
    assert ResyncRequest.from_event({"since": "2026-11-27T10:01:00Z"}).since == stamp(1)


def test_an_earlier_window_than_the_last_resyncs_is_done_all_the_same(synced):
    run(synced, ResyncRequest(since=stamp(3), until=stamp(5)))
    report = run(synced, ResyncRequest(since=stamp(0), until=stamp(2)), run_id="run-2")
    assert report.resync is not None and report.resync["done"] is True
    assert run(synced, None, run_id="run-3").resync is None


def test_the_first_run_records_the_synced_fields_and_starts_no_resync(synced):
    assert synced.state.load_synced_fields() == SYNCED
    assert resync_messages(synced) == []


def test_a_changed_field_list_starts_a_resync_of_everything(synced):
    synced.salesforce.fields.add("Rating")
    fetch_changes(
        synced.salesforce,
        synced.queue,
        synced.state,
        FetchConfig((*SYNCED, "Rating"), lookback_seconds=120),
        now=lambda: synced.clock,
        run_id="run-2",
    )
    report = run(synced, None, run_id="run-3")  # the list is back as it was: another change
    assert report.fields_changed == {"added": [], "removed": ["Rating"]}
    assert synced.state.load_synced_fields() == SYNCED
    assert report.resync is not None and report.resync["done"] is True
    assert len(resync_messages(synced)) == 10  # every account, once per change of the list


def test_the_same_fields_in_another_order_start_no_resync(synced):
    fetch_changes(
        synced.salesforce,
        synced.queue,
        synced.state,
        FetchConfig(tuple(reversed(SYNCED)), lookback_seconds=120),
        now=lambda: synced.clock,
        run_id="run-2",
    )
    assert resync_messages(synced) == []


def drift_run(scenario: Scenario, world, run_id: str, **drift: object):
    from account_sync.services.drift import DriftConfig
    from account_sync.services.fetch_changes import DriftCheck

    check = DriftCheck(world.accounts, world.contacts, DriftConfig(SYNCED), **drift)  # type: ignore[arg-type]
    return fetch_changes(
        scenario.salesforce,
        scenario.queue,
        scenario.state,
        FetchConfig(SYNCED, lookback_seconds=120),
        now=lambda: scenario.clock,
        run_id=run_id,
        drift=check,
    )


def test_drift_is_checked_every_interval_the_first_run_starting_the_clock(synced):
    from tests.unit.test_fan_out import World

    world = World()  # an empty store: every account of Salesforce is missing from it
    first = drift_run(synced, world, "run-2", interval_seconds=3600)
    assert first.drift is None and synced.state.load_drift() is not None
    synced.clock = "2026-11-27T10:30:00.000Z"
    assert drift_run(synced, world, "run-3", interval_seconds=3600).drift is None  # not due yet
    synced.clock = "2026-11-27T11:30:00.000Z"
    due = drift_run(synced, world, "run-4", interval_seconds=3600)
    assert due.drift is not None and due.drift["checked"] == 5 and len(due.drift["drifted"]) == 5  # type: ignore[arg-type]
    assert synced.state.load_drift().drifted == tuple(due.drift["drifted"])  # type: ignore[arg-type]


def test_an_operators_drift_check_runs_now_and_repairs_by_a_resync(synced):
    from tests.unit.test_fan_out import World

    synced.clock = "2026-11-27T11:30:00.000Z"
    report = drift_run(synced, World(), "run-2", interval_seconds=None, forced=True, repair=True)
    assert report.drift is not None and report.drift["repaired"] == 5
    assert sorted(m.version.account_id for m in resync_messages(synced)) == [account_id(n) for n in range(1, 6)]
