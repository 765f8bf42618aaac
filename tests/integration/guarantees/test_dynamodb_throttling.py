"""Guarantee 4: DynamoDB throttling is survived: beyond the SDK's retries, and `UnprocessedItems`, it loses nothing
and dead-letters nothing.

The SDK retries a throttled request itself (standard mode: 4 attempts); the faults here are what is left once it
has given up. The adapters turn them into `Throttled` (a `TransientError`); the handler reports that message as a
batch item failure with the reason logged and hands it back with a short visibility (0 s in these tests); SQS
brings it back; the redelivery finishes the work, and nothing is written twice. The last test throttles as
DynamoDB does, under the SDK's own retries (`local_stack.dynamodb_throttling`).
`BatchWriteItem`'s `UnprocessedItems` are retried inside the activity store with growing backoff and jitter first.
"""

from __future__ import annotations

import account_sync.adapters.dynamodb as dynamodb_adapter
import pytest
from account_sync.adapters.dynamodb import DynamoContactRepository
from account_sync.contracts import AccountChangeMessage, ActivityBatchMessage, ContactFieldChange
from account_sync.domain.records import ChangeOrigin
from account_sync.ports import TransientError

from tests.integration.guarantees.conftest import activity_keys, contact_fields, given_contacts
from tests.integration.guarantees.faults import Fault, client_error, contact_key_in, table
from tests.unit.factories import account_id, account_version, contact_id, stamp

THROTTLED = "ProvisionedThroughputExceededException"


def test_a_contact_write_throttled_beyond_the_sdk_retries_fails_only_its_message_until_redelivered(
    pipeline, faults, caplog
):
    # given three accounts of two contacts, and the writes of account 2's contacts throttled for a while
    contacts = {n: given_contacts(account_id(n), 2) for n in (1, 2, 3)}
    throttled = faults.add(
        Fault("dynamodb", "UpdateItem", client_error(THROTTLED), when=contact_key_in(set(contacts[2])), times=2)
    )
    messages = pipeline.queue_changes(
        [AccountChangeMessage(account_version(n, minute=1, Industry="Retail")) for n in (1, 2, 3)]
    )
    # when the fan-out gets the three in one batch
    first = pipeline.poll_fan_out()
    # then only account 2's message failed, with the reason logged, and the others are applied
    assert (first.received, first.succeeded, first.failed, first.function_errors) == (3, 2, 1, 0)
    (warning,) = [r for r in caplog.records if r.getMessage() == "change not applied, retried later"]
    assert warning.message_id == messages[1] and THROTTLED in warning.reason
    assert {f["Industry"] for n in (1, 3) for f in contact_fields(contacts[n]).values()} == {"Retail"}
    # and when SQS redelivers it, the throttling over
    totals = pipeline.drain()
    # then account 2 is complete, and every contact has its activities once
    assert throttled.fired == 2 and totals.empty
    assert {f["Industry"] for n in (1, 2, 3) for f in contact_fields(contacts[n]).values()} == {"Retail"}
    assert len(activity_keys()) == 6 * 3


def test_activities_throttled_beyond_the_store_retries_fail_the_batch_until_redelivered(pipeline, faults, monkeypatch):
    # given a Change Data Value batch, and BatchWriteItem on the activities table throttled for seven calls:
    # more than the activity store's six attempts
    backoffs: list[int] = []
    monkeypatch.setattr(dynamodb_adapter, "_backoff", lambda base, attempt: backoffs.append(attempt) or 0.0)
    throttled = faults.add(
        Fault("dynamodb", "BatchWriteItem", client_error(THROTTLED), when=table("-activities"), times=7)
    )
    changes = tuple(ContactFieldChange(contact_id(n), "Industry", "Energy", "Retail") for n in range(30))
    batch = ActivityBatchMessage(account_id(1), ChangeOrigin.ACCOUNT, stamp(1), changes)
    pipeline.sqs.send_message(QueueUrl=pipeline.resources.queue_url("ActivityQueue"), MessageBody=batch.to_body())
    # when the logging function runs until its queue is empty
    first = pipeline.activity_log.poll_once()
    totals = pipeline.drain()
    # then the first delivery backed off between its six attempts and failed the message, the second wrote all
    assert (first.failed, first.function_errors) == (1, 0)
    assert backoffs[:5] == [0, 1, 2, 3, 4]  # one growing backoff between each two of the six attempts
    assert throttled.fired == 7 and totals.empty
    assert len(activity_keys()) == 30


