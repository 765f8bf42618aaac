"""Issue 13: changes pushed by Change Data Capture through Event Relay, with the relay's faults, on the real
handlers. The emulator publishes a CDC event for every Account and Contact change in Event Relay's EventBridge
envelope; the sink puts each on the change-events queue as the rule's target does; the push function's trigger,
the fan-out's and the activity log's run until idle.

Each fault ends with the store equal to Salesforce and exactly one activity per contact per changed field per
version: the events only say which records to read again, and the versions read carry their SystemModstamp.
"""

from __future__ import annotations

import json

import pytest
from local_stack.sqs_poller import drain
from local_stack.template import create_resources

from tests.integration.conftest import TEST_STAGE
from tests.integration.guarantees.conftest import SCHEDULE_EVENT, activity_keys, contact_fields, point_runtime_at

SOURCE = "aws.partner/salesforce.com/00D000000000001AAA/0YL000000000001GAA"


@pytest.fixture
def stack_resources(aws, sam_template):
    """The template's stack with the push path on (EventRelaySourceName set)."""
    return create_resources(sam_template, aws, stage=TEST_STAGE, parameter_overrides={"EventRelaySourceName": SOURCE})


@pytest.fixture
def relay(salesforce, pipeline, triggers, stack_resources, aws):
    """The emulator's Event Relay, delivering to the change-events queue as the rule's target does."""
    point_runtime_at(pipeline.runtime, salesforce)
    sqs = aws.client("sqs")
    url = stack_resources.queue_url("ChangeEventsQueue")

    def to_queue(events):
        for event in events:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))

    return salesforce.relay_change_events(to_queue)


def run_all(pipeline, triggers):
    """The push, fan-out and activity-log triggers until every queue is empty."""
    pollers = [triggers.pollers["PushChangesFunction"], pipeline.fan_out, pipeline.activity_log]
    result = drain(pollers, timeout=30, idle_wait=0.01)
    assert result.empty
    return result


def given_a_synced_org(salesforce, pipeline, triggers, accounts: int = 3, contacts_each: int = 2):
    account_ids = salesforce.bulk_create(
        "Account", [{"Name": f"Account {n}", "Industry": "Energy", "BillingCountry": "France"} for n in range(accounts)]
    )
    contact_ids = salesforce.bulk_create(
        "Contact",
        [
            {"LastName": f"Contact {n}-{k}", "AccountId": account_ids[n]}
            for n in range(accounts)
            for k in range(contacts_each)
        ],
    )
    run_all(pipeline, triggers)  # the creations' events
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "completed"
    run_all(pipeline, triggers)
    return account_ids, contact_ids


def store_matches_salesforce(salesforce, contact_ids, fields=("Name", "Industry", "BillingCountry")):
    accounts = {record["Id"]: record for record in salesforce.records("Account")}
    contacts = {record["Id"]: record for record in salesforce.records("Contact")}
    stored = contact_fields(contact_ids)
    for contact_id in contact_ids:
        account = accounts[contacts[contact_id]["AccountId"]]
        assert {name: stored[contact_id].get(name) for name in fields} == {name: account[name] for name in fields}


def change_activities(account_contacts, field="Industry"):
    return [key for key in activity_keys() if key[0] in account_contacts and key[1].endswith(f"#{field}")]


@pytest.mark.parametrize("fault", ["none", "duplicate", "reorder", "gap"])
def test_a_pushed_change_reaches_every_contact_once_whatever_the_relay_does(
    salesforce, pipeline, triggers, relay, fault
):
    # given a synced org, and a relay with the fault
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline, triggers)
    before = len(activity_keys())
    setattr(relay.faults, fault, fault != "none") if fault != "none" else None
    # when two accounts change in Salesforce (one twice) and the events are delivered and read
    salesforce.update("Account", account_ids[0], {"Industry": "Retail"})
    salesforce.update("Account", account_ids[1], {"Industry": "Banking"})
    salesforce.update("Account", account_ids[1], {"Industry": "Media"})
    relay.flush()
    run_all(pipeline, triggers)
    # then, without any poll, every contact holds Salesforce's values
    store_matches_salesforce(salesforce, contact_ids)
    # and each contact has one activity per version it was written with, never two for one version
    keys = activity_keys()
    assert len(keys) == len(set(keys))
    first = [cid for cid in contact_ids[:2]]
    assert len(change_activities(first)) == 2  # Energy -> Retail on each of the account's two contacts
    assert len(keys) - before >= 2 + 2  # account 1: at least its last version on each contact (Media)


def test_an_overflow_is_left_to_the_poll_which_repairs_it(salesforce, pipeline, triggers, relay):
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline, triggers)
    relay.faults.overflow = True
    salesforce.update("Account", account_ids[2], {"Industry": "Retail"})
    run_all(pipeline, triggers)
    # the overflow names no record: nothing was read by push
    assert {v.get("Industry") for v in contact_fields(contact_ids[4:]).values()} == {"Energy"}
    # when the poll runs
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "completed"
    run_all(pipeline, triggers)
    store_matches_salesforce(salesforce, contact_ids)
    assert len(change_activities(contact_ids[4:])) == 2


def test_a_relay_outage_loses_nothing_the_poll_repairs_it_once(salesforce, pipeline, triggers, relay):
    account_ids, contact_ids = given_a_synced_org(salesforce, pipeline, triggers)
    relay.faults.down = True
    salesforce.update("Account", account_ids[0], {"Industry": "Retail", "Name": "Renamed"})
    run_all(pipeline, triggers)
    assert relay.dropped >= 1
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["outcome"] == "completed"
    run_all(pipeline, triggers)
    store_matches_salesforce(salesforce, contact_ids)
    # and when the relay comes back and a late duplicate of the same version arrives, nothing is logged twice
    relay.faults.down = False
    salesforce.touch("Account", account_ids[0])  # a SystemModstamp-only change: read, no field changed
    run_all(pipeline, triggers)
    keys = activity_keys()
    assert len(keys) == len(set(keys))
    assert len(change_activities(contact_ids[:2])) == 2 and len(change_activities(contact_ids[:2], "Name")) == 2
