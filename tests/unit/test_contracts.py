import json
from dataclasses import replace

import pytest
from account_sync.contracts import (
    AccountChangeMessage,
    ActivityBatchMessage,
    ChangeSegmentMessage,
    ContactChangesMessage,
    ContactFieldChange,
    LocalEditMessage,
    MalformedMessage,
    parse_activity_batch,
    parse_change_message,
)
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import AccountChange
from account_sync.domain.records import ChangeOrigin, LocalEdit

from tests.unit.factories import account_version, contact_id, contact_version, stamp


class TestRoundTrip:
    def test_every_change_message_survives_the_queue(self):
        version = account_version(AnnualRevenue=12.5, NumberOfEmployees=3, Rating=None)
        segment = ChangeSegmentMessage(
            AccountChange.of_version(version), "plan1", 0, 2, None, contact_id(9), ActivityLogging.SUPPRESSED
        )
        edit = LocalEditMessage(LocalEdit("e1", contact_id(1), version.account_id, "Rating", None, stamp(3)))
        edit_segment = ChangeSegmentMessage(
            AccountChange.of_edit(edit.edit, stamp(1)), "plan2", 2, 3, contact_id(4), None, ActivityLogging.LOGGED
        )
        for message in (
            AccountChangeMessage(version),
            segment,
            ContactChangesMessage((contact_version(1), contact_version(2))),
            edit,
            edit_segment,
        ):
            assert parse_change_message(message.to_body()) == message

    def test_activity_batch_survives_the_queue(self):
        batch = ActivityBatchMessage(
            "001000000000000001",
            ChangeOrigin.ACCOUNT,
            stamp(1),
            (ContactFieldChange(contact_id(1), "Name", "a", None),),
        )
        assert parse_activity_batch(batch.to_body()) == batch

    def test_fifo_group_is_the_account_and_dedup_id_is_stable(self):
        a, b = AccountChangeMessage(account_version()), AccountChangeMessage(account_version())
        assert a.group_id == "001000000000000001"
        assert a.deduplication_id == b.deduplication_id
        assert ContactChangesMessage((contact_version(1, account=2),)).group_id == "001000000000000002"
        assert ContactChangesMessage((contact_version(1, account=None),)).group_id == "contacts-without-account"

    def test_a_segment_is_in_its_accounts_group_and_deduplicated_by_its_change_plan_and_position(self):
        edit = LocalEdit("e1", contact_id(1), "001000000000000007", "Rating", "Hot", stamp(3))

        def segment(index=0, plan="p1", change=None, through=None):
            change = change or AccountChange.of_edit(edit, stamp(1))
            return ChangeSegmentMessage(change, plan, index, 2, None, through, ActivityLogging.LOGGED)

        first = segment()
        assert first.group_id == "001000000000000007"
        # the same segment queued twice is dropped by SQS; another position, plan or change is another message
        assert first.deduplication_id == segment(through=contact_id(5)).deduplication_id
        assert first.deduplication_id != segment(index=1).deduplication_id
        assert first.deduplication_id != segment(plan="p2").deduplication_id
        same_millisecond = AccountChange.of_edit(replace(edit, edit_id="e2"), stamp(1))
        assert first.deduplication_id != segment(change=same_millisecond).deduplication_id

    def test_contacts_of_two_accounts_never_share_a_message(self):
        with pytest.raises(MalformedMessage, match="several groups"):
            ContactChangesMessage((contact_version(1, account=1), contact_version(2, account=2)))


def _body(**overrides):
    payload = json.loads(AccountChangeMessage(account_version()).to_body())
    payload["version"].update(overrides.pop("version", {}))
    payload.update(overrides)
    return json.dumps(payload)


class TestMalformed:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            ("{not json", "not JSON"),
            ("[1, 2]", "JSON object"),
            (_body(schema=99), "unsupported schema"),
            (_body(type="account_deleted"), "unknown message type"),
            (_body(version={"account_id": None}), "account_id must be a non-empty string"),
            (_body(version={"account_id": "001'; DROP"}), "not a valid record id"),
            (_body(version={"system_modstamp": "last tuesday"}), "system_modstamp"),
            (_body(version={"is_deleted": "no"}), "is_deleted must be true or false"),
            (_body(version={"fields": {"Name": {"nested": 1}}}), "unsupported value type"),
            (_body(version={"fields": {"Bad Name": "x"}}), "invalid field name"),
            (_body(version={"fields": []}), "fields must be an object"),
        ],
    )
    def test_a_bad_body_is_refused_with_its_reason(self, body, reason):
        with pytest.raises(MalformedMessage, match=reason):
            parse_change_message(body)

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"change": {"base_modstamp": None}}, "base_modstamp must be a non-empty string"),
            ({"change": {"origin": "contact"}}, "change.origin must be account or local"),
            ({"change": None}, "change must be an object"),
            ({"index": 3}, "segment index 3 is not below total 3"),
            ({"activity_logging": "maybe"}, "unknown activity_logging"),
            ({"through_contact_id": "not an id"}, "through_contact_id is not a valid record id"),
            ({"change": {"edit": {"field": "Rating"}}}, "edit_id must be a non-empty string"),
        ],
    )
    def test_a_bad_segment_is_refused_with_its_reason(self, change, reason):
        edit = LocalEdit("e1", contact_id(1), "001000000000000001", "Rating", "Hot", stamp(3))
        segment = ChangeSegmentMessage(
            AccountChange.of_edit(edit, stamp(1)), "p1", 0, 3, None, contact_id(9), ActivityLogging.LOGGED
        )
        payload = json.loads(segment.to_body())
        for key, value in change.items():
            if isinstance(value, dict) and isinstance(payload.get(key), dict):
                payload[key].update(value)
            else:
                payload[key] = value
        with pytest.raises(MalformedMessage, match=reason):
            parse_change_message(json.dumps(payload))

    def test_an_empty_activity_batch_is_refused(self):
        body = json.dumps(
            {
                "type": "change_data_value_batch",
                "schema": 1,
                "account_id": "001000000000000001",
                "origin": "account",
                "system_modstamp": stamp(1),
                "changes": [],
            }
        )
        with pytest.raises(MalformedMessage, match="non-empty list"):
            parse_activity_batch(body)