def test_unprocessed_items_beyond_the_store_retries_fail_the_batch_until_redelivered(pipeline, faults, monkeypatch):
    # given BatchWriteItem answering that it processed none of the items, eight times in a row
    monkeypatch.setattr(dynamodb_adapter, "_backoff", lambda base, attempt: 0.0)

    def nothing_processed(operation, params, call):
        return {"UnprocessedItems": params["RequestItems"]}

    unprocessed = faults.add(Fault("dynamodb", "BatchWriteItem", nothing_processed, when=table("-activities"), times=8))
    changes = tuple(ContactFieldChange(contact_id(n), "Industry", None, "Retail") for n in range(30))
    batch = ActivityBatchMessage(account_id(1), ChangeOrigin.ACCOUNT, stamp(1), changes)
    pipeline.sqs.send_message(QueueUrl=pipeline.resources.queue_url("ActivityQueue"), MessageBody=batch.to_body())
    # when the logging function runs until its queue is empty
    first = pipeline.activity_log.poll_once()
    pipeline.drain()
    # then the first delivery gave up (a batch item failure), a later one wrote every activity, each once
    assert first.failed == 1
    assert unprocessed.fired == 8
    assert len(activity_keys()) == 30


@pytest.mark.parametrize("read", ["count", "plan", "members"])
def test_every_read_of_the_account_index_translates_throttling_into_a_transient_error(pipeline, faults, read):
    # given an account's contacts, and every query of the contacts table throttled
    given_contacts(account_id(1), 3)
    faults.add(Fault("dynamodb", "Query", client_error(THROTTLED), when=table("-contacts")))
    contacts = DynamoContactRepository()
    reads = {
        "count": lambda: contacts.count_members(account_id(1), limit=10),
        "plan": lambda: list(contacts.member_key_pages(account_id(1), page_size=2)),
        "members": lambda: list(contacts.members(account_id(1))),
    }
    # then the read says "retry later", which the handler reports as a batch item failure with the reason
    with pytest.raises(TransientError, match=THROTTLED):
        reads[read]()


# --- DynamoDB throttling as DynamoDB does it, under the SDK's own retries (local_stack.dynamodb_throttling) ---

LARGE = 60  # contacts of the account: several segments of 16
SEGMENT = 16


@pytest.fixture
def throttled_dynamodb(monkeypatch):
    """Token buckets per partition key and per table (not installed yet: `installed()` turns them on); the SDK's
    backoff scaled down 20 times (its waits of up to 1, 2, 4 s become 50, 100, 200 ms), so that the SDK gives up,
    as it does in production, within a test's time."""
    from botocore.retries.standard import ExponentialBackoff
    from local_stack.dynamodb_throttling import DynamoThrottle

    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.05)
    throttle = DynamoThrottle(partition_writes=4, table_writes=25, table_reads=100)
    yield throttle
    throttle.uninstall()


def test_a_throttled_fan_out_of_a_large_account_ends_complete_with_no_dead_letter_and_exact_activities(
    pipeline, throttled_dynamodb
):
    # given an account larger than a segment, synced once, and the tables throttled per partition key and per table
    pipeline.runtime.add_env({"FANOUT_SEGMENT_SIZE": str(SEGMENT), "ACTIVITY_THRESHOLD": str(LARGE)})
    contacts = given_contacts(account_id(1), LARGE)
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=1, Industry="Energy"))])
    assert pipeline.drain(timeout=120).empty
    before = set(activity_keys())
    throttled_dynamodb.install()
    # when a newer version changing two fields comes, and every function runs until the queues are empty
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=2, Industry="Retail", Rating="Hot"))])
    totals = pipeline.drain(timeout=180)
    throttled_dynamodb.uninstall()  # the test's own reads
    # then DynamoDB throttled it, the handlers handed throttled messages back, and still: every contact holds the
    # newest version, no message reached a dead-letter queue, and each contact has exactly one activity per change
    assert throttled_dynamodb.total_throttled > 0
    assert totals.empty and totals.moved_to_dlq == 0
    assert pipeline.depth("AccountChangesDeadLetterQueue") == pipeline.depth("ActivityDeadLetterQueue") == 0
    fields = contact_fields(contacts)
    assert {(f["Industry"], f.get("Rating")) for f in fields.values()} == {("Retail", "Hot")}
    new = sorted(set(activity_keys()) - before)
    assert new == sorted(
        [(cid, f"{stamp(2)}#account#Industry") for cid in contacts]
        + [(cid, f"{stamp(2)}#account#Rating") for cid in contacts]
    )
