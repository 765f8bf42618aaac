"""A message larger than the queue takes is never sent, never retried, and never blocks the others.

SQS refuses a body over the queue's MaximumMessageSize, and with it the whole SendMessageBatch, every time: before
these rules, one account with huge field values failed every fetch run (the watermark never moved on) and an
activity batch of long non-ASCII values failed its fan-out until the dead-letter queue.
"""

from __future__ import annotations

import pytest
from account_sync.adapters.sqs import MAX_MESSAGE_BYTES, SqsActivityPublisher, SqsBatchSender
from account_sync.contracts import AccountChangeMessage, ActivityBatchMessage, ContactFieldChange
from account_sync.domain.records import ChangeOrigin
from account_sync.ports import MessagesRejected
from account_sync.services.activity_log import ActivityPublisherWithOverflow

from tests.support.cfn_template import load_template
from tests.unit.factories import account_id, account_version, contact_id, stamp
from tests.unit.fakes import FakeActivityStore

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/account-sync-test-account-changes.fifo"


class RecordingSqs:
    """Takes every entry, but answers `Failed` (sender's fault) for the bodies listed in `invalid`."""

    def __init__(self, invalid: set[str] = frozenset()) -> None:
        self.calls: list[list[dict]] = []
        self.invalid = invalid

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.calls.append(Entries)
        failed = [e for e in Entries if e["MessageBody"] in self.invalid]
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failed],
            "Failed": [{"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents"} for e in failed],
        }

    @property
    def sent(self) -> list[str]:
        return [entry["MessageBody"] for call in self.calls for entry in call]


def huge_account(n: int) -> AccountChangeMessage:
    return AccountChangeMessage(account_version(n, minute=1, Name="🚀" * 30_000))  # 12 bytes each, JSON-escaped


def test_the_limit_is_the_queues_maximum_message_size_in_the_template():
    queues = {lid: r for lid, r in load_template()["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    assert {int(q["Properties"]["MaximumMessageSize"]) for q in queues.values()} == {MAX_MESSAGE_BYTES}


def test_a_message_over_the_limit_is_set_aside_unsent_and_the_others_are_queued():
    # given twelve account changes, the fifth of them larger than the queue takes
    sqs = RecordingSqs()
    messages = [AccountChangeMessage(account_version(n, minute=1)) for n in range(1, 13)]
    messages[4] = huge_account(5)
    # when they are sent
    with pytest.raises(MessagesRejected) as rejected:
        SqsBatchSender(sqs, QUEUE, sleep=lambda _: None).send(messages)
    # then the eleven others were sent, once, and the large one is named with its size, never sent
    assert sorted(sqs.sent) == sorted(m.to_body() for i, m in enumerate(messages) if i != 4)
    ((message, reason),) = [(r.message, r.reason) for r in rejected.value.rejected]
    assert message is messages[4] and reason.endswith(f"bytes, over the queue's {MAX_MESSAGE_BYTES}")


def test_a_batch_holds_at_most_the_limit_in_bytes():
    sqs = RecordingSqs()
    messages = [AccountChangeMessage(account_version(n, minute=1, Name="x" * 100_000)) for n in range(1, 6)]
    SqsBatchSender(sqs, QUEUE).send(messages)
    assert [len(call) for call in sqs.calls] == [2, 2, 1]
    assert all(sum(len(e["MessageBody"]) for e in call) <= MAX_MESSAGE_BYTES for call in sqs.calls)


def test_an_entry_sqs_refuses_as_invalid_is_rejected_without_retrying():
    messages = [AccountChangeMessage(account_version(n, minute=1)) for n in (1, 2, 3)]
    sqs = RecordingSqs(invalid={messages[1].to_body()})
    with pytest.raises(MessagesRejected, match="InvalidMessageContents"):
        SqsBatchSender(sqs, QUEUE, sleep=lambda _: None).send(messages)
    assert len(sqs.calls) == 1


def activity_batch(*values: str) -> ActivityBatchMessage:
    changes = tuple(ContactFieldChange(contact_id(n), "Description", None, value) for n, value in enumerate(values))
    return ActivityBatchMessage(account_id(1), ChangeOrigin.ACCOUNT, stamp(1), changes)


def test_an_activity_batch_over_the_limit_is_split_into_batches_that_fit():
    # given 200 changes of 1,000 Japanese characters each: about 1.2 MB once JSON-escaped
    sqs = RecordingSqs()
    batch = activity_batch(*["東京" * 500] * 200)
    assert len(batch.to_body()) > MAX_MESSAGE_BYTES
    # when published
    SqsActivityPublisher(SqsBatchSender(sqs, QUEUE.replace(".fifo", ""))).publish([batch])
    # then every change is queued once, in messages that fit
    assert all(len(body) <= MAX_MESSAGE_BYTES for body in sqs.sent)
    assert sum(body.count('"contact_id"') for body in sqs.sent) == 200


def test_a_single_change_too_large_for_any_message_is_written_to_the_store_instead():
    # given a batch with one huge change (a long text field of emoji) and one ordinary change
    sqs, store = RecordingSqs(), FakeActivityStore()
    huge, small = activity_batch("😀" * 32_000), activity_batch("Retail")
    publisher = ActivityPublisherWithOverflow(
        SqsActivityPublisher(SqsBatchSender(sqs, QUEUE.replace(".fifo", ""))), store, now=lambda: stamp(9)
    )
    # when both are published
    publisher.publish([huge, small])
    # then the ordinary one is queued, and the huge one's activity is in the store, whole
    assert sqs.sent == [small.to_body()]
    ((key, activity),) = store.activities.items()
    assert key == (contact_id(0), f"{stamp(1)}#account#Description") and activity.new_value == "😀" * 32_000
