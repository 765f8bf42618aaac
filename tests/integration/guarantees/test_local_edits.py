"""Local edits (SPEC R3) of a large account: applied in segments, in order with Salesforce, crash-safe.

The edit is queued in the account's FIFO group as the marketing API queues it; the fan-out plans segments behind
whatever the group already holds, so a newer Salesforce version or a second edit may be applied between the
plan and the segments. The handlers run as Lambda runs them, from the queues, with segments of 8 contacts.
"""

from __future__ import annotations

import pytest
from account_sync.adapters.dynamodb_models import ActivityItem
from account_sync.contracts import AccountChangeMessage, LocalEditMessage
from account_sync.domain.records import LocalEdit

from tests.integration.guarantees.conftest import account_item, activity_keys, contact_fields, given_contacts
from tests.integration.guarantees.faults import Fault, contact_key_in, killed
from tests.unit.factories import account_id, account_version, stamp

CONTACTS = 20
SEGMENT_SIZE = 8  # 20 contacts: three segments of at most 8


@pytest.fixture
def synced(pipeline) -> list[str]:
    """An account of 20 contacts, synced from Salesforce (version 10:01, Industry "Energy"), fanned out in 8s."""
    pipeline.runtime.add_env({"FANOUT_SEGMENT_SIZE": str(SEGMENT_SIZE)})
    contacts = given_contacts(account_id(1), CONTACTS)
    pipeline.queue_changes([AccountChangeMessage(account_version(1, minute=1))])
    assert pipeline.drain().empty
    return contacts


def edit(value: str, minute: int = 30, field: str = "Industry") -> LocalEdit:
    through = f"003{account_id(1)[-9:]}000001"
    return LocalEdit(f"edit-{minute}", through, account_id(1), field, value, stamp(minute))


def local_activities(minute: int = 30, field: str = "Industry") -> dict[str, tuple[str | None, str | None]]:
    """The Change Data Value activities of one edit, by contact: (old, new); a duplicate would show as a key twice."""
    key = f"{stamp(minute)}#local#{field}#edit-{minute}"
    found: dict[str, tuple[str | None, str | None]] = {}
    for subject, activity_key in activity_keys():
        if activity_key == key:
            assert subject not in found
            item = ActivityItem.get(subject, activity_key)
            found[subject] = (item.old_value, item.new_value)
    return found


def industries(contacts: list[str]) -> set[object]:
    return {fields.get("Industry") for fields in contact_fields(contacts).values()}


def outcomes(caplog) -> list[tuple[str, str]]:
    return [(r.kind, r.outcome) for r in caplog.records if r.getMessage() == "change applied"]


def test_an_edit_of_a_large_account_is_applied_in_segments_each_in_its_own_invocation(pipeline, synced, caplog):
    # when an edit of the account's Industry is queued, as the marketing API queues it
    caplog.clear()
    pipeline.queue_changes([LocalEditMessage(edit("Retail"))])
    totals = pipeline.drain()
    # then the edit's invocation planned three segments, each applied by a later invocation of the trigger
    assert totals.empty and totals.failed == 0
    assert outcomes(caplog) == [("local_edit", "planned")] + [("local_edit_segment", "applied")] * 3
    written = [r.contacts_written for r in caplog.records if getattr(r, "kind", None) == "local_edit_segment"]
    assert written == [8, 8, 4]
    # and every contact and the stored account hold the value, with one activity per contact
    assert industries(synced) == {"Retail"}
    assert account_item(account_id(1)).fields.as_dict()["Industry"] == "Retail"
    assert local_activities() == {cid: ("Energy", "Retail") for cid in synced}


def contact_writes_then_killed(contacts: list[str], writes_before: int) -> Fault:
    return Fault("dynamodb", "UpdateItem", killed, when=contact_key_in(set(contacts)), after=writes_before)


def killed_queueing(kind: str) -> Fault:
    """Killed while sending its first batch of the queue messages of `kind`."""
    return Fault("sqs", "SendMessageBatch", killed, when=lambda params: kind in params["Entries"][0]["MessageBody"])


