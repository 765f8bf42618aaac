"""Guarantee 5: a fan-out killed halfway through a large account (a Lambda timeout) is finished by the redelivery.

Lambda stops the execution environment: no `finally` runs, nothing already written is undone, and SQS hands the
whole batch out again after its visibility timeout. The redelivery completes the rest, emits the activities the
killed invocation had not queued yet (from the contacts' `account_previous_values`, same keys), and marks the
version applied: nothing is left "in progress".
"""

from __future__ import annotations

import pytest
from account_sync.contracts import AccountChangeMessage

from tests.integration.guarantees.conftest import account_item, activity_keys, contact_fields, given_contacts
from tests.integration.guarantees.faults import Fault, contact_key_in, killed
from tests.unit.factories import account_id, account_version, stamp

CONTACTS = 20
SEGMENT_SIZE = 8  # 20 contacts: three segments of at most 8


def contact_writes_then_killed(contact_ids: list[str], writes_before: int) -> Fault:
    return Fault("dynamodb", "UpdateItem", killed, when=contact_key_in(set(contact_ids)), after=writes_before)


def segments_queued_then_killed() -> Fault:
    return Fault(
        "sqs",
        "SendMessageBatch",
        killed,
        when=lambda params: (
            params["QueueUrl"].endswith(".fifo") and '"change_segment"' in params["Entries"][0]["MessageBody"]
        ),
    )


@pytest.mark.parametrize("kill_point", ["writing-the-second-segment", "queueing-the-segments"])
def test_a_fan_out_killed_halfway_through_a_large_account_is_finished_by_the_redelivery(pipeline, faults, kill_point):
    # given an account of 20 contacts fanned out in segments of 8, synced once already
    pipeline.runtime.add_env({"FANOUT_SEGMENT_SIZE": str(SEGMENT_SIZE)})
    contacts = given_contacts(account_id(1), CONTACTS)
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=1))])
    pipeline.drain()
    before = activity_keys()
    # and its next version, whose fan-out is killed: after 11 of its contact writes, or while queueing its plan
    fault = (
        contact_writes_then_killed(contacts, writes_before=11)
        if kill_point == "writing-the-second-segment"
        else segments_queued_then_killed()
    )
    faults.add(fault)
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=2, Industry="Retail"))])
    for _ in range(10):
        if fault.fired:
            break
        pipeline.poll_fan_out()
    assert fault.fired  # (the writes running in parallel when it died failed with it)
    # when SQS hands the batch out again, to a new execution environment
    faults.clear()
    totals = pipeline.drain()
    # then every contact holds the new version, each has exactly one activity for the changed field, and the
    # version is marked applied
    assert pipeline.runtime.stats["FanOutFunction"].errors >= 1  # the kill
    assert totals.empty and pipeline.depth("AccountChangesDeadLetterQueue") == 0
    assert {f["Industry"] for f in contact_fields(contacts).values()} == {"Retail"}
    new_activities = [key for key in activity_keys() if key not in before]
    assert sorted(new_activities) == sorted((cid, f"{stamp(2)}#account#Industry") for cid in contacts)
    account = account_item(account_id(1))
    assert account.applied_modstamp == stamp(2)
    assert account.segments_total == 3 and not account.segments_done  # counted on the plan's item, not here
