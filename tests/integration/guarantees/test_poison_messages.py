"""Issue 10, 2.5: a poison message fails alone, also inside its account's FIFO message group.

A message that can never succeed used to hold every later message of its group: handed back with it on each
receive, their receive counts grew in lockstep, and SQS dead-lettered them together at maxReceiveCount. The
fan-out now sets such a message aside in the dead-letter queue itself (queue_records.PoisonPolicy): at once when it
is malformed or DynamoDB refuses its write as invalid, at its 4th receive for an unknown error. Here
the real handler runs under the emulated event source mapping, on the queues and RedrivePolicy of template.yaml.
"""

from __future__ import annotations

import json

import pytest
from account_sync.contracts import AccountChangeMessage

from tests.integration.guarantees.conftest import Pipeline, activity_keys, contact_fields, given_contacts
from tests.integration.guarantees.faults import Fault, client_error
from tests.unit.factories import account_id, account_version, stamp

UNKNOWN_ERROR_RECEIVES = 4  # template.yaml, the fan-out's UNKNOWN_ERROR_RECEIVES


def the_version_at(minute: int):
    """The accounts table's conditional UpdateItem that accepts account 1's version of this minute."""
    return lambda params: (
        str(params.get("TableName", "")).endswith("-accounts")
        and params.get("Key", {}).get("account_id", {}).get("S") == account_id(1)
        and stamp(minute) in json.dumps(params.get("ExpressionAttributeValues", {}))
    )


def set_aside(pipeline: Pipeline) -> list[dict]:
    url = pipeline.resources.queue_url("AccountChangesDeadLetterQueue")
    messages = pipeline.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", [])
    return messages


@pytest.mark.parametrize(
    ("poison", "failure", "receives"),
    [
        ("malformed", "malformed", 1),
        ("refused-by-dynamodb", "refused", 1),
        ("unknown-error", "failed", UNKNOWN_ERROR_RECEIVES),
    ],
)
def test_a_poison_message_in_the_middle_of_an_accounts_group_ends_alone_in_the_dlq(
    pipeline, faults, caplog, poison, failure, receives
):
    # given an account with three contacts, and four messages of its group: v1, the poison, v3, v4
    contacts = given_contacts(account_id(1), 3)
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=1, Industry="Retail"))])
    if poison == "malformed":  # a number DynamoDB cannot store
        body = AccountChangeMessage(account_version(1, minute=2, Industry="Banking")).to_body()
        poison_id = pipeline.queue_raw(body.replace('"Industry":"Banking"', '"Industry":NaN'), group=account_id(1))
    else:
        code = "ValidationException" if poison == "refused-by-dynamodb" else "InternalFailure"
        faults.add(Fault("dynamodb", "UpdateItem", client_error(code), when=the_version_at(2)))
        (poison_id,) = pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=2, Industry="Banking"))])
    pipeline.queue_changes(
        [
            AccountChangeMessage(account_version(1, minute=3, Industry="Energy")),
            AccountChangeMessage(account_version(1, minute=4, Industry="Energy", Name="Renamed")),
        ]
    )
    # when the trigger runs until the queue is empty, handing the group out again after each failure
    totals = pipeline.drain()
    # then SQS dead-lettered nothing itself: the consumer set the poison aside, alone, after `receives` receives
    assert totals.empty and totals.moved_to_dlq == 0 and totals.function_errors == 0
    (dead,) = set_aside(pipeline)
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["failure"] == failure and attributes["receive_count"] == str(receives)
    assert attributes["source_message_id"] == poison_id
    assert attributes["source_queue"].endswith("account-changes.fifo")
    assert dead["Attributes"]["MessageGroupId"] == account_id(1)
    assert "Banking" not in attributes["reason"]  # the reason names the field and the problem, never the value
    (line,) = [r for r in caplog.records if r.getMessage() == "message set aside in the dead-letter queue"]
    assert line.message_id == poison_id and line.failure == failure
    # and every healthy follower was applied: the contacts end at v4, with one activity per contact per change
    assert all(
        fields["Industry"] == "Energy" and fields["Name"] == "Renamed" for fields in contact_fields(contacts).values()
    )
    keys = activity_keys()
    for minute, field in ((1, "Industry"), (3, "Industry"), (4, "Name")):
        assert len([k for k in keys if k[1].startswith(stamp(minute)) and k[1].endswith(f"#{field}")]) == 3


def test_account_less_contacts_do_not_wait_behind_a_bad_one(pipeline):
    """Each contact without an account is its own message group: one that fails holds no other."""
    from account_sync.contracts import ContactChangesMessage
    from account_sync.domain.records import ContactVersion

    def loose(n: int) -> ContactChangesMessage:
        return ContactChangesMessage((ContactVersion(f"003L{n:014d}", stamp(1), False, None, "Ann", f"Last{n}", None),))

    messages = [loose(n) for n in range(1, 5)]
    groups = {m.group_id for m in messages}
    assert len(groups) == 4
    bad_body = messages[1].to_body().replace('"Last2"', '"Last\\ud800"')
    pipeline.queue_changes([messages[0]])
    pipeline.queue_raw(bad_body, group=messages[1].group_id)
    pipeline.queue_changes(messages[2:])
    first = pipeline.poll_fan_out()
    assert (first.received, first.succeeded, first.failed) == (4, 4, 0)  # the bad one set aside, the rest applied
    assert len(set_aside(pipeline)) == 1
