"""The DynamoDB and SQS adapters against moto, on tables and queues created from template.yaml."""

from __future__ import annotations

from dataclasses import replace

import boto3
import pytest
from account_sync.adapters.dynamodb import (
    DynamoAccountRepository,
    DynamoActivityStore,
    DynamoContactRepository,
    DynamoSyncStateStore,
)
from account_sync.adapters.dynamodb_models import AccountItem, ActivityItem, ContactItem
from account_sync.adapters.sqs import SqsBatchSender
from account_sync.contracts import AccountChangeMessage, parse_change_message
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import AccountChange, ChangeDecision, OutboxEntry, SupersededVersion
from account_sync.domain.fields import FieldChange, FieldValue
from account_sync.domain.local_edits import EditMark
from account_sync.domain.records import (
    ActivitySuppression,
    ChangeDataValueActivity,
    ChangeOrigin,
    ChangeRef,
    LocalEdit,
)
from account_sync.ports import (
    Acceptance,
    AccountJoin,
    AccountState,
    ApiUsage,
    QueueSendError,
    RecordedUsage,
    StreamState,
    TransientError,
    WindowProgress,
)
from account_sync.settings import load_settings
from account_sync.wiring import bind_store
from botocore.exceptions import ClientError

from tests.unit.factories import account_id, account_version, contact_id, stamp

LOGGED_AT_ONCE = ChangeDecision(ActivityLogging.LOGGED, 1, False)


@pytest.fixture
def store(function_env):
    bind_store(load_settings())


def given_members(count: int, account: int = 1) -> list[str]:
    ids = [contact_id(account * 1000 + n) for n in range(count)]
    with ContactItem.batch_write() as batch:
        for cid in ids:
            batch.save(ContactItem(cid, account_id=account_id(account), account_fields={}))
    return ids


