"""The marketing API through its handler, with real-shaped HTTP API events (payload 2.0, IAM authorizer), on moto
resources from template.yaml; the fan-out and the activity log run from their queues through the SQS trigger
emulation, as Lambda would run them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from account_sync.adapters.dynamodb import DynamoActivityStore
from account_sync.adapters.dynamodb_models import AccountItem, ActivityItem, ContactItem
from account_sync.domain.records import ChangeDataValueActivity, ChangeOrigin, SyncPath
from account_sync.domain.timestamps import shift, utc_now
from account_sync.services.history import History
from local_stack.lambda_runtime import LambdaRuntime
from local_stack.sqs_poller import DrainResult, SqsEventSourcePoller, drain
from local_stack.template import Resources

from tests.integration.guarantees.faults import Fault, FaultInjector, client_error
from tests.support.events import load_event
from tests.support.http_api import http_event, response_json

ACCOUNT = "001000000000000001"  # the account of events/fan_out_account_change.json
SYNCED_AT = "2026-11-27T10:05:00.000Z"
ROOT = load_event("fan_out_account_change.json")


@dataclass
class Stack:
    runtime: LambdaRuntime
    resources: Resources
    pollers: list[SqsEventSourcePoller]

    def call(self, event: dict[str, Any], function: str = "MarketingApiFunction") -> tuple[int, dict[str, Any]]:
        result = self.runtime.invoke(function, event)
        assert result.error is None, result.payload
        assert result.payload["headers"]["Content-Type"] == "application/json"
        return response_json(result.payload)

    def drain(self) -> DrainResult:
        """The SQS triggers of the fan-out and the activity log, until both queues are empty."""
        return drain(self.pollers, timeout=20, idle_wait=0.01)

    def account_change(self, stamp: str, **fields: object) -> None:
        """A Salesforce version of the account, as the fetch queues it, applied by the fan-out."""
        event = json.loads(json.dumps(ROOT))
        body = json.loads(event["Records"][0]["body"])
        body["version"]["system_modstamp"] = stamp
        body["version"]["fields"].update(fields)
        event["Records"][0]["body"] = json.dumps(body)
        assert self.runtime.invoke("fan_out", event).payload == {"batchItemFailures": []}
        self.drain()

    def queued_changes(self) -> int:
        return _depth(self.resources, "AccountChangesQueue")

    def queue_account_change(self, stamp: str, **fields: object) -> None:
        """A Salesforce version of the account queued in its FIFO group as the fetch sends it, not applied yet."""
        import boto3

        body = json.loads(ROOT["Records"][0]["body"])
        body["version"]["system_modstamp"] = stamp
        body["version"]["fields"].update(fields)
        boto3.client("sqs").send_message(
            QueueUrl=self.resources.queue_url("AccountChangesQueue"),
            MessageBody=json.dumps(body),
            MessageGroupId=ACCOUNT,
            MessageDeduplicationId=f"account-change-{stamp}",
        )


def _depth(resources: Resources, queue: str) -> int:
    import boto3

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=resources.queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


@pytest.fixture
def stack(triggers, stack_resources: Resources) -> Stack:
    return Stack(triggers.runtime, stack_resources, list(triggers.pollers.values()))


def given_contacts(count: int, account: str | None = ACCOUNT) -> list[str]:
    ids = [f"003{n:015d}" for n in range(1, count + 1)]
    for cid in ids:
        ContactItem(cid, account_id=account, account_fields={}, contact_modstamp="2026-11-27T09:00:00.000Z").save()
    return ids


def fields_of(contact_ids: list[str], name: str) -> set[object]:
    return {ContactItem.get(cid, consistent_read=True).account_fields.as_dict().get(name) for cid in contact_ids}


def edit(contact_id: str, field: str, value: object, **options: Any) -> dict[str, Any]:
    return http_event("api_local_edit.json", contact_id=contact_id, body={"field": field, "value": value}, **options)


# --- local edits (SPEC R3) ------------------------------------------------------------------------------


def test_a_local_edit_through_one_contact_reaches_every_contact_of_the_account(stack):
    # given an account synced from Salesforce with three contacts
    contacts = given_contacts(3)
    stack.account_change(SYNCED_AT)
    assert fields_of(contacts, "Industry") == {"Energy"}

    # when its Industry is edited through the second contact
    status, body = stack.call(edit(contacts[1], "Industry", "Retail"))

    # then the edit is accepted and queued in the account's group, not applied yet
    assert status == 202
    assert body["status"] == "queued" and body["account_id"] == ACCOUNT and body["edit_id"].startswith("edit-")
    assert stack.queued_changes() == 1
    assert fields_of(contacts, "Industry") == {"Energy"}

    # and once the fan-out ran from the queue, every contact and the stored account carry it
    stack.drain()
    assert fields_of(contacts, "Industry") == {"Retail"}
    assert {ContactItem.get(cid).account_fields_source for cid in contacts} == {"local"}
    assert AccountItem.get(ACCOUNT).fields.as_dict()["Industry"] == "Retail"

    # with a Change Data Value activity of source "local" on each contact, newest first in the history
    for cid in contacts:
        status, history = stack.call(http_event("api_contact_activities.json", contact_id=cid))
        assert status == 200
        newest = history["items"][0]
        assert (newest["attribute_name"], newest["old_value"], newest["new_value"]) == ("Industry", "Energy", "Retail")
        assert (newest["source"], newest["reason"]) == ("local", "Account field edited in the store")


def test_the_next_salesforce_update_overwrites_every_synced_field(stack):
    # given a local edit applied to every contact
    contacts = given_contacts(2)
    stack.account_change(SYNCED_AT)
    stack.call(edit(contacts[0], "Industry", "Retail"))
    stack.drain()

    # when Salesforce updates the account after the edit, changing only its Rating
    stack.account_change(shift(utc_now(), 1), Rating="Warm")

    # then every synced field is Salesforce's again, the local Industry too
    assert fields_of(contacts, "Industry") == {"Energy"}
    assert fields_of(contacts, "Rating") == {"Warm"}
    assert {ContactItem.get(cid).account_fields_source for cid in contacts} == {"salesforce"}
    history = stack.call(http_event("api_contact_activities.json", contact_id=contacts[0]))[1]
    changes = [(i["attribute_name"], i["old_value"], i["new_value"], i["source"]) for i in history["items"][:3]]
    assert ("Industry", "Retail", "Energy", "salesforce") in changes
    assert ("Rating", "Hot", "Warm", "salesforce") in changes
    assert changes[-1] == ("Industry", "Energy", "Retail", "local")


def test_an_edit_applies_after_what_was_queued_before_it_and_before_what_comes_after(stack):
    # given a synced account
    contacts = given_contacts(2)
    stack.account_change(SYNCED_AT)

    # when, before the fan-out runs, the account's group receives a Salesforce version, the edit, another version
    stack.queue_account_change("2026-11-27T10:06:00.000Z", Industry="Retail")
    assert stack.call(edit(contacts[0], "Industry", "Edited"))[0] == 202
    stack.queue_account_change("2026-11-27T10:07:00.000Z", Industry="Retail", Rating="Warm")
    assert stack.queued_changes() == 3
    stack.drain()

    # then they were applied in that order: the edit over the first version, the second version over the edit
    assert fields_of(contacts, "Industry") == {"Retail"} and fields_of(contacts, "Rating") == {"Warm"}
    assert {ContactItem.get(cid).account_fields_source for cid in contacts} == {"salesforce"}
    for cid in contacts:
        history = stack.call(http_event("api_contact_activities.json", contact_id=cid))[1]["items"]
        changes = {(i["old_value"], i["new_value"], i["source"]) for i in history if i["attribute_name"] == "Industry"}
        assert changes == {
            (None, "Energy", "salesforce"),  # the first sync
            ("Energy", "Retail", "salesforce"),
            ("Retail", "Edited", "local"),
            ("Edited", "Retail", "salesforce"),
        }


def test_the_same_idempotency_key_queues_one_edit(stack):
    contacts = given_contacts(1)
    stack.account_change(SYNCED_AT)
    first = stack.call(edit(contacts[0], "Rating", "Cold", headers={"Idempotency-Key": "tool-42"}))
    again = stack.call(edit(contacts[0], "Rating", "Cold", headers={"Idempotency-Key": "tool-42"}))
    assert first[1]["edit_id"] == again[1]["edit_id"]
    assert stack.queued_changes() == 1  # SQS dropped the duplicate (FIFO deduplication)


def test_the_same_idempotency_key_with_another_body_is_a_422_and_queues_nothing(stack):
    contacts = given_contacts(1)
    stack.account_change(SYNCED_AT)
    first = stack.call(edit(contacts[0], "Rating", "Cold", headers={"Idempotency-Key": "tool-43"}))
    status, body = stack.call(edit(contacts[0], "Rating", "Hot", headers={"Idempotency-Key": "tool-43"}))
    assert first[0] == 202
    assert (status, body["error"]["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert stack.queued_changes() == 1
    # the key's first request again is still the same edit
    again = stack.call(edit(contacts[0], "Rating", "Cold", headers={"Idempotency-Key": "tool-43"}))
    assert again[0] == 202 and again[1]["edit_id"] == first[1]["edit_id"]
    assert again[1]["edited_at"] == first[1]["edited_at"]


@pytest.mark.parametrize(
    ("setup", "request_event", "status", "code"),
    [
        ("synced", lambda c: edit(c, "Description", "x"), 400, "FIELD_NOT_SYNCED"),
        ("synced", lambda c: edit(c, "Industry", {"nested": True}), 400, "INVALID_REQUEST"),
        (
            "synced",
            lambda c: http_event("api_local_edit.json", contact_id=c, raw_body="{not json"),
            400,
            "INVALID_JSON",
        ),
        ("synced", lambda c: edit("003999999999999999", "Industry", "x"), 404, "CONTACT_NOT_FOUND"),
        ("no account", lambda c: edit(c, "Industry", "x"), 409, "CONTACT_HAS_NO_ACCOUNT"),
        ("not synced", lambda c: edit(c, "Industry", "x"), 409, "ACCOUNT_NOT_SYNCED"),
        ("deleted", lambda c: edit(c, "Industry", "x"), 409, "ACCOUNT_NOT_SYNCED"),
    ],
    ids=["field not synced", "bad value", "bad JSON", "unknown contact", "no account", "not synced", "deleted"],
)
def test_a_refused_edit_answers_its_code_and_queues_nothing(stack, setup, request_event, status, code):
    (contact,) = given_contacts(1, account=None if setup == "no account" else ACCOUNT)
    if setup in ("synced", "deleted", "no account"):
        stack.account_change(SYNCED_AT)
    if setup == "deleted":
        stack.account_change("2026-11-27T10:08:00.000Z")
        AccountItem(ACCOUNT).update(actions=[AccountItem.is_deleted.set(True)])

    answer = stack.call(request_event(contact))

    assert answer[0] == status
    assert set(answer[1]) == {"error"} and answer[1]["error"]["code"] == code and answer[1]["error"]["message"]
    assert stack.queued_changes() == 0


def test_an_edit_the_queue_did_not_take_is_a_503_and_the_same_request_again_queues_it_once(stack, monkeypatch):
    (contact,) = given_contacts(1)
    stack.account_change(SYNCED_AT)
    faults = FaultInjector(monkeypatch)
    faults.add(Fault("sqs", "SendMessageBatch", client_error("ServiceUnavailable", status=503)))
    request = edit(contact, "Industry", "Retail", headers={"Idempotency-Key": "tool-7"})

    status, body = stack.call(request)

    assert (status, body["error"]["code"]) == (503, "TEMPORARILY_UNAVAILABLE")
    assert stack.queued_changes() == 0  # a 202 is only answered once the queue holds the edit
    faults.clear()
    assert stack.call(request)[0] == 202
    assert stack.call(request)[0] == 202  # and again: the same edit, dropped by the queue
    assert stack.queued_changes() == 1


def test_an_unexpected_failure_is_a_json_500_not_a_function_error(stack, monkeypatch):
    (contact,) = given_contacts(1)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(History, "contact_activities", broken)

    status, body = stack.call(http_event("api_contact_activities.json", contact_id=contact))  # asserts no error

    assert (status, body["error"]["code"]) == (500, "INTERNAL_ERROR")
    assert "a bug" not in body["error"]["message"]


def test_an_unknown_route_is_a_json_404(stack):
    event = http_event("api_local_edit.json", contact_id="003000000000000001", body={"field": "Name", "value": "x"})
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/contacts/003000000000000001/delete"
    status, body = stack.call(event)
    assert (status, body["error"]["code"]) == (404, "ROUTE_NOT_FOUND")


# --- the history ----------------------------------------------------------------------------------------


def test_a_contacts_activities_come_newest_first_a_page_at_a_time(stack):
    # given seven Change Data Value activities of one contact, one a minute
    (contact,) = given_contacts(1)
    stamps = [f"2026-11-27T10:{minute:02d}:00.000Z" for minute in range(1, 8)]
    DynamoActivityStore().put_activities(
        ChangeDataValueActivity(
            contact, ACCOUNT, "Industry", "old", f"v{n}", ChangeOrigin.ACCOUNT, stamp, stamp, path=SyncPath.PUSH
        )
        for n, stamp in enumerate(stamps, start=1)
    )

    # when the history is read three at a time
    pages, token = [], None
    while True:
        query = {"limit": "3", **({"next_token": token} if token else {})}
        status, page = stack.call(http_event("api_contact_activities.json", contact_id=contact, query=query))
        assert status == 200
        pages.append([item["new_value"] for item in page["items"]])
        token = page["next_token"]
        if token is None:
            break

    # then newest first, each once, in pages of three
    assert pages == [["v7", "v6", "v5"], ["v4", "v3", "v2"], ["v1"]]
    first = stack.call(http_event("api_contact_activities.json", contact_id=contact, query={"limit": "1"}))[1]
    assert first["items"][0] == {
        "activity_key": f"{stamps[-1]}#account#Industry",
        "activity_type": "Change Data Value",
        "attribute_name": "Industry",
        "old_value": "old",
        "new_value": "v7",
        "reason": "Account updated in Salesforce",
        "source": "salesforce",
        "account_id": ACCOUNT,
        "system_modstamp": stamps[-1],
        "activity_at": stamps[-1],
        "sync_path": "push",  # which path applied the change (issue 13)
    }


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [({"limit": "0"}, 400, "INVALID_REQUEST"), ({"next_token": "forged"}, 400, "INVALID_NEXT_TOKEN")],
)
def test_a_bad_page_request_is_refused(stack, query, status, code):
    (contact,) = given_contacts(1)
    answer = stack.call(http_event("api_contact_activities.json", contact_id=contact, query=query))
    assert (answer[0], answer[1]["error"]["code"]) == (status, code)


def test_the_history_of_an_unknown_contact_or_account_is_not_found(stack):
    contact = stack.call(http_event("api_contact_activities.json", contact_id="003999999999999999"))
    account = stack.call(http_event("api_account_suppressed_changes.json", account_id="001999999999999999"))
    assert (contact[0], contact[1]["error"]["code"]) == (404, "CONTACT_NOT_FOUND")
    assert (account[0], account[1]["error"]["code"]) == (404, "ACCOUNT_NOT_FOUND")


def test_an_accounts_suppressed_changes_are_listed(stack):
    # given an account above the activity threshold (2 here), changed in Salesforce
    stack.runtime.add_env({"ACTIVITY_THRESHOLD": "2"})
    contacts = given_contacts(3)
    stack.account_change(SYNCED_AT)
    stack.account_change("2026-11-27T10:09:00.000Z", Industry="Retail")

    # when its suppressed changes are read
    status, body = stack.call(http_event("api_account_suppressed_changes.json", account_id=ACCOUNT))

    # then both changes are there, newest first, with what was counted; the contacts got no activity
    assert status == 200
    assert [item["system_modstamp"] for item in body["items"]] == ["2026-11-27T10:09:00.000Z", SYNCED_AT]
    newest = body["items"][0]
    assert (newest["contacts_counted"], newest["threshold"], newest["changed_fields"]) == (3, 2, ["Industry"])
    assert newest["activity_type"] == "Change Data Value Suppressed"
    assert fields_of(contacts, "Industry") == {"Retail"}
    assert [a for a in ActivityItem.scan() if a.subject_id in contacts] == []


# --- packaging ------------------------------------------------------------------------------------------


def test_the_marketing_api_never_loads_simple_salesforce():
    # a fresh interpreter, the function's code and the layer on the path, as Lambda would have them
    code = (
        "import sys; sys.path[:0] = ['functions/marketing_api', 'layers/account_sync']; import app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('simple_salesforce', 'zeep', 'lxml')))"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)  # noqa: S603
    loaded = run.stdout
    assert loaded.strip() == "[]"