@pytest.mark.parametrize(
    "kill_point",
    ["writing-the-second-segment", "queueing-a-segments-activities", "queueing-the-segments"],
)
def test_an_edit_killed_halfway_is_finished_by_the_redelivery_without_losing_or_doubling_activities(
    pipeline, synced, faults, kill_point
):
    # given the edit of a large account, killed after 11 of its contact writes, or after a segment's 8 contact
    # writes but before their activities were queued, or while queueing its segments
    fault = {
        "writing-the-second-segment": lambda: contact_writes_then_killed(synced, writes_before=11),
        "queueing-a-segments-activities": lambda: killed_queueing('"origin":"local","system_modstamp"'),
        "queueing-the-segments": lambda: killed_queueing('"origin":"local","edit"'),
    }[kill_point]()
    faults.add(fault)
    pipeline.queue_changes([LocalEditMessage(edit("Retail"))])
    for _ in range(10):
        if fault.fired:
            break
        pipeline.poll_fan_out()
    assert fault.fired
    # when SQS hands the message out again, to a new execution environment
    faults.clear()
    totals = pipeline.drain()
    # then every contact holds the value, and each has exactly one activity of the edit, from its real old value
    assert pipeline.runtime.stats["FanOutFunction"].errors >= 1
    assert totals.empty and pipeline.depth("AccountChangesDeadLetterQueue") == 0
    assert industries(synced) == {"Retail"}
    assert local_activities() == {cid: ("Energy", "Retail") for cid in synced}


def test_a_salesforce_version_queued_between_an_edit_and_its_segments_is_never_overwritten(pipeline, synced, caplog):
    # given an edit and, behind it in the account's group, a newer Salesforce version: the edit's segments are
    # queued behind that version
    caplog.clear()
    pipeline.queue_changes(
        [LocalEditMessage(edit("Retail")), AccountChangeMessage(account_version(1, minute=40, Industry="Banking"))]
    )
    # when the triggers run
    assert pipeline.drain().empty
    # then the version overwrote the edit on the stored account and every contact (SPEC R3): its own segments
    # were queued behind the edit's, which still wrote the edit with the activities owed since it was accepted
    # (issue 10, 2.1)
    assert ("local_edit", "planned") in outcomes(caplog)
    assert [o for k, o in outcomes(caplog) if k == "local_edit_segment"] == ["superseded"] * 3
    assert industries(synced) == {"Banking"}
    assert account_item(account_id(1)).fields.as_dict()["Industry"] == "Banking"
    assert local_activities() == {cid: ("Energy", "Retail") for cid in synced}
    from_salesforce = {s for s, k in activity_keys() if k == f"{stamp(40)}#account#Industry"}
    assert from_salesforce == set(synced)


def test_two_edits_of_a_field_in_a_row_end_at_the_second_with_one_activity_per_contact_and_edit(
    pipeline, synced, caplog
):
    # given two edits of Industry queued one after the other: the first one's segments come after the second
    caplog.clear()
    pipeline.queue_changes([LocalEditMessage(edit("First", minute=30)), LocalEditMessage(edit("Second", minute=31))])
    # when the triggers run
    assert pipeline.drain().empty
    # then the first edit's segments (superseded on the account, still owed their activities: issue 10, 2.1)
    # ran before the second edit's, and every contact holds the second value, with one activity per edit
    segments = [o for k, o in outcomes(caplog) if k == "local_edit_segment"]
    assert segments == ["superseded"] * 3 + ["applied"] * 3
    assert industries(synced) == {"Second"}
    assert account_item(account_id(1)).fields.as_dict()["Industry"] == "Second"
    assert local_activities(minute=30) == {cid: ("Energy", "First") for cid in synced}
    assert local_activities(minute=31) == {cid: ("First", "Second") for cid in synced}


def test_the_same_edit_queued_twice_is_applied_once(pipeline, synced):
    # given the same edit queued twice, the second time after SQS's 5-minute deduplication window
    message = LocalEditMessage(edit("Retail"))
    pipeline.queue_changes([message])
    pipeline.queue_changes([message], dedup_suffix="-later")
    # when both are handled
    assert pipeline.drain().empty
    # then every contact has the value and one activity of the edit
    assert industries(synced) == {"Retail"}
    assert local_activities() == {cid: ("Energy", "Retail") for cid in synced}