class TestContacts:
    def test_the_count_stops_at_its_limit(self, store):
        given_members(30)
        contacts = DynamoContactRepository()
        assert contacts.count_members(account_id(1), limit=11) == 11
        assert contacts.count_members(account_id(1), limit=100) == 30
        assert contacts.count_members(account_id(2), limit=100) == 0

    def test_key_pages_cover_the_account_exactly_once_from_one_request_per_1_mb(self, store, monkeypatch):
        ids = given_members(25)
        connection = ContactItem._get_connection()
        queries: list[dict] = []
        query = connection.query
        monkeypatch.setattr(connection, "query", lambda *a, **kw: queries.append(kw) or query(*a, **kw))
        pages = list(DynamoContactRepository().member_key_pages(account_id(1), page_size=10))
        assert pages == [(None, ids[9]), (ids[9], ids[19]), (ids[19], ids[24])]
        assert len(queries) == 1 and queries[0].get("limit") is None  # 25 contacts' keys fit in one 1 MB page
        contacts = DynamoContactRepository()
        seen = [c.contact_id for after, through in pages for c in contacts.members(account_id(1), after, through)]
        assert seen == ids

    @pytest.mark.parametrize(("members", "expected"), [(20, 2), (21, 3), (1, 1), (0, 0)])
    def test_key_pages_at_the_boundary_of_a_range(self, store, members, expected):
        ids = given_members(members)
        pages = list(DynamoContactRepository().member_key_pages(account_id(1), page_size=10))
        assert len(pages) == expected
        assert [through for _, through in pages][-1:] == ids[-1:]

    def test_a_contact_that_moved_away_or_holds_a_newer_version_is_not_overwritten(self, store):
        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        newer, older = version_change(1, minute=5), version_change(1, minute=4)
        assert contacts.write_change(cid, newer, [FieldChange("Name", None, "Account 1")])
        assert not contacts.write_change(cid, older, [])
        assert not contacts.write_change(cid, newer, [])  # the same version again
        assert not contacts.write_change(cid, version_change(2, minute=9), [])
        item = ContactItem.get(cid)
        assert item.account_modstamp == stamp(5)
        # the outbox names the change that wrote each field, with the value before it
        assert contacts.contact(cid).outbox == {"Name": OutboxEntry(newer.ref, None)}

    def test_a_deleted_contact_leaves_the_account_index(self, store):
        from tests.unit.factories import contact_version

        ids = given_members(2)
        contacts = DynamoContactRepository()
        version = contact_version(1000, account=1, minute=3, deleted=True)
        assert contacts.apply_contact_version(version, contacts.contact(ids[0]), None)
        assert ids[0] == contact_id(1000)
        assert [c.contact_id for c in DynamoContactRepository().members(account_id(1))] == [ids[1]]
        assert ContactItem.get(ids[0]).deleted_from_account_id == account_id(1)

    def test_a_contact_version_lands_only_on_the_contact_as_it_was_read(self, store):
        from tests.unit.factories import contact_version

        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        read = contacts.contact(cid)
        contacts.write_change(cid, version_change(1, minute=5), [])  # the account's fan-out, meanwhile
        assert not contacts.apply_contact_version(contact_version(1000, account=2, minute=3), read, None)
        assert not contacts.apply_contact_version(contact_version(1000, account=2, minute=3), None, None)
        assert contacts.apply_contact_version(contact_version(1000, account=2, minute=3), contacts.contact(cid), None)
        assert contacts.contact(cid).account_id == account_id(2)

    def test_a_contact_that_stays_in_its_account_keeps_its_fields_and_one_that_moves_takes_the_new_ones(self, store):
        from tests.unit.factories import contact_version

        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        contacts.write_change(cid, version_change(1, minute=5, Industry="Energy"), [])
        # stays: the account's fields are the fan-out's to write
        assert contacts.apply_contact_version(contact_version(1000, account=1, minute=6), contacts.contact(cid), None)
        assert contacts.contact(cid).account_fields["Industry"] == "Energy"
        # moves: takes the new account's fields, with the move's outbox (origin contact)
        move = ChangeRef(ChangeOrigin.CONTACT, stamp(7))
        join = AccountJoin({"Industry": "Retail"}, stamp(2), False, {"Industry": OutboxEntry(move, "Energy")})
        assert contacts.apply_contact_version(contact_version(1000, account=2, minute=7), contacts.contact(cid), join)
        moved = contacts.contact(cid)
        assert (moved.account_id, moved.account_fields, moved.account_modstamp) == (
            account_id(2),
            {"Industry": "Retail"},
            stamp(2),
        )
        assert moved.outbox == {"Industry": OutboxEntry(move, "Energy")}

    def test_a_local_edit_sets_one_field_only_while_the_contact_belongs_to_the_account(self, store):
        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        contacts.write_change(cid, version_change(1, minute=5), [])
        assert contacts.write_change(cid, edit_change("Industry", "Local"), [FieldChange("Industry", "Energy", "L")])
        assert contacts.write_change(cid, edit_change("Name", None, minute=31), [])
        assert not contacts.write_change(cid, edit_change("Industry", "Elsewhere", account=2), [])
        item = ContactItem.get(cid)
        assert item.account_fields.as_dict() == {"Name": None, "Industry": "Local", "BillingCountry": "France"}
        assert item.account_fields_source == "local" and item.account_modstamp == stamp(5)

    def test_a_local_edit_keeps_the_value_before_it_until_a_salesforce_version_overwrites_it(self, store):
        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        version = version_change(1, minute=5, NumberOfEmployees=12)
        contacts.write_change(cid, version, [FieldChange("Name", None, "Account 1")])
        edit = edit_change("NumberOfEmployees", 13)
        assert contacts.write_change(cid, edit, [FieldChange("NumberOfEmployees", 12, 13)])
        # in the account index: the fan-out sees each field's change and its value before without another read
        (member,) = contacts.members(account_id(1))
        assert member.account_fields["NumberOfEmployees"] == 13
        assert member.outbox == {
            "Name": OutboxEntry(version.ref, None),
            "NumberOfEmployees": OutboxEntry(edit.ref, 12),
        }
        contacts.write_change(cid, version_change(1, minute=6), [])
        assert contacts.contact(cid).outbox == {}

    def test_a_local_edit_on_a_contact_without_an_outbox_gets_one(self, store):
        (cid,) = given_members(1)
        edit = edit_change("Industry", "Retail")
        assert DynamoContactRepository().write_change(cid, edit, [FieldChange("Industry", None, "Retail")])
        assert DynamoContactRepository().contact(cid).outbox == {"Industry": OutboxEntry(edit.ref, None)}

    def test_an_outbox_written_before_it_named_its_change_is_read_as_the_contacts_version(self, store):
        (cid,) = given_members(1)
        ContactItem(cid, account_id=account_id(1), account_fields={}, account_modstamp=stamp(5),
                    account_previous_values={"Name": "Old"}).save()  # fmt: skip
        assert DynamoContactRepository().contact(cid).outbox == {
            "Name": OutboxEntry(ChangeRef(ChangeOrigin.ACCOUNT, stamp(5)), "Old")
        }

    def test_a_local_edit_never_overwrites_a_newer_salesforce_version_on_the_contact(self, store):
        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        contacts.write_change(cid, version_change(1, minute=6, Industry="Banking"), [])
        assert not contacts.write_change(cid, edit_change("Industry", "Retail"), [])
        assert contacts.write_change(cid, edit_change("Industry", "Retail", base=stamp(6)), [])  # over the same one
        (fresh,) = given_members(1, account=3)
        assert contacts.write_change(fresh, edit_change("Industry", "Retail", account=3, base=stamp(1)), [])
        assert ContactItem.get(cid).account_fields.as_dict()["Industry"] == "Retail"


