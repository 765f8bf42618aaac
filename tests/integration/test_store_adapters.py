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
from account_sync.adapters.dynamodb_models import ActivityItem, ContactItem
from account_sync.adapters.sqs import SqsBatchSender
from account_sync.contracts import AccountChangeMessage, parse_change_message
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.fields import FieldChange, FieldValue
from account_sync.domain.local_edits import ContactEditMark, EditMark
from account_sync.domain.records import ActivitySuppression, ChangeDataValueActivity, ChangeOrigin, LocalEdit
from account_sync.ports import (
    Acceptance,
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
        assert len(queries) == 1 and "limit" not in queries[0]  # the keys of 25 contacts fit in one 1 MB page
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
        newer, older = account_version(1, minute=5), account_version(1, minute=4)
        assert contacts.apply_account_version(cid, newer, [FieldChange("Name", None, "Account 1")])
        assert not contacts.apply_account_version(cid, older, [])
        assert not contacts.apply_account_version(cid, account_version(2, minute=9), [])
        item = ContactItem.get(cid)
        assert item.account_modstamp == stamp(5)
        assert item.account_previous_values.as_dict() == {"Name": None}

    def test_a_deleted_contact_leaves_the_account_index(self, store):
        from tests.unit.factories import contact_version

        ids = given_members(2)
        DynamoContactRepository().apply_contact_version(contact_version(1000, account=1, minute=3, deleted=True), None)
        assert ids[0] == contact_id(1000)
        assert [c.contact_id for c in DynamoContactRepository().members(account_id(1))] == [ids[1]]
        assert ContactItem.get(ids[0]).deleted_from_account_id == account_id(1)

    def test_a_local_edit_sets_one_field_only_while_the_contact_belongs_to_the_account(self, store):
        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        contacts.apply_account_version(cid, account_version(1, minute=5), [])
        assert contacts.apply_local_edit(cid, _edit("Industry", "Local"), stamp(5), "Energy")
        assert contacts.apply_local_edit(cid, _edit("Name", None, minute=31), stamp(5), "Account 1")
        assert not contacts.apply_local_edit(cid, _edit("Industry", "Elsewhere", account=2), stamp(5), "Local")
        item = ContactItem.get(cid)
        assert item.account_fields.as_dict() == {"Name": None, "Industry": "Local", "BillingCountry": "France"}
        assert item.account_fields_source == "local" and item.account_modstamp == stamp(5)

    def test_a_local_edit_keeps_the_value_before_it_until_a_salesforce_version_overwrites_it(self, store):
        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        assert contacts.local_edit_of(cid) is None and contacts.local_edit_of(contact_id(999)) is None
        contacts.apply_account_version(cid, account_version(1, minute=5, NumberOfEmployees=12), [])
        edit = _edit("NumberOfEmployees", 13)
        assert contacts.apply_local_edit(cid, edit, stamp(5), 12)
        assert contacts.local_edit_of(cid) == ContactEditMark(edit.edit_id, edit.edited_at, "NumberOfEmployees", 12)
        # not in the account index: the fan-out reads it with GetItem, only for a contact holding the edited value
        (member,) = contacts.members(account_id(1))
        assert member.account_fields["NumberOfEmployees"] == 13
        contacts.apply_account_version(cid, account_version(1, minute=6), [])
        assert contacts.local_edit_of(cid) is None

    def test_a_local_edit_never_overwrites_a_newer_salesforce_version_on_the_contact(self, store):
        (cid,) = given_members(1)
        contacts = DynamoContactRepository()
        contacts.apply_account_version(cid, account_version(1, minute=6, Industry="Banking"), [])
        assert not contacts.apply_local_edit(cid, _edit("Industry", "Retail"), stamp(5), "Energy")
        assert contacts.apply_local_edit(cid, _edit("Industry", "Retail"), stamp(6), "Banking")  # over the same one
        (fresh,) = given_members(1, account=3)
        assert contacts.apply_local_edit(fresh, _edit("Industry", "Retail", account=3), stamp(1), None)  # no version
        assert ContactItem.get(cid).account_fields.as_dict()["Industry"] == "Retail"


class TestAccounts:
    def test_a_local_edit_needs_a_synced_live_account(self, store):
        accounts = DynamoAccountRepository()
        unsynced = AccountState(account_id(1), {}, None, None, False, None, None)
        assert not accounts.apply_local_edit(_edit("Industry", "Local"), unsynced)
        accounts.accept_version(account_version(1, minute=1), ActivityLogging.LOGGED, 1, [])
        assert accounts.apply_local_edit(_edit("Industry", "Local"), accounts.get(account_id(1)))
        assert accounts.get(account_id(1)).fields["Industry"] == "Local"
        accounts.accept_version(account_version(1, minute=2, deleted=True), ActivityLogging.LOGGED, 1, [])
        stored = accounts.get(account_id(1))
        assert not accounts.apply_local_edit(_edit("Industry", "Again", minute=31), replace(stored, is_deleted=False))

    def test_each_fields_last_local_edit_is_recorded_with_the_version_it_was_applied_over(self, store):
        accounts = DynamoAccountRepository()
        accounts.accept_version(account_version(1, minute=1), ActivityLogging.LOGGED, 1, [])
        first, other = _edit("Industry", "Local"), _edit("Name", "Local name", minute=31)
        assert accounts.apply_local_edit(first, accounts.get(account_id(1)))  # the first mark: a new map
        assert accounts.apply_local_edit(other, accounts.get(account_id(1)))  # another field: added to it
        stored = accounts.get(account_id(1))
        assert stored.local_edits == {
            "Industry": EditMark(first.edit_id, first.edited_at, stamp(1)),
            "Name": EditMark(other.edit_id, other.edited_at, stamp(1)),
        }
        assert (stored.fields["Industry"], stored.fields["Name"]) == ("Local", "Local name")
        # a newer version keeps the marks (each names the version it was applied over) and overwrites the fields
        accounts.accept_version(account_version(1, minute=2), ActivityLogging.LOGGED, 1, ["Industry", "Name"])
        stored = accounts.get(account_id(1))
        assert stored.local_edits["Industry"].base_modstamp == stamp(1) and stored.fields["Industry"] == "Energy"
        # the next edit of the field replaces its mark, over the new version
        later = _edit("Industry", "Later", minute=32)
        assert accounts.apply_local_edit(later, stored)
        assert accounts.get(account_id(1)).local_edits["Industry"] == EditMark(later.edit_id, later.edited_at, stamp(2))

    def test_a_local_edit_lands_only_on_the_account_it_was_decided_on(self, store):
        accounts = DynamoAccountRepository()
        accounts.accept_version(account_version(1, minute=1), ActivityLogging.LOGGED, 1, [])
        read = accounts.get(account_id(1))
        assert accounts.apply_local_edit(_edit("Industry", "First"), read)
        # the field's last edit changed since `read`: refused (whether the map existed or not when read)
        assert not accounts.apply_local_edit(_edit("Industry", "Second", minute=31), read)
        # a newer version came since the read
        read = accounts.get(account_id(1))
        accounts.accept_version(account_version(1, minute=2), ActivityLogging.LOGGED, 1, [])
        assert not accounts.apply_local_edit(_edit("Industry", "Third", minute=32), read)
        assert accounts.get(account_id(1)).fields["Industry"] == "Energy"

    def test_versions_are_accepted_in_order_only(self, store):
        accounts = DynamoAccountRepository()
        v1, v2 = account_version(1, minute=1, Industry="A"), account_version(1, minute=2, Industry="B")
        assert accounts.accept_version(v1, ActivityLogging.LOGGED, 3, ["Industry"]).acceptance is Acceptance.NEW
        second = accounts.accept_version(v2, ActivityLogging.LOGGED, 3, ["Industry"])
        assert second.acceptance is Acceptance.NEW and second.previous_fields["Industry"] == "A"
        assert accounts.accept_version(v1, ActivityLogging.LOGGED, 3, []).acceptance is Acceptance.STALE
        assert accounts.accept_version(v2, ActivityLogging.LOGGED, 3, []).acceptance is Acceptance.RESUME
        accounts.mark_applied(v2.account_id, v2.system_modstamp)
        assert accounts.accept_version(v2, ActivityLogging.LOGGED, 3, []).acceptance is Acceptance.ALREADY_APPLIED

    def test_an_unchanged_version_is_recorded_only_over_the_applied_version_it_was_read_with(self, store):
        accounts = DynamoAccountRepository()
        v1 = account_version(1, minute=1)
        accounts.accept_version(v1, ActivityLogging.LOGGED, 3, ["Industry"])
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
        assert accounts.accept_version(v1, ActivityLogging.LOGGED, 3, []).acceptance is Acceptance.STALE

    def test_segments_complete_once_every_segment_of_the_plan_is_done(self, store):
        accounts = DynamoAccountRepository()
        version = account_version(1, minute=1)
        accounts.accept_version(version, ActivityLogging.SUPPRESSED, 5001, [])
        accounts.start_segments(version.account_id, version.system_modstamp, "plan", 2)
        assert not accounts.complete_segment(version.account_id, version.system_modstamp, "plan:0")
        assert not accounts.complete_segment(version.account_id, version.system_modstamp, "plan:0")  # redelivered
        assert not accounts.complete_segment(version.account_id, version.system_modstamp, "old:1")  # replaced plan
        assert accounts.complete_segment(version.account_id, version.system_modstamp, "plan:1")


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
        # a version and two local edits stamped in the same millisecond: three records
        for origin, fields in (
            (ChangeOrigin.ACCOUNT, ("Industry",)),
            (ChangeOrigin.LOCAL, ("Industry",)),
            (ChangeOrigin.LOCAL, ("Name",)),
        ):
            DynamoActivityStore().put_suppression(
                ActivitySuppression(account_id(1), stamp(30), 5001, 5000, fields, stamp(40), origin)
            )
        items = {item.activity_key: item.source for item in ActivityItem.query(account_id(1))}
        assert items == {
            f"{stamp(30)}#suppressed": "salesforce",
            f"{stamp(30)}#local#Industry#suppressed": "local",
            f"{stamp(30)}#local#Name#suppressed": "local",
        }

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
