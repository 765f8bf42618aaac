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

    def test_a_segment_carries_which_change_of_its_account_an_edit_or_a_resync_was(self):
        # finding F (issue 10): compared with a contact's count at its join (`AccountChange.held_since_join`)
        version = account_version()
        edit = LocalEdit("e1", contact_id(1), version.account_id, "Rating", "Hot", stamp(3))
        for change in (
            AccountChange.of_edit(edit, stamp(1), accepted_as=7),
            AccountChange.of_version(version, "rs1", accepted_as=1),
        ):
            segment = ChangeSegmentMessage(change, "p1", 0, 1, None, None, ActivityLogging.LOGGED)
            assert parse_change_message(segment.to_body()).change.accepted_as == change.accepted_as
            body = json.loads(segment.to_body())
            del body["change"]["accepted_as"]  # queued before it was carried: it skips no joiner
            assert parse_change_message(json.dumps(body)).change.accepted_as is None
            for bad in (0, "7", True):
                body["change"]["accepted_as"] = bad
                with pytest.raises(MalformedMessage, match="accepted_as"):
                    parse_change_message(json.dumps(body))

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
        # a contact without an account is its own group: one bad record never blocks the others
        assert ContactChangesMessage((contact_version(1, account=None),)).group_id == contact_id(1)
        with pytest.raises(MalformedMessage, match="2 message groups"):
            ContactChangesMessage((contact_version(1, account=None), contact_version(2, account=None)))

    def test_a_segment_is_in_a_group_of_its_own_and_deduplicated_by_its_change_plan_and_position(self):
        edit = LocalEdit("e1", contact_id(1), "001000000000000007", "Rating", "Hot", stamp(3))

        def segment(index=0, plan="p1", change=None, through=None):
            change = change or AccountChange.of_edit(edit, stamp(1))
            return ChangeSegmentMessage(change, plan, index, 2, None, through, ActivityLogging.LOGGED)

        first = segment()
        # a group of its own (issue 11, item 5): an account's segments run side by side, ordered by data
        assert first.group_id == "001000000000000007#p1#0"
        groups = [segment(index=n).group_id for n in range(2)] + [segment(plan="p2").group_id]
        assert groups == ["001000000000000007#p1#0", "001000000000000007#p1#1", "001000000000000007#p2#0"]
        # the same segment queued twice is dropped by SQS; another position, plan or change is another message
        assert first.deduplication_id == segment(through=contact_id(5)).deduplication_id
        assert first.deduplication_id != segment(index=1).deduplication_id
        assert first.deduplication_id != segment(plan="p2").deduplication_id
        same_millisecond = AccountChange.of_edit(replace(edit, edit_id="e2"), stamp(1))
        assert first.deduplication_id != segment(change=same_millisecond).deduplication_id

    def test_contacts_of_two_accounts_never_share_a_message(self):
        with pytest.raises(MalformedMessage, match="2 message groups"):
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
            ({"change": {"origin": "contact"}}, "change.origin must be account, resync or local"),
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


SECRET = "jane.doe@example.com"


class TestValuesDynamoDbCannotStore:
    """Issue 10, 2.6: a message carrying a value DynamoDB refuses is malformed (so it fails alone, at once)."""

    @pytest.mark.parametrize(
        ("raw_value", "problem"),
        [
            ("NaN", "NaN or Infinity"),
            ("Infinity", "NaN or Infinity"),
            ("-Infinity", "NaN or Infinity"),
            ("1" * 39, "more than 38 significant digits"),
            ("1e126", "outside DynamoDB's range"),
            ("1e-131", "outside DynamoDB's range"),
            ('"a\\ud800b"', "not valid Unicode"),
        ],
    )
    def test_an_account_change_with_such_a_value_is_malformed_naming_the_field(self, raw_value, problem):
        body = _body().replace('"Industry": "Energy"', f'"Industry": {raw_value}')
        assert raw_value in body
        with pytest.raises(MalformedMessage) as refused:
            parse_change_message(body)
        assert str(refused.value).startswith("field 'Industry': ") and problem in str(refused.value)

    def test_a_local_edit_or_an_activity_with_such_a_value_is_malformed(self):
        edit = json.loads(
            LocalEditMessage(LocalEdit("e1", contact_id(1), "001000000000000001", "Rating", "x", stamp(3))).to_body()
        )
        edit["edit"]["value"] = 10**40 + 1
        with pytest.raises(MalformedMessage, match="field 'Rating': a number of more than 38"):
            parse_change_message(json.dumps(edit))
        batch = ActivityBatchMessage(
            "001000000000000001",
            ChangeOrigin.ACCOUNT,
            stamp(1),
            (ContactFieldChange(contact_id(1), "Name", "a", None),),
        )
        with pytest.raises(MalformedMessage, match="field 'old': NaN"):
            parse_activity_batch(batch.to_body().replace('"old":"a"', '"old":NaN'))

    def test_a_body_nested_thousands_deep_is_malformed_not_a_crash(self):
        with pytest.raises(MalformedMessage, match="nested too deep"):
            parse_change_message("[" * 100_000 + "]" * 100_000)
        with pytest.raises(MalformedMessage, match="nested too deep"):
            parse_activity_batch('{"a":' * 50_000 + "1" + "}" * 50_000)


class TestReasonsNeverHoldValues:
    """docs/guarantees.md promises that a reason names the field and the problem, never its value."""

    @pytest.mark.parametrize(
        "payload_change",
        [
            {"type": SECRET},
            {"schema": SECRET},
            {"version": {"system_modstamp": SECRET}},
            {"version": {"account_id": SECRET}},
            {"version": {"is_deleted": SECRET}},
            {"version": {"fields": {SECRET: "x"}}},
            {"version": {"fields": {"Industry": {"secret": SECRET}}}},
            {"version": {"fields": {"Industry": SECRET * 30_000}}},
        ],
        ids=lambda change: json.dumps(change)[:30],
    )
    def test_a_change_message_reason_names_the_problem_not_the_value(self, payload_change):
        payload = json.loads(_body())
        payload["version"].update(payload_change.pop("version", {}))
        payload.update(payload_change)
        with pytest.raises(MalformedMessage) as refused:
            parse_change_message(json.dumps(payload))
        assert SECRET not in str(refused.value) and "jane" not in str(refused.value)

    @pytest.mark.parametrize("body", ['{"type": "account_change", "schema": 1, "version": "' + SECRET, SECRET])
    def test_a_body_that_is_not_json_is_described_by_position(self, body):
        with pytest.raises(MalformedMessage, match=r"body is not JSON: .* at char") as refused:
            parse_change_message(body)
        assert SECRET not in str(refused.value)

    @pytest.mark.parametrize(
        "change", [{"origin": SECRET}, {"type": SECRET}, {"system_modstamp": SECRET}, {"account_id": SECRET}]
    )
    def test_an_activity_batch_reason_names_the_problem_not_the_value(self, change):
        batch = ActivityBatchMessage(
            "001000000000000001",
            ChangeOrigin.ACCOUNT,
            stamp(1),
            (ContactFieldChange(contact_id(1), "Name", "a", None),),
        )
        payload = {**json.loads(batch.to_body()), **change}
        with pytest.raises(MalformedMessage) as refused:
            parse_activity_batch(json.dumps(payload))
        assert SECRET not in str(refused.value)