def version_change(n: int, minute: int, **fields: object) -> AccountChange:
    return AccountChange.of_version(account_version(n, minute=minute, **fields))


def edit_change(field: str, value: FieldValue, minute: int = 30, account: int = 1, base: str = "") -> AccountChange:
    return AccountChange.of_edit(_edit(field, value, minute, account), base or stamp(5))


class TestAccounts:
    def test_joiners_come_and_old_ones_go_in_one_call(self, store):
        # given an account whose recent joiners hold two contacts
        accounts = DynamoAccountRepository()
        accounts.note_joiners(account_id(1), [contact_id(1), contact_id(2)], stamp(1), {}, overflow=False)
        # when new contacts join while one of the old ones is forgotten (DynamoDB refuses an ADD and a DELETE of
        # the same set in one expression: "two document paths overlap")
        accounts.note_joiners(account_id(1), [contact_id(3)], stamp(2), {contact_id(1): stamp(1)}, overflow=False)
        # then the account keeps the one old joiner left and the new one
        assert dict(accounts.get(account_id(1)).recent_joiners) == {contact_id(2): stamp(1), contact_id(3): stamp(2)}

    def test_a_local_edit_needs_a_synced_live_account(self, store):
        accounts = DynamoAccountRepository()
        unsynced = AccountState(account_id(1), {}, None, None, False, None, None)
        assert not accounts.apply_local_edit(_edit("Industry", "Local"), unsynced, LOGGED_AT_ONCE, True)
        accounts.accept_version(account_version(1, minute=1), LOGGED_AT_ONCE, [])
        assert accounts.apply_local_edit(_edit("Industry", "Local"), accounts.get(account_id(1)), LOGGED_AT_ONCE, True)
        assert accounts.get(account_id(1)).fields["Industry"] == "Local"
        accounts.accept_version(account_version(1, minute=2, deleted=True), LOGGED_AT_ONCE, [])
        stored = accounts.get(account_id(1))
        assert not accounts.apply_local_edit(
            _edit("Industry", "Again", minute=31), replace(stored, is_deleted=False), LOGGED_AT_ONCE, True
        )

    def test_each_fields_last_local_edit_is_recorded_with_the_version_it_was_applied_over(self, store):
        accounts = DynamoAccountRepository()
        accounts.accept_version(account_version(1, minute=1), LOGGED_AT_ONCE, [])
        first, other = _edit("Industry", "Local"), _edit("Name", "Local name", minute=31)
        assert accounts.apply_local_edit(
            first, accounts.get(account_id(1)), LOGGED_AT_ONCE, True
        )  # the first mark: a new map
        assert accounts.apply_local_edit(
            other, accounts.get(account_id(1)), LOGGED_AT_ONCE, True
        )  # another field: added to it
        stored = accounts.get(account_id(1))
        version = account_version(1, minute=1)
        assert stored.local_edits == {
            "Industry": EditMark(
                first.edit_id,
                first.edited_at,
                stamp(1),
                LOGGED_AT_ONCE,
                True,
                values=(version.fields.get("Industry"), "Local"),
                accepted_as=2,  # the account's second change: its version was the first
            ),
            "Name": EditMark(
                other.edit_id,
                other.edited_at,
                stamp(1),
                LOGGED_AT_ONCE,
                True,
                values=(version.fields.get("Name"), "Local name"),
                accepted_as=3,
            ),
        }
        assert (stored.fields["Industry"], stored.fields["Name"]) == ("Local", "Local name")
        # a newer version keeps the marks (each names the version it was applied over) and overwrites the fields
        accounts.accept_version(account_version(1, minute=2), LOGGED_AT_ONCE, ["Industry", "Name"])
        stored = accounts.get(account_id(1))
        assert stored.local_edits["Industry"].base_modstamp == stamp(1) and stored.fields["Industry"] == "Energy"
        # the next edit of the field replaces its mark, over the new version
        later = _edit("Industry", "Later", minute=32)
        assert accounts.apply_local_edit(later, stored, LOGGED_AT_ONCE, True)
        mark = EditMark(
            later.edit_id, later.edited_at, stamp(2), LOGGED_AT_ONCE, True, values=("Energy", "Later"), accepted_as=5
        )
        assert accounts.get(account_id(1)).local_edits["Industry"] == mark

    def test_a_local_edit_lands_only_on_the_account_it_was_decided_on(self, store):
        accounts = DynamoAccountRepository()
        accounts.accept_version(account_version(1, minute=1), LOGGED_AT_ONCE, [])
        read = accounts.get(account_id(1))
        assert accounts.apply_local_edit(_edit("Industry", "First"), read, LOGGED_AT_ONCE, True)
        # the field's last edit changed since `read`: refused (whether the map existed or not when read)
        assert not accounts.apply_local_edit(_edit("Industry", "Second", minute=31), read, LOGGED_AT_ONCE, True)
        # a newer version came since the read
        read = accounts.get(account_id(1))
        accounts.accept_version(account_version(1, minute=2), LOGGED_AT_ONCE, [])
        assert not accounts.apply_local_edit(_edit("Industry", "Third", minute=32), read, LOGGED_AT_ONCE, True)
        assert accounts.get(account_id(1)).fields["Industry"] == "Energy"

    def test_versions_are_accepted_in_order_only(self, store):
        accounts = DynamoAccountRepository()
        v1, v2 = account_version(1, minute=1, Industry="A"), account_version(1, minute=2, Industry="B")
        assert (
            accounts.accept_version(v1, ChangeDecision(ActivityLogging.LOGGED, 3, False), ["Industry"]).acceptance
            is Acceptance.NEW
        )
        second = accounts.accept_version(v2, ChangeDecision(ActivityLogging.LOGGED, 3, False), ["Industry"])
        assert second.acceptance is Acceptance.NEW and second.previous_fields["Industry"] == "A"
        assert (
            accounts.accept_version(v1, ChangeDecision(ActivityLogging.LOGGED, 3, False), []).acceptance
            is Acceptance.STALE
        )
        assert (
            accounts.accept_version(v2, ChangeDecision(ActivityLogging.LOGGED, 3, False), []).acceptance
            is Acceptance.RESUME
        )
        accounts.mark_applied(v2.account_id, v2.system_modstamp)
        assert (
            accounts.accept_version(v2, ChangeDecision(ActivityLogging.LOGGED, 3, False), []).acceptance
            is Acceptance.ALREADY_APPLIED
        )

    def test_an_unchanged_version_is_recorded_only_over_the_applied_version_it_was_read_with(self, store):
        accounts = DynamoAccountRepository()
        v1 = account_version(1, minute=1)
        accounts.accept_version(v1, ChangeDecision(ActivityLogging.LOGGED, 3, False), ["Industry"])
        stored = accounts.get(v1.account_id)
        # not while v1 is still being fanned out
        assert not accounts.accept_unchanged_version(account_version(1, minute=2), stored)
        accounts.mark_applied(v1.account_id, v1.system_modstamp)
        stored = accounts.get(v1.account_id)
        assert accounts.accept_unchanged_version(account_version(1, minute=2), stored)
        now = accounts.get(v1.account_id)
        assert (now.system_modstamp, now.applied_modstamp, now.changed_fields) == (stamp(2), stamp(2), ())
        assert now.fields == stored.fields
        # nor over a state that is no longer the one read (another version came in between)
        assert not accounts.accept_unchanged_version(account_version(1, minute=3), stored)
        assert (
            accounts.accept_version(v1, ChangeDecision(ActivityLogging.LOGGED, 3, False), []).acceptance
            is Acceptance.STALE
        )

    def test_segments_complete_once_every_segment_of_the_plan_is_done_without_writing_the_account(self, store):
        accounts = DynamoAccountRepository()
        version = account_version(1, minute=1)
        accounts.accept_version(version, ChangeDecision(ActivityLogging.SUPPRESSED, 5001, False), [])
        accounts.record_plan(AccountChange.of_version(version), "plan", 2)
        before = AccountItem.get(version.account_id).serialize()
        assert not accounts.complete_segment(version.account_id, "plan", 0, 2)
        assert not accounts.complete_segment(version.account_id, "plan", 0, 2)  # redelivered
        assert not accounts.complete_segment(version.account_id, "old", 1, 2)  # another plan's
        assert not accounts.plan_complete(version.account_id, "plan", 2)
        assert accounts.complete_segment(version.account_id, "plan", 1, 2)
        assert accounts.complete_segment(version.account_id, "plan", 1, 2)  # done stays done
        assert accounts.plan_complete(version.account_id, "plan", 2)
        assert AccountItem.get(version.account_id).serialize() == before  # no write to the account item

    def test_a_version_is_marked_applied_once_and_only_by_its_recorded_plan(self, store):
        accounts = DynamoAccountRepository()
        version = account_version(1, minute=1)
        accounts.accept_version(version, ChangeDecision(ActivityLogging.SUPPRESSED, 5001, True), [])
        accounts.record_plan(AccountChange.of_version(version), "plan", 2)
        assert not accounts.mark_applied(version.account_id, version.system_modstamp, "stray")
        assert accounts.mark_applied(version.account_id, version.system_modstamp, "plan")
        assert not accounts.mark_applied(version.account_id, version.system_modstamp, "plan")  # already
        assert not accounts.mark_applied(version.account_id, stamp(0))  # not the newest version


