"""Guarantee 3: one malformed message fails alone, with its reason logged, and ends in the dead-letter queue.

The nine other messages of its batch succeed the first time. On the FIFO account-changes queue the fan-out sets
the bad one aside in the dead-letter queue itself, at once, body intact and its reason beside it (so that it
never holds its message group: test_poison_messages.py). On the standard activity queue, where a failure blocks
nothing, it is the only batch item failure, comes back until SQS has received it `maxReceiveCount` (35) times, and
SQS moves it to the dead-letter queue.
"""

from __future__ import annotations

import json

import pytest
from account_sync.contracts import AccountChangeMessage, ActivityBatchMessage, ContactFieldChange
from account_sync.domain.records import ChangeOrigin

from tests.integration.guarantees.conftest import activity_keys, contact_fields, given_contacts, max_receive_count
from tests.unit.factories import account_id, account_version, contact_id, stamp

MAX_RECEIVE_COUNT = max_receive_count("ActivityQueue")

GOOD = json.loads(AccountChangeMessage(account_version(99, minute=1)).to_body())
WITHOUT_FIELD = {**GOOD, "version": {k: v for k, v in GOOD["version"].items() if k != "system_modstamp"}}
WRONG_TYPE = {**GOOD, "version": {**GOOD["version"], "is_deleted": "no"}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"type": "account_change", "schema": 1, "version": {', "body is not JSON"),
        (json.dumps(WITHOUT_FIELD), "system_modstamp must be a non-empty string"),
        (json.dumps(WRONG_TYPE), "is_deleted must be true or false, got str"),
    ],
    ids=["bad-json", "missing-field", "wrong-type"],
)
def test_one_malformed_change_in_a_batch_of_ten_fails_alone_then_dead_letters(pipeline, caplog, body, reason):
    # given nine good account changes (one contact each) and one malformed message, queued as one batch of ten
    contacts = {n: given_contacts(account_id(n), 1) for n in range(1, 10)}
    pipeline.queue_changes([AccountChangeMessage(account_version(n, minute=1, Industry="Retail")) for n in range(1, 6)])
    bad_id = pipeline.queue_raw(body, group="001MALFORMED00001")
    pipeline.queue_changes(
        [AccountChangeMessage(account_version(n, minute=1, Industry="Retail")) for n in range(6, 10)]
    )
    # when the trigger hands the fan-out its first batch
    first = pipeline.poll_fan_out()
    # then the nine were applied and the malformed one was set aside at once, with its reason logged
    assert (first.received, first.succeeded, first.failed) == (10, 10, 0)
    (error,) = [r for r in caplog.records if r.getMessage() == "malformed change message"]
    assert error.levelname == "ERROR" and error.message_id == bad_id and error.reason.startswith(reason)
    (aside,) = [r for r in caplog.records if r.getMessage() == "message set aside in the dead-letter queue"]
    assert aside.message_id == bad_id and aside.reason.startswith(reason) and aside.failure == "malformed"
    assert all(fields["Industry"] == "Retail" for ids in contacts.values() for fields in contact_fields(ids).values())
    # and when the triggers go on until the queues are empty
    totals = pipeline.drain()
    # then it was tried once, and waits in the dead-letter queue with its body (SQS itself moved nothing)
    assert totals.empty and totals.moved_to_dlq == 0
    assert totals.function_errors == 0
    errors = [r for r in caplog.records if r.getMessage() == "malformed change message"]
    assert len(errors) == 1
    assert pipeline.bodies("AccountChangesDeadLetterQueue") == [body]
    assert len([k for k in activity_keys() if k[1].endswith("#Industry")]) == 9  # the nine, once each


def test_one_malformed_activity_batch_in_ten_fails_alone_then_dead_letters(pipeline, caplog):
    # given nine good Change Data Value batches and one whose change has a value of the wrong type
    url = pipeline.resources.queue_url("ActivityQueue")
    for n in range(1, 10):
        batch = ActivityBatchMessage(
            account_id(1), ChangeOrigin.ACCOUNT, stamp(1), (ContactFieldChange(contact_id(n), "Industry", None, "X"),)
        )
        pipeline.sqs.send_message(QueueUrl=url, MessageBody=batch.to_body())
    bad = json.loads(batch.to_body())
    bad["changes"][0]["new"] = {"nested": "object"}
    bad_id = pipeline.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(bad))["MessageId"]
    # when the logging function runs until its queue is empty
    first = pipeline.activity_log.poll_once()
    totals = pipeline.drain()
    # then the nine were written once, and the bad one alone failed, maxReceiveCount times, into the DLQ
    assert (first.received, first.succeeded, first.failed) == (10, 9, 1)
    assert totals.moved_to_dlq == 1 and totals.function_errors == 0
    assert len(activity_keys()) == 9
    errors = [r for r in caplog.records if r.getMessage() == "malformed activity batch"]
    assert len(errors) == MAX_RECEIVE_COUNT and {r.message_id for r in errors} == {bad_id}
    assert errors[0].reason == "field 'new' has an unsupported value type dict"
    assert pipeline.bodies("ActivityDeadLetterQueue") == [json.dumps(bad)]
