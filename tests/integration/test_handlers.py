"""Each handler invoked as Lambda would, with the event files of `events/`, on moto resources from the template."""

from __future__ import annotations

import boto3
import pytest
from account_sync.adapters.dynamodb_models import AccountItem, ActivityItem, ContactItem
from account_sync.contracts import parse_activity_batch
from account_sync.settings import load_settings
from account_sync.wiring import bind_store
from local_stack.lambda_runtime import LambdaRuntime
from local_stack.template import lambda_functions

from tests.support.events import load_event

ACCOUNT = "001000000000000001"


@pytest.fixture
def runtime(function_env, stack_resources, sam_template) -> LambdaRuntime:
    bind_store(load_settings())
    return LambdaRuntime(lambda_functions(sam_template, stack_resources))


def given_contacts(count: int, account: str = ACCOUNT) -> list[str]:
    ids = [f"003{n:015d}" for n in range(1, count + 1)]
    for cid in ids:
        ContactItem(cid, account_id=account, account_fields={}).save()
    return ids


def received(queue_url: str) -> list[str]:
    sqs = boto3.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_fan_out_writes_the_account_fields_on_every_contact_and_queues_activities(runtime, stack_resources):
    contact_ids = given_contacts(3)
    result = runtime.invoke("fan_out", load_event("fan_out_account_change.json"))
    assert result.error is None and result.payload == {"batchItemFailures": []}
    for cid in contact_ids:
        item = ContactItem.get(cid)
        assert item.account_fields.as_dict()["Name"] == "Acme Energy"
        assert item.account_modstamp == "2026-11-27T10:05:00.000Z"
    assert AccountItem.get(ACCOUNT).applied_modstamp == "2026-11-27T10:05:00.000Z"
    (body,) = received(stack_resources.queue_url("ActivityQueue"))
    batch = parse_activity_batch(body)
    assert {c.contact_id for c in batch.changes} == set(contact_ids)
    assert len(batch.changes) == 3 * 9  # nine synced fields, all new


def test_the_same_event_twice_changes_nothing_the_second_time(runtime, stack_resources):
    given_contacts(2)
    runtime.invoke("fan_out", load_event("fan_out_account_change.json"))
    received(stack_resources.queue_url("ActivityQueue"))
    result = runtime.invoke("fan_out", load_event("fan_out_account_change.json"))
    assert result.payload == {"batchItemFailures": []}
    assert received(stack_resources.queue_url("ActivityQueue")) == []


def test_a_malformed_message_fails_alone_with_its_reason_logged(runtime, caplog):
    given_contacts(1)
    result = runtime.invoke("fan_out", load_event("fan_out_malformed.json"))
    # set aside in the dead-letter queue by the function itself (issue 10, 2.5): no batch item failure
    assert result.payload == {"batchItemFailures": []}
    assert ContactItem.get("003000000000000001").account_fields.as_dict()["Name"] == "Acme Energy"
    (error,) = [r for r in caplog.records if r.getMessage() == "malformed change message"]
    assert error.levelname == "ERROR"
    assert error.message_id.endswith("a04") and error.reason == "version.fields must be an object"
    (aside,) = [r for r in caplog.records if r.getMessage() == "message set aside in the dead-letter queue"]
    assert aside.message_id.endswith("a04") and aside.failure == "malformed"


def test_a_contact_change_takes_its_account_fields(runtime):
    runtime.invoke("fan_out", load_event("fan_out_account_change.json"))
    result = runtime.invoke("fan_out", load_event("fan_out_contact_changes.json"))
    assert result.payload == {"batchItemFailures": []}
    contact = ContactItem.get("003000000000000001")
    assert contact.account_id == ACCOUNT and contact.email == "ada@example.com"
    assert contact.account_fields.as_dict()["Industry"] == "Energy"


def test_activity_log_writes_one_activity_per_contact_and_field_once(runtime):
    for _ in range(2):  # delivered twice
        result = runtime.invoke("activity_log", load_event("activity_log_batch.json"))
        assert result.payload == {"batchItemFailures": []}
    activities = list(ActivityItem.scan())
    assert len(activities) == 2
    first = ActivityItem.get("003000000000000001", "2026-11-27T10:05:00.000Z#account#Industry")
    assert (first.activity_type, first.old_value, first.new_value) == ("Change Data Value", "Retail", "Energy")
    assert (first.source, first.account_id, first.reason) == ("salesforce", ACCOUNT, "Account updated in Salesforce")