class TestSupersededAsDiffs:
    def test_each_superseded_version_is_stored_as_what_changed_from_the_one_before(self, store):
        # issue 10, 2.1: the list costs about what changed, so an account keeps far more than 20 for its leavers
        repo = DynamoAccountRepository()
        older = [account_version(1, minute=m, Industry=f"I{m}") for m in range(1, 4)]
        superseded = [SupersededVersion(v, ActivityLogging.LOGGED) for v in older]
        repo.accept_version(account_version(1, minute=5), LOGGED_AT_ONCE, [], superseded=superseded)
        raw = [
            entry.as_dict() if hasattr(entry, "as_dict") else entry
            for entry in AccountItem.get(account_id(1)).superseded
        ]
        assert [entry["changed"] for entry in raw] == [dict(older[0].fields), {"Industry": "I2"}, {"Industry": "I3"}]
        assert all("fields" not in entry for entry in raw)
        assert repo.get(account_id(1)).superseded == tuple(superseded)
        # an entry written whole before the diffs is still read, and the diffs after it build on it
        AccountItem(account_id(1)).update(
            actions=[AccountItem.superseded.set([{**raw[0], "fields": raw[0]["changed"], "changed": None}, raw[1]])]
        )
        assert [s.version.fields["Industry"] for s in repo.get(account_id(1)).superseded] == ["I1", "I2"]


