"""Resync (issue 12, item 1), on moto from template.yaml and the Salesforce emulator, through the real fetch and
fan-out functions and `account-sync resync`: a contact changed behind the store's back is repaired with exact
activities, a store in step gets no write and no activity, and a field added to the synced list reaches every
contact."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from account_sync.adapters.dynamodb_models import ActivityItem, ContactItem
from account_sync_cli import __main__ as cli
from account_sync_cli import resync as resyncing
from account_sync_cli import status as status_view
from account_sync_cli.deployment import Deployment

from tests.integration.guarantees.conftest import SCHEDULE_EVENT, activity_keys, contact_fields
from tests.integration.guarantees.test_fetch_runs import given_a_synced_org, let_the_stamps_pass

WITHOUT_RATING = "Name,Industry,BillingCountry"


@pytest.fixture
def deployment_view(stack_resources) -> Deployment:
    return Deployment(name="stack test", refs=stack_resources.refs(), region="us-east-1")


@pytest.fixture
def operator(fetch, pipeline, stack_resources, monkeypatch: pytest.MonkeyPatch):
    """`account-sync --stack test resync ...`, its fetch function invoked in the pipeline's runtime (`fetch`
    points it at the emulator)."""
    deployment = Deployment(name="stack test", refs=stack_resources.refs(), region="us-east-1")
    monkeypatch.setattr(cli, "deployment_for", lambda args: deployment)
    monkeypatch.setattr(resyncing, "invoke_fetch", lambda _, event: pipeline.invoke("fetch_changes", event).payload)

    def run(*args: str) -> tuple[int, Any]:
        out = io.StringIO()
        status = cli.main(["--stack", "test", "--json", "resync", *args], stdout=out)
        return status, json.loads(out.getvalue()) if out.getvalue() else None

    return run


def contacts_as_stored(contact_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {cid: ContactItem.get(cid, consistent_read=True).to_simple_dict() for cid in contact_ids}


def test_a_contact_changed_behind_the_stores_back_is_repaired_with_exact_activities(salesforce, pipeline, operator):
    # Given a synced org, and one contact whose Industry was changed in the store behind the sync's back
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline, accounts=3)
    ContactItem(contact_ids[1]).update(actions=[ContactItem.account_fields["Industry"].set("Tampered")])  # type: ignore[index]
    before = activity_keys()
    # When the operator resyncs that account
    status, summary = operator("--account", account_ids[1])
    assert pipeline.drain().empty
    # Then the contact holds Salesforce's value again, with one activity saying so, and nothing else changed
    assert status == 0 and summary["done"] is True and summary["accounts_queued"] == 1
    assert contact_fields([contact_ids[1]])[contact_ids[1]]["Industry"] == "Energy"
    new = sorted(set(activity_keys()) - set(before))
    assert [(subject, key.split("#")[1:3]) for subject, key in new] == [(contact_ids[1], ["resync", "Industry"])]
    activity = ActivityItem.get(*new[0])
    assert (activity.old_value, activity.new_value) == ("Tampered", "Energy")
    assert activity.reason == "Resync from Salesforce"


def test_a_resync_of_everything_in_step_writes_nothing(salesforce, pipeline, operator):
    _, contact_ids = given_a_synced_org(salesforce, pipeline, accounts=4)
    stored, before = contacts_as_stored(contact_ids), activity_keys()
    status, summary = operator("--all", "--drain")
    assert pipeline.drain().empty
    assert status == 0 and summary["done"] is True and summary["accounts_queued"] == 4
    assert contacts_as_stored(contact_ids) == stored and activity_keys() == before


def test_a_field_added_to_the_synced_list_reaches_every_contact_by_a_resync(salesforce, pipeline, operator):
    # Given an org synced while the list did not have Rating
    pipeline.runtime.add_env({"SYNCED_ACCOUNT_FIELDS": WITHOUT_RATING})
    pipeline.runtime.reset()
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline, accounts=3)
    for account_id in account_ids:
        salesforce.update("Account", account_id, {"Rating": "Hot"})
    let_the_stamps_pass()
    pipeline.invoke("fetch_changes", SCHEDULE_EVENT)
    assert pipeline.drain().empty
    assert all("Rating" not in fields for fields in contact_fields(contact_ids).values())
    # When a deployment adds Rating, and the operator resyncs everything
    pipeline.runtime.add_env({"SYNCED_ACCOUNT_FIELDS": WITHOUT_RATING + ",Rating"})
    pipeline.runtime.reset()
    status, summary = operator("--all", "--drain")
    assert pipeline.drain().empty
    # Then every contact has it
    assert status == 0 and summary["done"] is True
    assert {fields.get("Rating") for fields in contact_fields(contact_ids).values()} == {"Hot"}


def test_a_bad_request_is_refused_with_its_reason(salesforce, pipeline, operator, capsys):
    status, _ = operator("--account", "not-an-id")
    assert status == 2 and "not Salesforce ids" in capsys.readouterr().err


def test_a_field_added_to_the_synced_list_reaches_every_contact_without_an_operator(salesforce, pipeline, fetch):
    # Given an org synced while the list did not have Rating, whose accounts have a Rating in Salesforce
    pipeline.runtime.add_env({"SYNCED_ACCOUNT_FIELDS": WITHOUT_RATING})
    pipeline.runtime.reset()
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline, accounts=3)
    for account_id in account_ids:
        salesforce.update("Account", account_id, {"Rating": "Warm"})
    let_the_stamps_pass()
    pipeline.invoke("fetch_changes", SCHEDULE_EVENT)
    assert pipeline.drain().empty
    before = activity_keys()
    # When a deployment adds Rating, and the schedule runs the fetch
    pipeline.runtime.add_env({"SYNCED_ACCOUNT_FIELDS": WITHOUT_RATING + ",Rating"})
    pipeline.runtime.reset()
    report = pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload
    assert pipeline.drain().empty
    # Then the run started a resync of everything, and every contact has Rating, each with one resync activity
    assert report["fields_changed"] == {"added": ["Rating"], "removed": []}
    assert report["resync"]["done"] is True
    assert {fields.get("Rating") for fields in contact_fields(contact_ids).values()} == {"Warm"}
    new = sorted(set(activity_keys()) - set(before))
    assert sorted((subject, key.split("#")[1:3]) for subject, key in new) == sorted(
        (contact_id, ["resync", "Rating"]) for contact_id in contact_ids
    )


def test_a_resync_of_everything_drains_over_runs_and_status_shows_its_progress(
    salesforce, pipeline, operator, deployment_view
):
    # Given a synced org of five accounts, and a fetch that resyncs two Accounts a run
    given_a_synced_org(salesforce, pipeline, accounts=5)
    pipeline.runtime.add_env({"RESYNC_RECORDS_PER_RUN": "2"})
    pipeline.runtime.reset()
    # When the operator starts a resync of everything without draining it
    status, summary = operator("--all")
    # Then it is in progress, and `account-sync status` says how far it read
    assert status == 0 and summary["done"] is False and summary["accounts_queued"] == 2
    progress = status_view.status(deployment_view)["resync"]
    assert progress is not None and progress["bulk_job"] and progress["bulk_offset"] == "2"  # everything: Bulk
    # and the scheduled runs finish it
    outcomes = [pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["resync"] for _ in range(2)]
    assert [o["queued"] for o in outcomes] == [2, 1] and outcomes[-1]["done"] is True
    assert status_view.status(deployment_view)["resync"] is None
    assert pipeline.drain().empty


def test_a_drifted_account_is_reported_and_repaired(salesforce, pipeline, operator, deployment_view, monkeypatch):
    # Given a synced org, one of whose contacts was changed behind the store's back
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline, accounts=3)
    ContactItem(contact_ids[2]).update(actions=[ContactItem.account_fields["Industry"].set("Tampered")])  # type: ignore[index]
    out = io.StringIO()
    # When the operator asks for a drift check
    status = cli.main(["--stack", "test", "--json", "drift"], stdout=out)
    found = json.loads(out.getvalue())
    # Then it names the account and the field (never the value), exit 1, and the sync state records it
    assert status == 1 and found["checked"] == 3
    assert found["drifted"] == [
        {"account_id": account_ids[2], "problem": f"contact {contact_ids[2]} fields differ: Industry"}
    ]
    assert "Tampered" not in out.getvalue()
    assert status_view.sync_state(deployment_view)["drift#sample"]["last_run"]["drifted"] == found["drifted"]
    # and with --repair the account is resynced: the contact holds Salesforce's value again
    out = io.StringIO()
    assert cli.main(["--stack", "test", "--json", "drift", "--repair"], stdout=out) == 0
    assert json.loads(out.getvalue())["repaired"] == 1
    assert pipeline.drain().empty
    assert contact_fields([contact_ids[2]])[contact_ids[2]]["Industry"] == "Energy"
    out = io.StringIO()
    assert cli.main(["--stack", "test", "--json", "drift"], stdout=out) == 0
    assert json.loads(out.getvalue())["drifted"] == []
