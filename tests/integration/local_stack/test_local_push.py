"""Issue 13 on the local stack, end to end through moto's EventBridge: the emulator's Change Data Capture events put
on the partner event bus that moto's CloudFormation made from template.yaml (EventRelaySourceName set), the rule
delivering them to the change-events queue, and the local runtime's SQS poller running the push function from it.
A change reaches every contact by push with no fetch run; what the push path cannot see (an overflow, a relay
outage) is repaired by the next poll; each activity names the path that applied it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from local_stack.sandbox import SyncSandbox

CONTACTS = 5
PUSH_POLLER = "PushChangesFunction.ChangeEvents"


@pytest.fixture
def sandbox():
    parameters.clear_caches()  # a secret cached by an earlier test's functions in this process
    with SyncSandbox(push=True, separate_process=False) as started:
        yield started


def given_a_synced_account(sandbox: SyncSandbox) -> tuple[str, list[str]]:
    salesforce = sandbox.salesforce
    account = salesforce.create("Account", {"Name": "Pushed", "Industry": "Energy", "BillingCountry": "France"})
    contacts = salesforce.bulk_create("Contact", [{"LastName": f"C{n}", "AccountId": account} for n in range(CONTACTS)])
    assert sandbox.run_cycle().drain.empty
    assert {fields(sandbox, c)["Industry"] for c in contacts} == {"Energy"}
    return account, contacts


def count_push_events(sandbox: SyncSandbox) -> list[int]:
    """The change events each run of the push function is given, from now on."""
    poller = sandbox.local.pollers[PUSH_POLLER]
    counts: list[int] = []
    invoke = poller.invoke

    def counted(event: dict[str, Any]) -> Any:
        counts.append(len(event["Records"]))
        return invoke(event)

    poller.invoke = counted
    return counts


def fields(sandbox: SyncSandbox, contact_id: str) -> dict[str, Any]:
    item = boto3.client("dynamodb").get_item(
        TableName=sandbox.local.resources.table_name("ContactsTable"),  # type: ignore[union-attr]
        Key={"contact_id": {"S": contact_id}},
        ConsistentRead=True,
    )["Item"]
    return {name: value.get("S") for name, value in item["account_fields"]["M"].items()}


def industry_activities(sandbox: SyncSandbox, contacts: list[str], new_value: str) -> list[str | None]:
    """The sync_path of each Industry activity that set `new_value` on the contacts."""
    items = boto3.client("dynamodb").scan(TableName=sandbox.local.resources.table_name("ActivitiesTable"))["Items"]  # type: ignore[union-attr]
    return [
        item.get("sync_path", {}).get("S")
        for item in items
        if item["subject_id"]["S"] in contacts
        and item.get("attribute_name", {}).get("S") == "Industry"
        and item.get("new_value", {}).get("S") == new_value
    ]


def test_the_partner_bus_and_its_rule_come_from_the_template_through_moto(sandbox):
    resources = sandbox.local.resources
    assert sandbox.relay is not None
    bus = resources.ref("PushEventBus")
    assert bus == sandbox.relay.source == resources.parameters["EventRelaySourceName"]
    (rule,) = boto3.client("events").list_rules(EventBusName=bus)["Rules"]
    (target,) = boto3.client("events").list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
    assert target["Arn"] == resources.queue_arn("ChangeEventsQueue")
    assert PUSH_POLLER in sandbox.local.pollers


def test_a_change_in_salesforce_reaches_every_contact_by_push_with_no_fetch_run(sandbox):
    # given an account of five contacts, synced
    account, contacts = given_a_synced_account(sandbox)
    pushed = count_push_events(sandbox)
    # when it changes in Salesforce and only the SQS triggers run (no schedule fires)
    sandbox.salesforce.update("Account", account, {"Industry": "Retail"})
    drained = sandbox.drain(timeout=60)
    # then the event went bus -> rule -> queue -> push function, and every contact holds the change
    assert drained.empty
    assert sum(pushed) >= 1
    assert {fields(sandbox, c)["Industry"] for c in contacts} == {"Retail"}
    # with one activity per contact, naming the push path
    assert industry_activities(sandbox, contacts, "Retail") == ["push"] * CONTACTS


@pytest.mark.parametrize("fault", ["overflow", "down"])
def test_what_push_cannot_see_is_repaired_by_the_next_poll(sandbox, fault):
    # given a synced account, and a relay that overflows (a GAP_OVERFLOW names no record) or is down
    account, contacts = given_a_synced_account(sandbox)
    assert sandbox.relay is not None
    setattr(sandbox.relay.faults, fault, True)
    # when the account changes and the triggers run: push has nothing it can read
    sandbox.salesforce.update("Account", account, {"Industry": "Banking"})
    assert sandbox.drain(timeout=60).empty
    assert {fields(sandbox, c)["Industry"] for c in contacts} == {"Energy"}
    # then the next poll brings the change to every contact, once, naming the fetch
    sandbox.relay.faults = type(sandbox.relay.faults)()
    assert sandbox.run_cycle().fetch["outcome"] == "completed"
    assert {fields(sandbox, c)["Industry"] for c in contacts} == {"Banking"}
    assert industry_activities(sandbox, contacts, "Banking") == ["fetch"] * CONTACTS