def _edit(field: str, value: FieldValue, minute: int = 30, account: int = 1) -> LocalEdit:
    return LocalEdit(f"edit-{minute}", contact_id(account * 1000), account_id(account), field, value, stamp(minute))


def _activity(n: int) -> ChangeDataValueActivity:
    return ChangeDataValueActivity(
        contact_id(n), account_id(1), "Industry", "A", "B", ChangeOrigin.ACCOUNT, stamp(1), "2026-11-27T12:00:00.000Z"
    )


class FlakyBatchWrites:
    """Wraps the real client: the first calls leave some items unprocessed, as DynamoDB does under load."""

    def __init__(self, client, unprocessed_rounds: int, throttle: bool = False) -> None:
        self._client = client
        self.rounds = unprocessed_rounds
        self.throttle = throttle
        self.calls = 0

    def batch_write_item(self, RequestItems):
        self.calls += 1
        if self.rounds > 0:
            self.rounds -= 1
            if self.throttle:
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchWriteItem")
            ((table, requests),) = RequestItems.items()
            kept, left = requests[: len(requests) // 2], requests[len(requests) // 2 :]
            self._client.batch_write_item(RequestItems={table: kept})
            return {"UnprocessedItems": {table: left}}
        return self._client.batch_write_item(RequestItems=RequestItems)


class TestActivities:
    def test_batches_of_25_with_unprocessed_items_retried_until_written(self, store):
        flaky = FlakyBatchWrites(boto3.client("dynamodb"), unprocessed_rounds=3)
        sleeps: list[float] = []
        written = DynamoActivityStore(sleep=sleeps.append, client=flaky).put_activities(_activity(n) for n in range(60))
        assert written == 60
        assert ActivityItem.count() == 60
        assert len(sleeps) == 3 and flaky.calls == 3 + 3  # 25 + 25 + 10, three of them needing a retry

    def test_throttling_beyond_the_retries_is_a_transient_error(self, store):
        flaky = FlakyBatchWrites(boto3.client("dynamodb"), unprocessed_rounds=99, throttle=True)
        with pytest.raises(TransientError, match="unprocessed"):
            DynamoActivityStore(max_attempts=3, sleep=lambda _: None, client=flaky).put_activities([_activity(1)])

    def test_a_suppression_record_says_where_the_change_came_from_and_never_takes_anothers_key(self, store):
        # a version and three local edits stamped in the same millisecond (two of one field): four records
        for origin, fields, edit_id in (
            (ChangeOrigin.ACCOUNT, ("Industry",), None),
            (ChangeOrigin.LOCAL, ("Industry",), "edit-a"),
            (ChangeOrigin.LOCAL, ("Industry",), "edit-b"),
            (ChangeOrigin.LOCAL, ("Name",), "edit-c"),
        ):
            DynamoActivityStore().put_suppression(
                ActivitySuppression(account_id(1), stamp(30), 5001, 5000, fields, stamp(40), origin, edit_id)
            )
        items = {item.activity_key: item.source for item in ActivityItem.query(account_id(1))}
        assert items == {
            f"{stamp(30)}#suppressed": "salesforce",
            f"{stamp(30)}#local#Industry#edit-a#suppressed": "local",
            f"{stamp(30)}#local#Industry#edit-b#suppressed": "local",
            f"{stamp(30)}#local#Name#edit-c#suppressed": "local",
        }

    def test_a_blank_value_is_stored_as_null_never_left_out(self, store):
        activity = replace(_activity(1), old_value=None, new_value=None)
        DynamoActivityStore().put_activities([activity])
        raw = boto3.client("dynamodb").get_item(
            TableName=ActivityItem.Meta.table_name,
            Key={"subject_id": {"S": contact_id(1)}, "activity_key": {"S": activity.activity_key}},
        )["Item"]
        assert raw["old_value"] == {"NULL": True} and raw["new_value"] == {"NULL": True}
        (item,) = ActivityItem.query(contact_id(1))
        assert (item.old_value, item.new_value) == (None, None)

    def test_two_edits_of_one_field_in_the_same_millisecond_are_two_activities(self, store):
        edits = [replace(_activity(1), origin=ChangeOrigin.LOCAL, change_id=f"edit-{n}") for n in (1, 2)]
        DynamoActivityStore().put_activities(edits)
        assert len(list(ActivityItem.query(contact_id(1)))) == 2

    def test_the_same_activity_twice_is_one_item(self, store):
        DynamoActivityStore().put_activities([_activity(1)])
        DynamoActivityStore().put_activities([_activity(1)])
        (item,) = ActivityItem.query(contact_id(1))
        assert item.activity_key == f"{stamp(1)}#account#Industry" and item.expires_at > 0


class TestSyncState:
    def test_the_watermark_only_moves_forward(self, store):
        state = DynamoSyncStateStore()
        state.save_watermark("Account", stamp(5), {"run_id": "a"})
        state.save_watermark("Account", stamp(4), {"run_id": "late"})
        assert state.load_watermark("Account") == stamp(5)

    def test_one_lease_holder_at_a_time_until_release_or_expiry(self, store):
        clock = [1000.0]
        state = DynamoSyncStateStore(clock=lambda: clock[0])
        assert state.acquire_lease("run-1", 300)
        assert not state.acquire_lease("run-2", 300)
        clock[0] += 301
        assert state.acquire_lease("run-2", 300)
        state.release_lease("run-2")
        assert state.acquire_lease("run-3", 300)

    def test_the_window_in_progress_is_kept_until_the_watermark_moves(self, store):
        state = DynamoSyncStateStore()
        assert state.load_stream("Account") == StreamState(None, None)
        state.save_watermark("Account", stamp(1), {"run_id": "a"})
        bulk = {"mode": "bulk", "job": "750000000000001AAA", "locator": "", "offset": "2000"}
        state.save_progress("Account", WindowProgress(stamp(1), stamp(9), bulk), {"run_id": "b"})
        assert state.load_stream("Account") == StreamState(stamp(1), WindowProgress(stamp(1), stamp(9), bulk))
        state.save_watermark("Account.sweep", stamp(9), {"run_id": "b"})  # another stream: untouched
        assert state.load_stream("Account").progress is not None
        state.save_watermark("Account", stamp(9), {"run_id": "b"})
        assert state.load_stream("Account") == StreamState(stamp(9), None)

    def test_the_last_api_usage_is_kept_between_runs(self, store):
        state = DynamoSyncStateStore()
        assert state.load_api_usage() is None
        state.save_api_usage(RecordedUsage(ApiUsage(used=51_000, limit=100_000), stamp(3)))
        assert state.load_api_usage() == RecordedUsage(ApiUsage(used=51_000, limit=100_000), stamp(3))


class PartlyFailingSqs:
    def __init__(self, client, fail_ids_once: set[str]) -> None:
        self._client = client
        self._fail = set(fail_ids_once)
        self.batches: list[list[str]] = []

    def send_message_batch(self, QueueUrl, Entries):
        self.batches.append([e["Id"] for e in Entries])
        failing = [e for e in Entries if e["Id"] in self._fail]
        self._fail.clear()
        passing = [e for e in Entries if e not in failing]
        response = self._client.send_message_batch(QueueUrl=QueueUrl, Entries=passing) if passing else {}
        failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "x"} for e in failing]
        return {"Successful": response.get("Successful", []), "Failed": failed}


