import json

import pytest
from account_sync.contracts import (
    AccountChangeMessage,
    AccountSegmentMessage,
    ActivityBatchMessage,
    ContactChangesMessage,
    ContactFieldChange,
    LocalEditMessage,
    LocalEditSegmentMessage,
    MalformedMessage,
    parse_activity_batch,
    parse_change_message,
)
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.records import ChangeOrigin, LocalEdit

from tests.unit.factories import account_version, contact_id, contact_version, stamp


class TestRoundTrip:
    def test_every_change_message_survives_the_queue(self):
        version = account_version(AnnualRevenue=12.5, NumberOfEmployees=3, Rating=None)
        segment = AccountSegmentMessage(version, "plan1", 0, 2, None, contact_id(9), ActivityLogging.SUPPRESSED)
        edit = LocalEditMessage(LocalEdit("e1", contact_id(1), version.account_id, "Rating", None, stamp(3)))
        edit_segment = LocalEditSegmentMessage(
            edit.edit, stamp(1), 1, 3, contact_id(4), contact_id(9), ActivityLogging.LOGGED
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

    def test_a_local_edit_segment_is_in_its_accounts_group_and_deduplicated_by_its_range(self):
        edit = LocalEdit("e1", contact_id(1), "001000000000000007", "Rating", "Hot", stamp(3))

        def segment(after, through, index=0, base=None):
            return LocalEditSegmentMessage(edit, base or stamp(1), index, 2, after, through, ActivityLogging.LOGGED)

        first = segment(None, contact_id(5))
        assert first.group_id == "001000000000000007"
        # a plan queued again after a crash: the same range is the same message, whatever its position
        assert first.deduplication_id == segment(None, contact_id(5), index=1).deduplication_id
        assert first.deduplication_id != segment(None, contact_id(6)).deduplication_id
        assert first.deduplication_id != segment(None, contact_id(5), base=stamp(2)).deduplication_id

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
            ({"base_modstamp": None}, "base_modstamp must be a non-empty string"),
            ({"index": 3}, "segment index 3 is not below total 3"),
            ({"activity_logging": "maybe"}, "unknown activity_logging"),
            ({"through_contact_id": None}, "through_contact_id must be a non-empty string"),
            ({"edit": {"field": "Rating"}}, "edit_id must be a non-empty string"),
        ],
    )
    def test_a_bad_local_edit_segment_is_refused_with_its_reason(self, change, reason):
        edit = LocalEdit("e1", contact_id(1), "001000000000000001", "Rating", "Hot", stamp(3))
        payload = json.loads(
            LocalEditSegmentMessage(edit, stamp(1), 0, 3, None, contact_id(9), ActivityLogging.LOGGED).to_body()
        )
        payload.update(change)
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
