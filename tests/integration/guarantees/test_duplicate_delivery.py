"""Guarantee 1: a message delivered twice, or a version queued twice, is applied once in effect.

SQS, its Lambda trigger and the fetch's overlapping windows all deliver at least once. Contacts must end the same
and no Change Data Value activity may be written twice.
"""

from __future__ import annotations

from account_sync.contracts import AccountChangeMessage

from tests.integration.guarantees.conftest import (
    activity_keys,
    contact_fields,
    given_contacts,
    sqs_event,
)
from tests.integration.guarantees.faults import Fault
from tests.unit.factories import account_id, account_version

CHANGED_FIELDS = 3  # the factory's Name, Industry and BillingCountry; the template syncs nine


def expected_activities(contact_ids: list[str]) -> int:
    return len(contact_ids) * CHANGED_FIELDS


def test_the_same_message_twice_in_one_batch_is_applied_once(pipeline):
    # given an account with three contacts, and a batch holding one SQS message twice (same id and body)
    contacts = given_contacts(account_id(1), 3)
    body = AccountChangeMessage(account_version(1, minute=1, Industry="Retail")).to_body()
    event = sqs_event(body, body, message_ids=["m-1", "m-1"])
    # when the fan-out handles the batch, and the logging function everything the fan-out queued
    result = pipeline.invoke("fan_out", event)
    pipeline.drain()
    # then both records succeeded, every contact has the version's fields once, and each activity exists once
    assert result.payload == {"batchItemFailures": []}
    assert {fields["Industry"] for fields in contact_fields(contacts).values()} == {"Retail"}
    assert len(activity_keys()) == expected_activities(contacts)
    assert pipeline.activity_log.depth() == 0


def test_the_same_message_in_two_batches_is_applied_once(pipeline, faults):
    # given an account change on the queue, and a first delete of the processed message that SQS loses
    contacts = given_contacts(account_id(1), 3)
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=1, Industry="Retail"))])
    lost_delete = faults.add(
        Fault(
            "sqs",
            "DeleteMessageBatch",
            lambda operation, params, call: {
                "Successful": [],
                "Failed": [
                    {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
                    for e in params["Entries"]
                ],
            },
            when=lambda params: params["QueueUrl"].endswith(".fifo"),
            times=1,
        )
    )
    # when the triggers run until the queues are empty
    totals = pipeline.drain()
    # then the message came back and was handled a second time, to the same effect
    assert lost_delete.fired == 1
    assert pipeline.runtime.stats["FanOutFunction"].invocations == 2
    assert totals.empty
    assert {fields["Industry"] for fields in contact_fields(contacts).values()} == {"Retail"}
    assert len(activity_keys()) == expected_activities(contacts)


def test_the_same_version_queued_twice_under_different_message_ids_is_applied_once(pipeline, caplog):
    # given the same account version queued twice, the second after SQS's 5-minute deduplication window
    # (a re-read of the fetch's overlap, or a redrive), and a Change Data Value batch delivered twice too
    contacts = given_contacts(account_id(1), 3)
    message = AccountChangeMessage(account_version(1, minute=1, Industry="Retail"))
    first, second = pipeline.queue_changes([message]) + pipeline.queue_changes([message], dedup_suffix="-later")
    assert first != second
    pipeline.fan_out.poll_once()
    (activity_body,) = pipeline.bodies("ActivityQueue")
    pipeline.sqs.send_message(QueueUrl=pipeline.resources.queue_url("ActivityQueue"), MessageBody=activity_body)
    # when everything is handled
    totals = pipeline.drain()
    # then the second copy changed nothing and logged nothing, and the repeated batch rewrote the same items
    assert totals.empty and totals.failed == 0
    outcomes = [r.outcome for r in caplog.records if r.getMessage() == "change applied"]
    assert outcomes == ["new", "already_applied"]
    assert {fields["Industry"] for fields in contact_fields(contacts).values()} == {"Retail"}
    written = [r.activities for r in caplog.records if r.getMessage() == "activities written"]
    assert written == [9, 9]  # the batch, handled twice
    assert len(activity_keys()) == expected_activities(contacts)