class TestQueueSender:
    def test_only_the_failed_entries_are_sent_again(self, function_env, stack_resources):
        sqs = boto3.client("sqs")
        url = stack_resources.queue_url("AccountChangesQueue")
        flaky = PartlyFailingSqs(sqs, fail_ids_once={"3", "7"})
        messages = [AccountChangeMessage(account_version(n, minute=1)) for n in range(1, 13)]
        SqsBatchSender(flaky, url, sleep=lambda _: None).send(messages)
        assert flaky.batches == [[str(i) for i in range(10)], ["3", "7"], ["0", "1"]]
        received = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in batch:
                received.append(parse_change_message(m["Body"]).version.account_id)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        assert sorted(received) == sorted(m.version.account_id for m in messages)

    def test_entries_that_keep_failing_are_an_error_naming_how_many(self, function_env, stack_resources):
        class AlwaysFailing:
            def send_message_batch(self, QueueUrl, Entries):
                return {
                    "Successful": [],
                    "Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "X"} for e in Entries],
                }

        url = stack_resources.queue_url("AccountChangesQueue")
        with pytest.raises(QueueSendError, match="2 of 2 messages not queued"):
            SqsBatchSender(AlwaysFailing(), url, max_attempts=2, sleep=lambda _: None).send(
                [AccountChangeMessage(account_version(n)) for n in (1, 2)]
            )
