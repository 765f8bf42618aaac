"""Guarantee 10: messages moved back from a dead-letter queue after a fix are applied once in effect.

A redrive is late by nature: newer versions of the same account may have been applied meanwhile (the older one
then changes nothing), it may be started twice, and activity batches may come back after their activities were
written by another delivery. moto has no message move task: `redrive` does what one does, message by message
(same body, same FIFO group).
"""

from __future__ import annotations

import uuid

from account_sync.contracts import (
    AccountChangeMessage,
    ActivityBatchMessage,
    ContactFieldChange,
    parse_change_message,
)
from account_sync.domain.records import ChangeOrigin

from tests.integration.guarantees.conftest import (
    Pipeline,
    account_item,
    activity_keys,
    contact_fields,
    given_contacts,
    max_receive_count,
)
from tests.integration.guarantees.faults import Fault, account_key_in, client_error, table
from tests.unit.factories import account_id, account_version, contact_id, stamp


def redrive(pipeline: Pipeline, dead_letter_queue: str, source_queue: str) -> int:
    """Move every message of the dead-letter queue back to its source queue, as `StartMessageMoveTask` does."""
    sqs, dlq_url = pipeline.sqs, pipeline.resources.queue_url(dead_letter_queue)
    source_url = pipeline.resources.queue_url(source_queue)
    moved = 0
    while batch := sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        for message in batch:
            fifo = {}
            if source_url.endswith(".fifo"):
                fifo = {"MessageGroupId": message["Attributes"]["MessageGroupId"]}
                fifo["MessageDeduplicationId"] = uuid.uuid4().hex  # a second move is not deduplicated either
            sqs.send_message(QueueUrl=source_url, MessageBody=message["Body"], **fifo)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def test_redriven_account_changes_are_applied_once_and_an_outdated_one_changes_nothing(pipeline, faults):
    # given two accounts whose changes were refused as invalid by the accounts table (a bug), and set aside in
    # the dead-letter queue by the fan-out at once
    contacts = {n: given_contacts(account_id(n), 2) for n in (1, 2)}
    bug = faults.add(
        Fault(
            "dynamodb",
            "UpdateItem",
            client_error("ValidationException"),
            when=account_key_in({account_id(1), account_id(2)}),
        )
    )
    pipeline.queue_changes([AccountChangeMessage(account_version(n, minute=1, Industry="Old")) for n in (1, 2)])
    pipeline.drain()
    assert pipeline.depth("AccountChangesDeadLetterQueue") == 2 and bug.fired == 2
    # and, once fixed, account 1 changed again in Salesforce and was applied before anyone redrove the queue
    faults.clear()
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=5, Industry="New"))])
    pipeline.drain()
    activities_before = activity_keys()
    # when the dead-letter queue is redriven, twice (a second operator, or a retried move task)
    dead_letters = pipeline.bodies("AccountChangesDeadLetterQueue")
    moved = redrive(pipeline, "AccountChangesDeadLetterQueue", "AccountChangesQueue")
    pipeline.drain()
    for body in dead_letters:  # the second redrive: the same messages, under new ids
        pipeline.queue_raw(body, group=parse_change_message(body).group_id)
    pipeline.drain()
    # then account 1 kept its newer version, and account 2's version was applied, its activities once each
    assert moved == 2
    assert {f["Industry"] for f in contact_fields(contacts[1]).values()} == {"New"}
    assert {f["Industry"] for f in contact_fields(contacts[2]).values()} == {"Old"}
    assert account_item(account_id(1)).system_modstamp == stamp(5)
    assert account_item(account_id(2)).applied_modstamp == stamp(1)
    new_activities = [key for key in activity_keys() if key not in activities_before]
    assert sorted(new_activities) == sorted(
        (cid, f"{stamp(1)}#account#{name}") for cid in contacts[2] for name in ("Name", "Industry", "BillingCountry")
    )
    assert pipeline.depth("AccountChangesDeadLetterQueue") == 0


def test_redriven_activity_batches_write_each_activity_once(pipeline, faults):
    # given three Change Data Value batches whose writes failed maxReceiveCount times (the table refused them)
    bug = faults.add(
        Fault("dynamodb", "BatchWriteItem", client_error("ValidationException"), when=table("-activities"))
    )
    url = pipeline.resources.queue_url("ActivityQueue")
    batches = [
        ActivityBatchMessage(
            account_id(1),
            ChangeOrigin.ACCOUNT,
            stamp(minute),
            tuple(ContactFieldChange(contact_id(n), "Industry", "A", "B") for n in range(4)),
        )
        for minute in (1, 2, 3)
    ]
    for batch in batches:
        pipeline.sqs.send_message(QueueUrl=url, MessageBody=batch.to_body())
    assert pipeline.drain().moved_to_dlq == 3 and bug.fired == 3 * max_receive_count("ActivityQueue")
    # when, once fixed, the dead-letter queue is redriven, and the same batches come back once more
    faults.clear()
    assert redrive(pipeline, "ActivityDeadLetterQueue", "ActivityQueue") == 3
    pipeline.drain()
    for batch in batches:
        pipeline.sqs.send_message(QueueUrl=url, MessageBody=batch.to_body())
    pipeline.drain()
    # then each activity exists once
    assert len(activity_keys()) == 3 * 4
    assert pipeline.depth("ActivityDeadLetterQueue") == 0
