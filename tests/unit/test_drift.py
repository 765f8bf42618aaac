"""Drift detection (issue 12, item 3): a rolling sample of accounts compared with the store; only a difference that
cannot be the sync in flight is drift, named by field, never by value."""

from __future__ import annotations

from account_sync.domain.records import LocalEdit
from account_sync.services.drift import DriftConfig, check_drift

from tests.unit.factories import SYNCED, account_id, account_version, contact_id, stamp
from tests.unit.fakes import FakeSalesforce
from tests.unit.test_fan_out import NOW, World

LATER = "2026-11-27T11:00:00.000Z"  # an hour after the versions: past the lag tolerance


def given_synced(world: World, salesforce: FakeSalesforce, accounts: int = 3) -> None:
    for n in range(1, accounts + 1):
        world.given_contacts(2, account=n)
        version = account_version(n, minute=1)
        world.sync(version)
        salesforce.records["Account"].append({"Id": version.account_id, "SystemModstamp": stamp(1), **version.fields})


def check(world: World, salesforce: FakeSalesforce, after_id=None, per_run: int = 10, now: str = LATER):
    config = DriftConfig(SYNCED, accounts_per_run=per_run, contacts_per_account=5)
    return check_drift(salesforce, world.accounts, world.contacts, config, after_id, now)


def test_a_store_in_step_has_no_drift():
    world, salesforce = World(), FakeSalesforce(SYNCED)
    given_synced(world, salesforce)
    report = check(world, salesforce)
    assert (report.checked, report.contacts_checked, report.drifted) == (3, 6, [])
    assert salesforce.calls == 1  # one query for the whole sample


def test_a_contact_changed_behind_the_stores_back_is_drift_named_by_field():
    world, salesforce = World(), FakeSalesforce(SYNCED)
    given_synced(world, salesforce)
    world.contact(1, account=2).account_fields["Industry"] = "Confidential"
    report = check(world, salesforce)
    assert report.drifted == [
        {"account_id": account_id(2), "problem": f"contact {contact_id(2_000_001)} fields differ: Industry"}
    ]
    assert "Confidential" not in str(report.drifted)


def test_an_account_item_that_differs_at_the_same_version_is_drift():
    world, salesforce = World(), FakeSalesforce(SYNCED)
    given_synced(world, salesforce)
    salesforce.records["Account"][0]["Name"] = "Renamed without a new stamp"
    assert check(world, salesforce).drifted == [{"account_id": account_id(1), "problem": "account fields differ: Name"}]


def test_a_newer_version_is_drift_only_past_the_lag_tolerance():
    world, salesforce = World(), FakeSalesforce(SYNCED)
    given_synced(world, salesforce)
    salesforce.records["Account"][2].update(SystemModstamp=stamp(5), Industry="Retail")
    assert check(world, salesforce, now=stamp(10)).drifted == []  # 5 minutes: in flight
    assert check(world, salesforce).drifted == [{"account_id": account_id(3), "problem": "behind Salesforce"}]


def test_an_account_missing_from_the_store_is_drift():
    world, salesforce = World(), FakeSalesforce(SYNCED)
    given_synced(world, salesforce, accounts=1)
    salesforce.records["Account"].append({"Id": account_id(9), "SystemModstamp": stamp(2), "Name": "New"})
    assert check(world, salesforce).drifted == [{"account_id": account_id(9), "problem": "not in the store"}]


def test_a_local_edit_over_the_version_is_not_drift():
    world, salesforce = World(), FakeSalesforce(SYNCED)
    given_synced(world, salesforce, accounts=1)
    world.edit(LocalEdit("e1", contact_id(1_000_000), account_id(1), "Industry", "Local", NOW))
    assert check(world, salesforce).drifted == []


def test_the_sample_rolls_over_every_account_in_turn():
    world, salesforce = World(), FakeSalesforce(SYNCED)
    given_synced(world, salesforce)
    first = check(world, salesforce, per_run=2)
    second = check(world, salesforce, after_id=first.after_id, per_run=2)
    assert (first.checked, first.after_id) == (2, account_id(2))
    assert (second.checked, second.after_id) == (1, None)  # the end: the next check starts again
