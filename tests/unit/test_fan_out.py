"""The rules of SPEC.md as the fan-out applies them, each with its boundary."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from account_sync.contracts import (
    ChangeSegmentMessage,
    ContactChangesMessage,
    LocalEditMessage,
    parse_change_message,
)
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.records import ChangeOrigin, LocalEdit
from account_sync.ports import TransientError
from account_sync.services.activity_log import write_activities
from account_sync.services.fan_out import FanOut, FanOutConfig

from tests.unit.factories import SYNCED, account_id, account_version, contact_id, contact_version, stamp
from tests.unit.fakes import (
    FakeAccounts,
    FakeActivityStore,
    FakeContact,
    FakeContacts,
    RecordingPublisher,
)

NOW = "2026-11-27T12:00:00.000Z"


class World:
    """A fan-out wired to fakes, plus the logging step, so a test reads like the pipeline."""

    def __init__(
        self,
        threshold: int = 5000,
        segment_size: int = 10_000,
        activity_queue: RecordingPublisher | None = None,
        executor: ThreadPoolExecutor | None = None,
        max_recent_joiners: int = 1000,
        pending_changes_bytes: int | None = None,
    ) -> None:
        self.clock = [NOW]  # what the fan-out's `now` answers; a test may move it
        self.accounts = FakeAccounts()
        self.contacts = FakeContacts(self.accounts)
        self.changes = RecordingPublisher()
        self.activity_queue = activity_queue or RecordingPublisher()
        self.store = FakeActivityStore()
        self.fan_out = FanOut(
            self.accounts,
            self.contacts,
            self.changes,
            self.activity_queue,
            self.store,
            FanOutConfig(
                SYNCED,
                activity_threshold=threshold,
                segment_size=segment_size,
                max_recent_joiners=max_recent_joiners,
                **({"pending_changes_bytes": pending_changes_bytes} if pending_changes_bytes is not None else {}),
            ),
            now=lambda: self.clock[0],
            executor=executor,
        )

    def given_contacts(self, count: int, account: int = 1, **fields: object) -> None:
        for n in range(count):
            self.contacts.add(FakeContact(contact_id(account * 1_000_000 + n), account_id(account), dict(fields) or {}))

    def sync(self, version):
        report = self.fan_out.apply_account_change(version)
        self.run_queued_segments()
        self.log_activities()
        return report

    def edit(self, edit: LocalEdit):
        """A local edit through the queue: its message, then the segments it queued, then the logging step."""
        report = self.fan_out.apply(parse_change_message(LocalEditMessage(edit).to_body()))
        self.run_queued_segments()
        self.log_activities()
        return report

    def run_queued_segments(self) -> list:
        reports = []
        while self.changes.messages:
            message = self.changes.messages.pop(0)
            assert isinstance(message, ChangeSegmentMessage)
            reports.append(self.fan_out.apply(parse_change_message(message.to_body())))
        return reports

    def log_activities(self) -> None:
        while self.activity_queue.messages:
            write_activities(self.activity_queue.messages.pop(0), self.store, lambda: NOW)

    def contact(self, n: int, account: int = 1) -> FakeContact:
        return self.contacts.items[contact_id(account * 1_000_000 + n)]

    def activities_of(self, n: int, account: int = 1):
        cid = contact_id(account * 1_000_000 + n)
        return [
            (a.attribute_name, a.old_value, a.new_value)
            for (c, key), a in sorted(self.store.activities.items())
            if c == cid
        ]


@pytest.fixture
def world() -> World:
    return World()


class TestFanOut:
    def test_an_account_change_reaches_every_contact_of_the_account(self, world):
        world.given_contacts(3)
        world.given_contacts(2, account=2)
        world.sync(account_version(1, minute=1, Industry="Retail"))
        assert all(world.contact(n).account_fields["Industry"] == "Retail" for n in range(3))
        assert all(world.contact(n, account=2).account_fields == {} for n in range(2))

    def test_one_activity_per_contact_per_changed_field(self, world):
        world.given_contacts(2)
        world.sync(account_version(1, minute=1))
        world.sync(account_version(1, minute=2, Industry="Retail", BillingCountry="Spain"))
        assert world.activities_of(0)[-2:] == [
            ("BillingCountry", "France", "Spain"),
            ("Industry", "Energy", "Retail"),
        ]
        keys = {key for (c, key) in world.store.activities if c == contact_id(1_000_000)}
        assert f"{stamp(2)}#account#Industry" in keys

    def test_a_system_modstamp_only_change_writes_nothing_and_logs_nothing(self, world):
        world.given_contacts(2)
        world.sync(account_version(1, minute=1))
        writes, logged = world.contacts.account_writes, len(world.store.activities)
        counts = world.contacts.count_calls
        report = world.sync(account_version(1, minute=2))
        assert (world.contacts.account_writes, len(world.store.activities)) == (writes, logged)
        # and it costs no contact read either: the version is recorded on the account, applied
        assert report.outcome == "unchanged" and world.contacts.count_calls == counts
        account = world.accounts.get(account_id(1))
        assert (account.system_modstamp, account.applied_modstamp) == (stamp(2), stamp(2))

    def test_the_activity_carries_the_marketo_attributes(self, world):
        world.given_contacts(1)
        world.sync(account_version(1, minute=3, Name="Acme"))
        activity = next(a for (_, k), a in world.store.activities.items() if k.endswith("#Name"))
        assert (activity.attribute_name, activity.old_value, activity.new_value) == ("Name", None, "Acme")
        assert activity.origin.source == "salesforce"
        assert activity.origin.reason == "Account updated in Salesforce"
        assert (activity.account_id, activity.system_modstamp, activity.activity_at) == (account_id(1), stamp(3), NOW)


class TestActivityThreshold:
    def test_exactly_5000_contacts_log_activities(self, world):
        world.given_contacts(5000)
        report = world.sync(account_version(1, minute=1, Industry="Retail"))
        assert report.activity_logging == "logged" and not report.suppressed
        assert len(world.store.activities) == 5000 * 3
        assert world.store.suppressions == {}

    def test_5001_contacts_sync_every_contact_but_log_no_activity(self, world):
        world.given_contacts(5001)
        report = world.sync(account_version(1, minute=1, Industry="Retail"))
        assert report.activity_logging == "suppressed" and report.suppressed
        assert all(c.account_fields["Industry"] == "Retail" for c in world.contacts.items.values())
        assert world.store.activities == {}

    def test_a_suppressed_change_leaves_one_account_level_record(self, world):
        world.given_contacts(5001)
        world.sync(account_version(1, minute=1, Industry="Retail"))
        world.sync(account_version(1, minute=1, Industry="Retail"))  # redelivered
        (record,) = world.store.suppressions.values()
        assert record.account_id == account_id(1)
        assert record.contacts_counted == 5001 and record.threshold == 5000
        assert set(record.changed_fields) == {"Name", "Industry", "BillingCountry"}

    def test_the_threshold_is_configurable(self):
        small = World(threshold=2)
        small.given_contacts(3)
        assert small.sync(account_version(1, minute=1)).suppressed

    def test_the_count_is_bounded_not_a_scan(self, world):
        world.given_contacts(7000)
        world.sync(account_version(1, minute=1))
        assert world.contacts.count_calls == 1


def local_edit(field: str, value, through: int = 0, minute: int = 30) -> LocalEdit:
    return LocalEdit(f"edit-{minute}", contact_id(1_000_000 + through), account_id(1), field, value, stamp(minute))


class TestLocalEdits:
    def test_an_edit_through_one_contact_changes_every_contact_of_the_account(self, world):
        world.given_contacts(3)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1))
        report = world.fan_out.apply_local_edit(local_edit("Industry", "Edited in the store"))
        world.log_activities()
        assert report.contacts_written == 3
        assert {world.contact(n).account_fields["Industry"] for n in range(3)} == {"Edited in the store"}
        assert world.accounts.get(account_id(1)).fields["Industry"] == "Edited in the store"
        assert world.contact(0, account=2).account_fields == {}
        (activity,) = [
            a
            for (c, k), a in world.store.activities.items()
            if k == f"{stamp(30)}#local#Industry#edit-30" and c == contact_id(1_000_000)
        ]
        assert (activity.old_value, activity.new_value, activity.origin.source) == (
            "Energy",
            "Edited in the store",
            "local",
        )

    def test_an_edit_follows_the_threshold_rule(self):
        world = World(threshold=2)
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        report = world.fan_out.apply_local_edit(local_edit("Name", "Local"))
        world.log_activities()
        assert report.suppressed and report.contacts_written == 3
        assert [k for (_, k), _a in world.store.activities.items() if "#local#" in k] == []
        assert (account_id(1), f"{stamp(30)}#local#Name#edit-30#suppressed") in world.store.suppressions

    def test_an_edit_of_an_account_never_synced_changes_nothing(self, world):
        world.given_contacts(2)
        assert world.fan_out.apply_local_edit(local_edit("Name", "x")).outcome == "account_not_synced"
        assert world.contact(0).account_fields == {}
        assert world.changes.messages == [] and world.activity_queue.messages == []

    def test_an_edit_of_an_account_deleted_since_changes_nothing(self, world):
        world.given_contacts(2)
        world.sync(account_version(1, minute=1))
        world.sync(account_version(1, minute=2, deleted=True))
        assert world.edit(local_edit("Name", "x")).outcome == "account_not_synced"
        assert {world.contact(n).account_fields["Name"] for n in range(2)} == {"Account 1"}

    def test_the_next_salesforce_update_overwrites_every_synced_field(self, world):
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Name", "Edited in the store"))
        world.log_activities()
        world.sync(account_version(1, minute=2, Industry="Retail"))  # Salesforce changed Industry only
        for n in range(3):
            assert world.contact(n).account_fields == {
                "Name": "Account 1",
                "Industry": "Retail",
                "BillingCountry": "France",
            }
            assert world.contact(n).account_fields_source == "salesforce"
        assert ("Name", "Edited in the store", "Account 1") in world.activities_of(0)


def local_activities(world: World, minute: int = 30, field: str = "Industry") -> dict[str, tuple]:
    """The Change Data Value activities of one local edit, by contact: (old, new)."""
    key = f"{stamp(minute)}#local#{field}#edit-{minute}"
    return {c: (a.old_value, a.new_value) for (c, k), a in world.store.activities.items() if k == key}


def industries(world: World) -> set:
    return {c.account_fields.get("Industry") for c in world.contacts.items.values() if not c.is_deleted}


def take(publisher: RecordingPublisher) -> list:
    """The messages queued so far, off the queue: a test decides when each is delivered."""
    messages = list(publisher.messages)
    publisher.messages.clear()
    return messages


class CountingExecutor(ThreadPoolExecutor):
    """A real thread pool that records how many contacts each `map` hands to its threads."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.batches: list[int] = []

    def map(self, fn, *iterables, **kwargs):
        items = list(iterables[0])
        self.batches.append(len(items))
        return super().map(fn, items, **kwargs)


class TestLocalEditsOfLargeAccounts:
    """An edit of an account larger than FanOutSegmentSize is planned in segments, like an account version."""

    def test_an_edit_of_exactly_the_segment_size_is_applied_by_its_own_invocation(self):
        world = World(segment_size=10)
        world.given_contacts(10)
        world.sync(account_version(1, minute=1))
        report = world.fan_out.apply_local_edit(local_edit("Industry", "Retail"))
        assert (report.outcome, report.segments_planned, report.contacts_written) == ("applied", 0, 10)
        assert world.changes.messages == []
        world.log_activities()
        assert set(local_activities(world).values()) == {("Energy", "Retail")} and len(local_activities(world)) == 10

    def test_one_contact_more_than_the_segment_size_is_planned_in_segments(self):
        world = World(segment_size=10)
        world.given_contacts(11)
        world.sync(account_version(1, minute=1))
        report = world.fan_out.apply_local_edit(local_edit("Industry", "Retail"))
        # the invocation of the edit writes the stored account and plans; it writes no contact
        assert (report.outcome, report.segments_planned, report.contacts_written) == ("planned", 2, 0)
        assert world.accounts.get(account_id(1)).fields["Industry"] == "Retail"
        assert industries(world) == {"Energy"}
        segments = list(world.changes.messages)
        assert [(s.index, s.total, s.group_id, s.change.base_modstamp) for s in segments] == [
            (0, 2, f"{account_id(1)}#{segments[0].plan_id}#0", stamp(1)),  # groups of their own: side by side
            (1, 2, f"{account_id(1)}#{segments[0].plan_id}#1", stamp(1)),
        ]
        # each segment applies its key range
        assert [r.contacts_written for r in world.run_queued_segments()] == [10, 1]
        world.log_activities()
        assert industries(world) == {"Retail"}
        assert set(local_activities(world).values()) == {("Energy", "Retail")} and len(local_activities(world)) == 11

    def test_no_invocation_writes_more_contacts_than_a_segment(self):
        world = World(segment_size=500)
        world.given_contacts(3_600)
        world.sync(account_version(1, minute=1))
        report = world.fan_out.apply_local_edit(local_edit("Industry", "Retail"))
        assert (report.segments_planned, report.contacts_written) == (8, 0)
        assert [r.contacts_written for r in world.run_queued_segments()] == [500] * 7 + [100]
        assert industries(world) == {"Retail"}

    def test_an_edits_contact_writes_run_on_the_executor_a_window_at_a_time(self):
        executor = CountingExecutor()
        world = World(segment_size=1000, executor=executor)
        world.given_contacts(600)
        world.sync(account_version(1, minute=1))
        executor.batches.clear()
        with executor:
            report = world.fan_out.apply_local_edit(local_edit("Industry", "Retail"))
        assert report.contacts_written == 600
        assert executor.batches == [256, 256, 88]
        assert industries(world) == {"Retail"}

    def test_an_edit_queued_behind_a_version_still_fanned_out_in_segments_is_applied_after_it(self):
        # given an account of 11 contacts whose new version is planned in two segments of 10, then one contact
        # deleted: the account is now small enough for one invocation, but the version's segments are still queued
        world = World(segment_size=10)
        world.given_contacts(11)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Name="Renamed", Industry="Banking"))
        version_segments = take(world.changes)
        world.fan_out.apply_contact_change(contact_version(1_000_010, account=1, minute=3, deleted=True))
        # when an edit queued before those segments is applied, then the segments in queue order
        report = world.fan_out.apply_local_edit(local_edit("Industry", "Retail"))
        for message in version_segments + take(world.changes):
            world.fan_out.apply(message)
        world.log_activities()
        # then the edit was planned behind the version's segments, so it is the value every contact keeps
        assert report.outcome == "planned"
        assert industries(world) == {"Retail"}
        assert {world.contact(n).account_fields["Name"] for n in range(10)} == {"Renamed"}
        assert set(local_activities(world).values()) == {("Banking", "Retail")} and len(local_activities(world)) == 10


class TestLocalEditOrder:
    """SPEC R3: a newer Salesforce version overwrites a local edit, never the reverse; a later edit wins."""

    def test_segments_of_an_edit_never_overwrite_a_salesforce_version_accepted_after_the_plan(self):
        # given a large account's edit, planned in three segments, of which the first has run
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "Retail"))
        segments = take(world.changes)
        world.fan_out.apply(segments[0])
        # when a newer Salesforce version is accepted and its segments (side by side) run first, then the rest
        world.sync(account_version(1, minute=40, Industry="Banking"))
        reports = [world.fan_out.apply(s) for s in segments[1:]]
        world.log_activities()
        # then the remaining segments write nothing: every contact holds Salesforce's value
        assert [(r.outcome, r.contacts_written) for r in reports] == [("superseded", 0)] * 2
        assert industries(world) == {"Banking"}
        assert world.accounts.get(account_id(1)).fields["Industry"] == "Banking"
        # and every contact was logged twice, as it changed twice: the version's segments first wrote the edit, owed
        # since its acceptance, onto the contacts its own segments had not reached yet (issue 10, 2.1; before
        # 2026-12-05, with segments in the account's group, those 15 contacts lost the edit's activity)
        assert local_activities(world) == {contact_id(1_000_000 + n): ("Energy", "Retail") for n in range(25)}
        from_salesforce = {
            c: (a.old_value, a.new_value)
            for (c, k), a in world.store.activities.items()
            if k == f"{stamp(40)}#account#Industry"
        }
        assert sorted(from_salesforce.values()) == [("Retail", "Banking")] * 25

    def test_the_contact_write_itself_never_overwrites_a_newer_salesforce_version(self, world):
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        newer = world.contact(2)
        newer.account_modstamp, newer.account_fields = stamp(50), {**newer.account_fields, "Industry": "Banking"}
        report = world.edit(local_edit("Industry", "Retail"))
        assert (report.contacts_written, report.contacts_skipped) == (2, 1)
        assert newer.account_fields["Industry"] == "Banking"
        assert contact_id(1_000_002) not in local_activities(world)

    @pytest.mark.parametrize("second", ["planned", "small-account"])
    def test_a_later_edit_of_the_same_field_lands_after_the_first_ones_segments_each_with_its_activities(self, second):
        # given a large account's edit of Industry, planned in segments
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "First", minute=30))
        first = take(world.changes)
        if second == "small-account":  # the account shrank meanwhile: alone, the second edit needs no segment
            for n in range(10, 25):
                world.fan_out.apply_contact_change(contact_version(1_000_000 + n, account=1, minute=5, deleted=True))
        # when a second edit of Industry, queued before the first one's segments, is applied before them
        second_report = world.fan_out.apply_local_edit(local_edit("Industry", "Second", minute=31))
        reports = [world.fan_out.apply(s) for s in first + take(world.changes)]
        world.log_activities()
        # then the second edit went in segments behind the first one's (never at once, ahead of them), the first
        # edit's segments still wrote it (its activities were owed when it was accepted: issue 10, 2.1), and
        # every contact ends with the second value
        assert second_report.outcome == "planned"
        assert {r.outcome for r in reports[: len(first)]} == {"superseded"}
        assert industries(world) == {"Second"}
        assert world.accounts.get(account_id(1)).fields["Industry"] == "Second"
        # with one activity per contact and edit, each from the value the contact held: the first edit's for every
        # contact of the account when it was accepted (those deleted before its segments came took it as they
        # left: issue 10, 2.1), the second's for the contacts still there when it was
        live = 25 if second == "planned" else 10
        assert list(local_activities(world, minute=30).values()) == [("Energy", "First")] * 25
        assert list(local_activities(world, minute=31).values()) == [("First", "Second")] * live

    def test_edits_of_two_fields_in_a_row_both_reach_every_contact(self):
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "Retail", minute=30))
        world.fan_out.apply_local_edit(local_edit("Name", "Local name", minute=31))
        world.run_queued_segments()
        world.log_activities()
        assert {(c.account_fields["Industry"], c.account_fields["Name"]) for c in world.contacts.items.values()} == {
            ("Retail", "Local name")
        }
        assert len(local_activities(world, 30, "Industry")) == len(local_activities(world, 31, "Name")) == 25

    def test_a_version_equal_to_the_stored_values_is_still_fanned_out_while_an_edit_may_be_on_its_way(self):
        # given an edit applied to every contact, then a second one restoring Salesforce's value, not applied yet
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.edit(local_edit("Industry", "Retail", minute=30))
        world.fan_out.apply_local_edit(local_edit("Industry", "Energy", minute=31))
        pending = take(world.changes)
        # when Salesforce sends a version with exactly the values the stored account holds again
        report = world.sync(account_version(1, minute=40))
        # then it is fanned out (not taken for a version every contact already holds), and the edit's segments
        # that come after it write nothing
        assert report.outcome == "new"
        assert industries(world) == {"Energy"}
        assert {world.fan_out.apply(s).outcome for s in pending} == {"superseded"}

    def test_an_edit_delivered_again_after_a_later_edit_of_the_field_changes_nothing(self, world):
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        first = local_edit("Industry", "First", minute=30)
        world.edit(first)
        world.edit(local_edit("Industry", "Second", minute=31))
        assert world.edit(first).outcome == "superseded"  # redriven from the dead-letter queue
        assert industries(world) == {"Second"}
        assert world.accounts.get(account_id(1)).fields["Industry"] == "Second"

    def test_an_edit_delivered_again_after_a_newer_salesforce_version_changes_nothing(self, world):
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        edit = local_edit("Industry", "Retail")
        world.edit(edit)
        world.sync(account_version(1, minute=40, Industry="Banking"))
        assert world.edit(edit).outcome == "superseded"
        assert industries(world) == {"Banking"}
        assert world.accounts.get(account_id(1)).fields["Industry"] == "Banking"


class TestLocalEditRedelivery:
    """The same edit twice, or a crash half-way then the redelivery: no activity lost, none doubled."""

    @pytest.mark.parametrize("segment_size", [10_000, 10], ids=["one-invocation", "segmented"])
    def test_the_same_edit_twice_gives_one_activity_per_contact(self, segment_size):
        world = World(segment_size=segment_size)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        edit = local_edit("Industry", "Retail")
        world.edit(edit)
        logged = dict(world.store.activities)
        # a first delivery that changes every contact reads no contact item
        assert world.contacts.contact_reads == 0
        writes = world.contacts.local_writes
        world.edit(edit)  # the same message again (its delete was lost)
        assert world.contacts.local_writes == writes
        assert world.store.activities == logged
        assert local_activities(world) == {contact_id(1_000_000 + n): ("Energy", "Retail") for n in range(25)}

    def test_the_same_segment_twice_gives_one_activity_per_contact(self):
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "Retail"))
        segments = take(world.changes)
        for segment in [*segments, segments[1]]:
            report = world.fan_out.apply(segment)
        assert (report.contacts_written, report.contacts_unchanged) == (0, 10)
        world.log_activities()
        assert local_activities(world) == {contact_id(1_000_000 + n): ("Energy", "Retail") for n in range(25)}

    @pytest.mark.parametrize("where", ["in-one-invocation", "in-a-segment"])
    def test_a_crash_half_way_is_finished_by_the_redelivery_without_losing_or_doubling_activities(self, where):
        world = World(segment_size=10_000 if where == "in-one-invocation" else 10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        edit = local_edit("Industry", "Retail")
        message = LocalEditMessage(edit)
        if where == "in-a-segment":
            world.fan_out.apply(message)
            segments = take(world.changes)
            world.fan_out.apply(segments[0])
            world.log_activities()
            message, rest = segments[1], segments[2:]
        # when the invocation dies after 4 contact writes, before it queued their activities
        world.contacts.fail_writes_after = world.contacts.writes + 4
        with pytest.raises(RuntimeError):
            world.fan_out.apply(message)
        world.activity_queue.messages.clear()
        world.contacts.fail_writes_after = None
        # then SQS delivers the message again, and the rest follows
        world.fan_out.apply(message)
        if where == "in-a-segment":
            for segment in rest:
                world.fan_out.apply(segment)
        world.run_queued_segments()
        world.log_activities()
        assert industries(world) == {"Retail"}
        assert local_activities(world) == {contact_id(1_000_000 + n): ("Energy", "Retail") for n in range(25)}
        assert world.contacts.local_writes == 25

    def test_a_crash_half_way_over_a_version_the_contacts_never_took_loses_no_activity_on_redelivery(self):
        # found by the model-based suite (make chaos, the healthy machine): a SystemModstamp-only version is accepted
        # without a write to any contact, so an edit over it reaches contacts that hold an older version and marks
        # its field even where the value does not change. Redelivered after a crash, the edit wrote that mark again
        # on a contact it had already written, with the edited value as "before": the contact's activity was lost.
        world = World()
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        assert world.sync(account_version(1, minute=2)).outcome == "unchanged"  # no contact holds it
        message = LocalEditMessage(local_edit("Industry", "Retail"))
        world.contacts.fail_writes_after = world.contacts.writes + 4
        with pytest.raises(RuntimeError):
            world.fan_out.apply(message)
        world.activity_queue.messages.clear()
        world.contacts.fail_writes_after = None
        world.fan_out.apply(message)
        world.log_activities()
        assert local_activities(world) == {contact_id(1_000_000 + n): ("Energy", "Retail") for n in range(25)}


class TestLocalEditThreshold:
    """SPEC R6 for local edits: exactly the threshold of contacts, logged; one more, synced without activities."""

    @pytest.mark.parametrize("segment_size", [10_000, 500], ids=["one-invocation", "segmented"])
    def test_exactly_5000_contacts_log_an_activity_each(self, segment_size):
        world = World(segment_size=segment_size)
        world.given_contacts(5000)
        world.sync(account_version(1, minute=1))
        report = world.edit(local_edit("Industry", "Retail"))
        assert report.activity_logging == "logged" and not report.suppressed
        assert report.segments_planned == (0 if segment_size == 10_000 else 10)
        assert len(local_activities(world)) == 5000
        assert world.store.suppressions == {}

    @pytest.mark.parametrize("segment_size", [10_000, 500], ids=["one-invocation", "segmented"])
    def test_5001_contacts_take_the_edit_with_one_suppression_record_and_no_activity(self, segment_size):
        world = World(segment_size=segment_size)
        world.given_contacts(5001)
        world.sync(account_version(1, minute=1))
        edit = local_edit("Industry", "Retail")
        report = world.edit(edit)
        assert report.activity_logging == "suppressed" and report.suppressed
        assert industries(world) == {"Retail"}
        assert local_activities(world) == {}
        world.edit(edit)  # redelivered: still one record
        (record,) = [r for r in world.store.suppressions.values() if r.origin is ChangeOrigin.LOCAL]
        assert (record.account_id, record.system_modstamp, record.changed_fields) == (
            account_id(1),
            stamp(30),
            ("Industry",),
        )
        assert (record.contacts_counted, record.threshold) == (5001, 5000)


class TestOrderingAndIdempotence:
    def test_an_older_version_after_a_newer_one_changes_nothing_and_logs_nothing(self, world):
        world.given_contacts(2)
        world.sync(account_version(1, minute=5, Industry="Newer"))
        logged = dict(world.store.activities)
        report = world.sync(account_version(1, minute=4, Industry="Older"))
        assert report.outcome == "stale"
        assert world.contact(0).account_fields["Industry"] == "Newer"
        assert world.store.activities == logged

    def test_the_same_message_twice_gives_one_set_of_activities(self, world):
        world.given_contacts(2)
        version = account_version(1, minute=1, Industry="Retail")
        world.sync(version)
        first = dict(world.store.activities)
        report = world.sync(version)
        assert report.outcome == "already_applied"
        assert world.store.activities == first and len(first) == 2 * 3

    def test_a_crash_midway_is_finished_by_the_redelivery_without_losing_or_doubling_activities(self, world):
        world.given_contacts(10)
        world.sync(account_version(1, minute=1))
        version = account_version(1, minute=2, Industry="Retail")
        world.contacts.fail_writes_after = world.contacts.account_writes + 4
        with pytest.raises(RuntimeError):
            world.fan_out.apply_account_change(version)
        world.activity_queue.messages.clear()  # the crash lost what had not been sent
        world.contacts.fail_writes_after = None
        report = world.sync(version)  # SQS redelivers
        assert report.outcome == "resume"
        assert all(world.contact(n).account_fields["Industry"] == "Retail" for n in range(10))
        industry = [k for (_, k) in world.store.activities if k == f"{stamp(2)}#account#Industry"]
        assert len(industry) == 10
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(2)


class TestLargeAccounts:
    def test_a_large_account_is_planned_in_bounded_segments(self):
        world = World(threshold=5000, segment_size=1000)
        world.given_contacts(3500)
        report = world.fan_out.apply_account_change(account_version(1, minute=1, Industry="Retail"))
        assert report.segments_planned == 4 and report.contacts_written == 0
        segments = list(world.changes.messages)
        assert [(s.index, s.total) for s in segments] == [(0, 4), (1, 4), (2, 4), (3, 4)]
        sizes = []
        for segment in segments:
            sizes.append(world.fan_out.apply_segment(segment).contacts_written)
        assert sizes == [1000, 1000, 1000, 500]
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(1)

    def test_every_segment_carries_the_decision_of_the_version(self):
        world = World(threshold=2500, segment_size=1000)
        world.given_contacts(3000)
        world.fan_out.apply_account_change(account_version(1, minute=1))
        assert {s.activity_logging for s in world.changes.messages} == {ActivityLogging.SUPPRESSED}
        world.run_queued_segments()
        world.log_activities()
        assert world.store.activities == {}

    def test_a_segment_of_a_version_superseded_since_is_a_no_op(self):
        world = World(segment_size=2)
        world.given_contacts(5)
        world.fan_out.apply_account_change(account_version(1, minute=1, Industry="Old"))
        old_segments = list(world.changes.messages)
        world.changes.messages.clear()
        world.sync(account_version(1, minute=2, Industry="New"))
        reports = [world.fan_out.apply_segment(s) for s in old_segments]
        assert {r.outcome for r in reports} == {"stale"}
        assert {c.account_fields["Industry"] for c in world.contacts.items.values()} == {"New"}


class TestMembershipAndDeletes:
    def test_a_contact_moved_to_another_account_takes_its_fields(self, world):
        world.given_contacts(1, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1, Name="One"))
        world.sync(account_version(2, minute=1, Name="Two"))
        moved = contact_id(1_000_000)
        version = contact_version(1_000_000, account=2, minute=3)
        world.fan_out.apply_contact_change(version)
        assert world.contacts.items[moved].account_id == account_id(2)
        assert world.contacts.items[moved].account_fields["Name"] == "Two"
        world.sync(account_version(1, minute=4, Name="One again"))  # the old account no longer reaches it
        assert world.contacts.items[moved].account_fields["Name"] == "Two"

    def test_a_contact_of_an_account_not_synced_yet_gets_its_fields_from_the_account_fan_out(self, world):
        world.fan_out.apply_contact_change(contact_version(7, account=3))
        world.sync(account_version(3, minute=2, Name="Three"))
        assert world.contacts.items[contact_id(7)].account_fields["Name"] == "Three"

    def test_an_older_contact_version_is_ignored(self, world):
        world.fan_out.apply_contact_change(contact_version(7, account=3, minute=5))
        report = world.fan_out.apply_contact_change(contact_version(7, account=4, minute=4))
        assert report.outcome == "stale"
        assert world.contacts.items[contact_id(7)].account_id == account_id(3)

    def test_a_deleted_account_flags_every_contact_and_logs_nothing(self, world):
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        logged = len(world.store.activities)
        world.sync(account_version(1, minute=2, deleted=True))
        assert all(world.contact(n).account_deleted for n in range(3))
        assert world.accounts.get(account_id(1)).is_deleted
        assert len(world.store.activities) == logged
        world.sync(account_version(1, minute=3))  # undeleted in Salesforce
        assert not any(world.contact(n).account_deleted for n in range(3))

    def test_a_deleted_contact_is_flagged_and_leaves_its_account(self, world):
        world.given_contacts(2)
        world.fan_out.apply_contact_change(contact_version(1_000_000, account=1, minute=3, deleted=True))
        gone = world.contacts.items[contact_id(1_000_000)]
        assert gone.is_deleted and gone.account_id is None and gone.deleted_from_account_id == account_id(1)
        assert world.contacts.count_members(account_id(1), 10) == 1


class TestVersionsThatChangeNoSyncedField:
    """A SystemModstamp-only change, or one of a field that is not synced: recorded, never fanned out."""

    def test_the_version_is_still_recorded_so_an_older_one_arriving_late_is_refused(self, world):
        world.given_contacts(2)
        world.sync(account_version(1, minute=1, Industry="Retail"))
        world.sync(account_version(1, minute=3, Industry="Retail"))  # unchanged
        report = world.sync(account_version(1, minute=2, Industry="Banking"))  # older, redriven late
        assert report.outcome == "stale"
        assert {world.contact(n).account_fields["Industry"] for n in range(2)} == {"Retail"}

    def test_after_a_local_edit_the_same_salesforce_values_still_overwrite_every_contact(self, world):
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "Edited in the store"))
        report = world.sync(account_version(1, minute=40))  # the Salesforce values of minute 1, unchanged
        assert report.outcome == "new" and report.contacts_written == 3
        assert {world.contact(n).account_fields["Industry"] for n in range(3)} == {"Energy"}

    def test_a_version_whose_fan_out_is_not_finished_is_not_taken_as_reached_by_every_contact(self, world):
        world.given_contacts(10)
        world.sync(account_version(1, minute=1))
        world.contacts.fail_writes_after = world.contacts.account_writes + 4
        with pytest.raises(RuntimeError):
            world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        world.contacts.fail_writes_after = None
        report = world.sync(account_version(1, minute=3, Industry="Retail"))  # same values, newer stamp
        assert report.outcome == "new"
        assert {world.contact(n).account_fields["Industry"] for n in range(10)} == {"Retail"}

    def test_a_delete_with_the_same_values_still_reaches_every_contact(self, world):
        world.given_contacts(2)
        world.sync(account_version(1, minute=1))
        report = world.sync(account_version(1, minute=2, deleted=True))
        assert report.outcome == "new"
        assert all(world.contact(n).account_deleted for n in range(2))

    def test_a_later_real_change_reaches_every_contact(self, world):
        world.given_contacts(2)
        world.sync(account_version(1, minute=1))
        world.sync(account_version(1, minute=2))  # unchanged
        report = world.sync(account_version(1, minute=3, Industry="Retail"))
        assert report.contacts_written == 2
        assert ("Industry", "Energy", "Retail") in world.activities_of(0)


class CountingPublisher(RecordingPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def publish(self, messages) -> None:
        self.calls.append(len(messages))
        super().publish(messages)


def test_activity_messages_are_queued_ten_at_a_time():
    # given an account of 1,000 contacts, and a version that changes 3 synced fields: 3,000 changes, 15 messages
    world = World(activity_queue=CountingPublisher())
    world.given_contacts(1000)
    world.sync(account_version(1, minute=1))
    world.activity_queue.calls.clear()
    # when it is fanned out
    report = world.sync(account_version(1, minute=2, Name="Acme", Industry="Retail", BillingCountry="Spain"))
    # then the 15 messages went out in two publishes (two SendMessageBatch), none of them lost
    assert report.activities_queued == 3000
    assert world.activity_queue.calls == [10, 5]
    assert len(world.store.activities) == 1000 * 3 * 2


class TestFreshness:
    """The report says when a version has reached its account's last contact: the handler's SyncLagSeconds."""

    def test_a_small_account_is_complete_with_its_own_message(self):
        world = World(segment_size=10)
        world.given_contacts(10)
        report = world.sync(account_version(1, 1, Industry="Energy"))
        assert report.completed_version == stamp(1)

    def test_a_large_account_is_complete_with_its_last_segment_only(self):
        world = World(segment_size=10)
        world.given_contacts(25)
        planned = world.fan_out.apply_account_change(account_version(1, 1, Industry="Energy"))
        segments = world.run_queued_segments()
        assert planned.completed_version is None
        assert [r.completed_version for r in segments] == [None, None, stamp(1)]

    def test_a_stale_or_repeated_version_completes_nothing(self):
        world = World()
        world.given_contacts(3)
        world.sync(account_version(1, 2, Industry="Energy"))
        assert world.sync(account_version(1, 1, Industry="Old")).completed_version is None
        assert world.sync(account_version(1, 2, Industry="Energy")).completed_version is None


# --- issue 10, section 2: what must hold whatever the order of events --------------------------------------


def account_activities(world: World, minute: int, field: str = "Industry") -> dict[str, tuple]:
    """The Change Data Value activities of one account version, by contact: (old, new)."""
    key = f"{stamp(minute)}#account#{field}"
    return {c: (a.old_value, a.new_value) for (c, k), a in world.store.activities.items() if k == key}


def move_activities(world: World, contact: str) -> dict[str, tuple]:
    """A contact's activities of origin `contact` (it moved to another account), by key: (old, new)."""
    return {
        k: (a.old_value, a.new_value)
        for (c, k), a in world.store.activities.items()
        if c == contact and "#contact#" in k
    }


def members(world: World, account: int = 1) -> list[str]:
    return sorted(c.contact_id for c in world.contacts.items.values() if c.account_id == account_id(account))


class TestNoActivityOwedIsLost:
    """Rule 2.1: whoever writes a change's values onto a contact owes that change's activities."""

    def test_a_contact_change_of_the_same_fetch_window_before_the_versions_segments_loses_no_activity(self):
        # given a large account whose new version is planned in segments, and, queued by the same fetch between
        # the version and its segments, Contact versions of its contacts (they stay in the account)
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        segments = take(world.changes)
        contact_ids = [contact_id(1_000_000 + n) for n in range(25)]
        same_window = [contact_version(1_000_000 + n, account=1, minute=2) for n in range(0, 25, 2)]
        world.fan_out.apply(ContactChangesMessage(tuple(same_window[:10])))
        world.fan_out.apply(ContactChangesMessage(tuple(same_window[10:])))
        # when the segments come
        for segment in segments:
            world.fan_out.apply(segment)
        world.log_activities()
        # then every contact holds the version and has exactly its one activity, from the value it held
        assert industries(world) == {"Retail"}
        assert account_activities(world, minute=2) == {cid: ("Energy", "Retail") for cid in contact_ids}

    def test_a_version_accepted_before_the_previous_ones_segments_keeps_both_versions_activities(self):
        # given a large account whose version is planned in segments, and a newer version, queued before those
        # segments, accepted before they run (found by the model-based suite: the first version's were lost)
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        first = take(world.changes)
        newer = world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Banking"))
        second = take(world.changes)
        # when the segments run in queue order
        for segment in first + second:
            world.fan_out.apply(segment)
        world.log_activities()
        # then the newer version went in segments behind the first one's, and each version logged its change
        assert newer.segments_planned == len(second) > 0
        assert industries(world) == {"Banking"}
        contact_ids = [contact_id(1_000_000 + n) for n in range(25)]
        assert account_activities(world, minute=2) == {cid: ("Energy", "Retail") for cid in contact_ids}
        assert account_activities(world, minute=3) == {cid: ("Retail", "Banking") for cid in contact_ids}
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(3)

    def test_a_segment_of_an_edit_redriven_after_a_later_edit_wrote_the_contacts_writes_nothing(self):
        # given two edits of Industry, each in segments, all run; then the first edit's segment comes again late
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "First", minute=30))
        first = take(world.changes)
        world.fan_out.apply_local_edit(local_edit("Industry", "Second", minute=31))
        for segment in first + take(world.changes):
            world.fan_out.apply(segment)
        # when a segment of the first edit is redriven from the dead-letter queue
        report = world.fan_out.apply(first[0])
        # then it writes nothing back: the contacts hold the later edit
        assert (report.outcome, report.contacts_written) == ("superseded", 0)
        assert industries(world) == {"Second"}

    def test_a_contact_that_moves_into_an_account_while_its_version_is_in_segments_gets_one_activity(self):
        # given account 2's new version planned in segments, and a contact of account 1 that moves into it
        world = World(segment_size=10)
        world.given_contacts(1, account=1)
        world.given_contacts(15, account=2)
        world.sync(account_version(1, minute=1, Name="Same", Industry="Energy"))
        world.sync(account_version(2, minute=1, Name="Same", Industry="Banking"))
        world.fan_out.apply_account_change(account_version(2, minute=2, Name="Same", Industry="Retail"))
        segments = take(world.changes)
        moved = contact_id(1_000_000)
        world.fan_out.apply_contact_change(contact_version(1_000_000, account=2, minute=3))
        # when account 2's segments come after the move (the last range is open: the mover is in it)
        reports = [world.fan_out.apply(s) for s in segments]
        world.log_activities()
        # then the mover holds the version, with one activity per field its move changed, of origin contact
        assert world.contacts.items[moved].account_fields["Industry"] == "Retail"
        assert move_activities(world, moved) == {f"{stamp(3)}#contact#Industry": ("Energy", "Retail")}
        assert moved not in account_activities(world, minute=2)
        assert sum(r.contacts_unchanged for r in reports) == 1

    def test_a_contact_that_moves_away_while_its_old_accounts_version_is_in_segments_takes_it_as_it_leaves(self):
        world = World(segment_size=10)
        world.given_contacts(15, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1, Name="Same", Industry="Energy"))
        world.sync(account_version(2, minute=1, Name="Same", Industry="Banking"))
        world.fan_out.apply_account_change(account_version(1, minute=2, Name="Same", Industry="Retail"))
        segments = take(world.changes)
        mover = contact_id(1_000_014)
        world.fan_out.apply_contact_change(contact_version(1_000_014, account=2, minute=3))
        reports = [world.fan_out.apply(segment) for segment in segments]
        world.log_activities()
        # the version was owed to it when accepted (issue 10, 2.1): it took it as it left, then the move's values;
        # the segments no longer find it
        assert world.contacts.items[mover].account_fields["Industry"] == "Banking"
        assert account_activities(world, minute=2)[mover] == ("Energy", "Retail")
        assert move_activities(world, mover) == {f"{stamp(3)}#contact#Industry": ("Retail", "Banking")}
        assert len(account_activities(world, minute=2)) == 15
        assert sum(r.contacts_written for r in reports) == 14

    @pytest.mark.parametrize("leaves", ["deleted", "to another account", "to no account"])
    def test_a_contact_that_leaves_between_an_edits_acceptance_and_its_segments_gets_the_edits_activity(self, leaves):
        # found by the model-based suite (CHANGE_OVERTAKES_SEGMENTS, shrunk): an edit planned in segments, and a
        # contact of the account that leaves before the segments come (a move travels in another group)
        world = World(segment_size=10)
        world.given_contacts(15, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1, Name="Same", Industry="Energy"))
        world.sync(account_version(2, minute=1, Name="Same", Industry="Energy"))
        world.fan_out.apply_local_edit(local_edit("Name", "Local name", minute=30))
        segments = take(world.changes)
        leaver = contact_id(1_000_003)
        account = {"deleted": 1, "to another account": 2, "to no account": None}[leaves]
        world.fan_out.apply_contact_change(
            contact_version(1_000_003, account=account, minute=31, deleted=leaves == "deleted")
        )
        for segment in segments:
            world.fan_out.apply(segment)
        world.log_activities()
        # then every contact of the account when the edit was accepted has its one activity, the leaver's included
        assert list(local_activities(world, field="Name").values()) == [("Same", "Local name")] * 15
        assert leaver in local_activities(world, field="Name")

    @pytest.mark.parametrize("leaves", ["deleted", "to another account"])
    @pytest.mark.parametrize("change", ["edit", "version"])
    def test_a_contact_leaving_after_a_change_written_at_once_reached_it_before_its_delivery_died_gets_its_activity(
        self, change, leaves
    ):
        # finding G (make chaos, 2026-12-05): a change written at once (no segments) whose delivery died after
        # writing one contact, before queueing its activities; that contact leaves before the retry, which no
        # longer finds it among the account's members. A version's unfinished delivery shows (`applied_modstamp`);
        # an edit's does not, so a leaver holding its field's last edit queues its activities again.
        world = World()
        world.given_contacts(3, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1, Industry="Energy"))
        world.sync(account_version(2, minute=1, Industry="Banking"))
        edit, version = local_edit("Industry", "Local", minute=30), account_version(1, minute=30, Industry="Local")
        world.contacts.fail_writes_after = world.contacts.writes + 1
        with pytest.raises(RuntimeError, match="simulated crash"):
            world.fan_out.apply_local_edit(edit) if change == "edit" else world.fan_out.apply_account_change(version)
        world.contacts.fail_writes_after = None
        world.log_activities()
        [n] = [n for n in range(3) if world.contact(n).account_fields["Industry"] == "Local"]
        world.fan_out.apply_contact_change(
            contact_version(
                1_000_000 + n, account=1 if leaves == "deleted" else 2, minute=31, deleted=leaves == "deleted"
            )
        )
        world.fan_out.apply_local_edit(edit) if change == "edit" else world.fan_out.apply_account_change(version)
        world.log_activities()
        owed = local_activities(world, minute=30) if change == "edit" else account_activities(world, minute=30)
        assert owed == {contact_id(1_000_000 + m): ("Energy", "Local") for m in range(3)}

    def test_a_contact_deleted_before_an_edits_and_a_newer_versions_segments_gets_both_activities_in_order(self):
        # found by the model-based suite (CONTACTS_IN_SAME_WINDOW, shrunk): an edit in segments, then a version of
        # the same fetch window, then a contact deleted, all before any segment ran
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "Local", minute=30))
        world.fan_out.apply_account_change(account_version(1, minute=40, Industry="Retail"))
        leaver = contact_id(1_000_003)
        world.fan_out.apply_contact_change(contact_version(1_000_003, account=1, minute=41, deleted=True))
        world.run_queued_segments()
        world.log_activities()
        # then the leaver has the edit's activity and the version's, each from the value it held then
        assert local_activities(world, minute=30)[leaver] == ("Energy", "Local")
        assert account_activities(world, minute=40)[leaver] == ("Local", "Retail")
        assert len(local_activities(world, minute=30)) == len(account_activities(world, minute=40)) == 15

    def test_a_contact_leaving_before_a_version_and_an_edit_over_it_reached_it_takes_the_versions_own_value(self):
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        world.fan_out.apply_local_edit(local_edit("Industry", "Local", minute=30))  # the account holds "Local" now
        leaver = contact_id(1_000_003)
        world.fan_out.apply_contact_change(contact_version(1_000_003, account=None, minute=31))
        world.run_queued_segments()
        world.log_activities()
        assert account_activities(world, minute=2)[leaver] == ("Energy", "Retail")
        assert local_activities(world, minute=30)[leaver] == ("Retail", "Local")

    def test_a_contact_deleted_before_two_versions_segments_gets_both_versions_activities(self):
        # found by the model-based suite (CONTACTS_IN_SAME_WINDOW): a version in segments superseded by a newer one
        # (same fetch window) before any segment ran, then a contact deleted; the account item holds only the newer
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Energy"))
        leaver = contact_id(1_000_003)
        world.fan_out.apply_contact_change(contact_version(1_000_003, account=1, minute=4, deleted=True))
        world.run_queued_segments()
        world.log_activities()
        assert account_activities(world, minute=2)[leaver] == ("Energy", "Retail")
        assert account_activities(world, minute=3)[leaver] == ("Retail", "Energy")
        assert len(account_activities(world, minute=2)) == len(account_activities(world, minute=3)) == 15
        # and the superseded version is forgotten once the newer one is applied
        assert world.accounts.get(account_id(1)).superseded == ()

    def test_a_leave_redelivered_after_a_crash_queues_the_pending_changes_activities_again(self):
        # given a version in segments and a contact deleted before them, whose delivery died after its catch-up
        # write, while queueing the activities (the delete itself never written)
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        segments = take(world.changes)
        leave = contact_version(1_000_003, account=1, minute=3, deleted=True)
        queue = world.activity_queue.publish

        def dies(messages):
            raise RuntimeError("simulated crash (Lambda timeout)")

        world.activity_queue.publish = dies
        with pytest.raises(RuntimeError):
            world.fan_out.apply_contact_change(leave)
        world.activity_queue.publish = queue
        assert not world.contacts.items[contact_id(1_000_003)].is_deleted
        # when it is redelivered, then the segments
        world.fan_out.apply_contact_change(leave)
        for segment in segments:
            world.fan_out.apply(segment)
        world.log_activities()
        # then the leaver's activity was queued again from its outbox, once, under the version's key
        assert account_activities(world, minute=2)[contact_id(1_000_003)] == ("Energy", "Retail")
        assert len(account_activities(world, minute=2)) == 15

    def test_a_contact_leaving_before_two_edits_of_one_field_in_segments_gets_both_activities(self):
        # the field's mark used to keep its last edit only: the first edit's activity was lost for the leaver
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "First", minute=30))
        world.fan_out.apply_local_edit(local_edit("Industry", "Second", minute=31))
        leaver = contact_id(1_000_003)
        world.fan_out.apply_contact_change(contact_version(1_000_003, account=1, minute=32, deleted=True))
        world.run_queued_segments()
        world.log_activities()
        assert local_activities(world, minute=30)[leaver] == ("Energy", "First")
        assert local_activities(world, minute=31)[leaver] == ("First", "Second")
        assert len(local_activities(world, minute=30)) == len(local_activities(world, minute=31)) == 15

    def test_a_contact_leaving_after_two_edits_of_one_millisecond_reached_it_takes_the_first_one_back_never(self):
        # found by the model-based suite (SAME_MS_EDITS, once the mark kept its earlier edits): the catch-up wrote the
        # first edit again over the second, which the contact held (in one millisecond only the mark orders them)
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        for edit_id, value in (("e1", "First"), ("e2", "Second")):
            world.edit(LocalEdit(edit_id, contact_id(1_000_000), account_id(1), "Industry", value, stamp(30)))
        world.fan_out.apply_contact_change(contact_version(1_000_003, account=1, minute=31, deleted=True))
        world.log_activities()
        leaver = world.contacts.items[contact_id(1_000_003)]
        assert leaver.account_fields["Industry"] == "Second"
        assert sorted((a for a in world.activities_of(3) if a[0] == "Industry"), key=repr) == [
            ("Industry", "Energy", "First"),
            ("Industry", "First", "Second"),
            ("Industry", None, "Energy"),  # the first sync
        ]

    def test_a_contact_leaving_after_an_edit_over_a_superseded_version_was_followed_by_another_gets_it(self):
        # an edit of Industry over version 1 in segments, version 2 accepted behind it, then another edit of
        # Industry over version 2: the field's mark moved on to version 2, and the first edit was not known any more
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "First", minute=30))
        world.fan_out.apply_account_change(account_version(1, minute=40, Name="Renamed"))
        world.fan_out.apply_local_edit(local_edit("Industry", "Second", minute=41))
        leaver = contact_id(1_000_003)
        world.fan_out.apply_contact_change(contact_version(1_000_003, account=None, minute=42))
        world.run_queued_segments()
        world.log_activities()
        assert local_activities(world, minute=30)[leaver] == ("Energy", "First")
        assert account_activities(world, minute=40, field="Industry")[leaver] == ("First", "Energy")
        assert local_activities(world, minute=41)[leaver] == ("Energy", "Second")
        assert len(local_activities(world, minute=30)) == len(local_activities(world, minute=41)) == 15

    def test_a_contact_leaving_after_more_than_twenty_versions_were_superseded_in_segments_gets_every_one(self):
        # the account kept the 20 newest superseded versions: the oldest ones' activities were lost for the leaver
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        minutes = range(2, 30)  # 28 versions accepted before any of their segments ran
        for minute in minutes:
            report = world.fan_out.apply_account_change(account_version(1, minute=minute, Industry=f"I{minute}"))
            assert report.pending_dropped == 0
        leaver = contact_id(1_000_003)
        world.fan_out.apply_contact_change(contact_version(1_000_003, account=1, minute=31, deleted=True))
        world.run_queued_segments()
        world.log_activities()
        held = "Energy"
        for minute in minutes:
            assert account_activities(world, minute=minute)[leaver] == (held, f"I{minute}")
            assert len(account_activities(world, minute=minute)) == 15
            held = f"I{minute}"

    def test_what_the_account_cannot_keep_for_leavers_is_dropped_visibly_never_silently(self):
        # a budget too small for even one superseded version: the drop is reported (the handler logs it, naming
        # the account, and counts it in a metric), the versions themselves still reach every member
        world = World(segment_size=10, pending_changes_bytes=1)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        report = world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Banking"))
        assert report.pending_dropped == 1
        assert world.accounts.get(account_id(1)).superseded == ()
        world.run_queued_segments()
        world.log_activities()
        assert len(account_activities(world, minute=2)) == len(account_activities(world, minute=3)) == 15

    @pytest.mark.parametrize("leaves", ["deleted", "to another account"])
    def test_a_change_accepted_between_the_leavers_read_of_the_account_and_its_leave_is_taken_too(self, leaves):
        # two message groups at once: the account's edit is accepted (in segments) by another invocation right
        # after the leaving contact's catch-up read the account, before the contact's leave is written
        world = World(segment_size=10)
        world.given_contacts(15, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1))
        world.sync(account_version(2, minute=1))
        read_account = world.accounts.get
        armed = [True]

        def read_then_another_invocation_accepts_an_edit(account: str):
            state = read_account(account)
            if armed[0] and account == account_id(1):
                armed[0] = False
                world.fan_out.apply_local_edit(local_edit("Industry", "In between", minute=32))
            return state

        world.accounts.get = read_then_another_invocation_accepts_an_edit  # type: ignore[method-assign]
        leaver = contact_id(1_000_003)
        world.fan_out.apply_contact_change(
            contact_version(1_000_003, account=2 if leaves != "deleted" else 1, minute=33, deleted=leaves == "deleted")
        )
        assert not armed[0]
        world.run_queued_segments()
        world.log_activities()
        assert local_activities(world, minute=32)[leaver] == ("Energy", "In between")
        assert len(local_activities(world, minute=32)) == 15

    def test_an_edit_applied_between_a_versions_acceptance_and_its_segments_loses_neither_activity(self):
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        world.fan_out.apply_local_edit(local_edit("Name", "Local name"))  # queued behind the version's segments
        world.run_queued_segments()
        world.log_activities()
        assert len(account_activities(world, minute=2)) == 25
        assert len(local_activities(world, field="Name")) == 25

    def test_a_move_redelivered_after_a_crash_re_emits_its_activities_under_the_same_keys(self):
        world = World()
        world.given_contacts(1, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1, Name="Same", Industry="Energy"))
        world.sync(account_version(2, minute=1, Name="Same", Industry="Banking"))
        move = contact_version(1_000_000, account=2, minute=3)
        world.fan_out.apply_contact_change(move)
        world.activity_queue.messages.clear()  # died before its activities were queued
        report = world.fan_out.apply_contact_change(move)  # redelivered
        world.log_activities()
        assert report.outcome == "stale" and report.activities_queued == 1
        assert move_activities(world, contact_id(1_000_000)) == {f"{stamp(3)}#contact#Industry": ("Energy", "Banking")}


class TestMovesAndTheirActivities:
    """Issue 10, 3b: a move that changes a contact's account fields is a Change Data Value of origin contact."""

    def test_a_move_logs_each_account_field_it_changes_with_the_marketo_attributes(self, world):
        world.given_contacts(1, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1, Name="One", Industry="Energy"))
        world.sync(account_version(2, minute=1, Name="Two", Industry="Energy"))
        world.fan_out.apply_contact_change(contact_version(1_000_000, account=2, minute=3))
        world.log_activities()
        moved = contact_id(1_000_000)
        assert move_activities(world, moved) == {f"{stamp(3)}#contact#Name": ("One", "Two")}  # Industry: same
        activity = world.store.activities[(moved, f"{stamp(3)}#contact#Name")]
        assert (activity.account_id, activity.origin.source, activity.origin.reason) == (
            account_id(2),
            "salesforce",
            "Contact's account changed in Salesforce",
        )

    def test_a_new_contact_or_one_without_an_account_before_logs_nothing_on_joining(self, world):
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_contact_change(contact_version(7, account=None, minute=2))
        world.fan_out.apply_contact_change(contact_version(7, account=1, minute=3))
        world.fan_out.apply_contact_change(contact_version(8, account=1, minute=3))
        world.log_activities()
        assert world.contacts.items[contact_id(7)].account_fields["Name"] == "Account 1"
        assert world.store.activities == {}

    def test_a_move_into_an_account_above_the_threshold_is_synced_without_activity(self):
        world = World(threshold=2)
        world.given_contacts(1, account=1)
        world.given_contacts(3, account=2)
        world.sync(account_version(1, minute=1, Name="One"))
        world.sync(account_version(2, minute=1, Name="Two"))
        world.fan_out.apply_contact_change(contact_version(1_000_000, account=2, minute=3))
        world.log_activities()
        assert world.contacts.items[contact_id(1_000_000)].account_fields["Name"] == "Two"
        assert move_activities(world, contact_id(1_000_000)) == {}

    def test_a_contact_version_that_keeps_its_account_leaves_its_account_fields_to_the_fan_out(self, world):
        world.given_contacts(1)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "Local"))
        world.fan_out.apply_contact_change(contact_version(1_000_000, account=1, minute=5))
        contact = world.contact(0)
        assert (contact.account_fields["Industry"], contact.last_name) == ("Local", "Contact 1000000")


class TestADecisionIsTakenOnce:
    """Rule 2.2: a change's threshold decision and segment plan are fixed when it is first accepted."""

    def test_a_resumed_version_queues_no_second_set_of_segments(self):
        world = World(segment_size=10)
        world.given_contacts(25)
        version = account_version(1, minute=1)
        first = world.fan_out.apply_account_change(version)
        again = world.fan_out.apply_account_change(version)  # redelivered before its segments ran
        assert (first.segments_planned, again.segments_planned, again.outcome) == (3, 0, "resume")
        assert len(world.changes.messages) == 3
        world.run_queued_segments()
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(1)

    def test_a_version_killed_while_queueing_its_plan_queues_a_whole_new_one_that_completes(self):
        world = World(segment_size=10)
        world.given_contacts(25)
        version = account_version(1, minute=1, Industry="Retail")

        class DiesWhilePublishing(RecordingPublisher):
            def publish(self, messages):
                super().publish(messages[:1])
                raise RuntimeError("killed while queueing")

        queue = world.fan_out._changes = DiesWhilePublishing()
        with pytest.raises(RuntimeError):
            world.fan_out.apply_account_change(version)
        world.fan_out._changes = world.changes
        world.changes.messages[:0] = queue.messages  # the one queued before the kill
        report = world.fan_out.apply_account_change(version)
        assert report.segments_planned == 3
        world.run_queued_segments()
        world.log_activities()
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(1)
        assert len(account_activities(world, minute=1)) == 25

    @pytest.mark.parametrize("segment_size", [10_000, 500], ids=["one-invocation", "segmented"])
    def test_a_redelivered_edit_does_not_flip_from_suppressed_to_logged(self, segment_size):
        # given an edit of an account of 5001 contacts: suppressed, and killed half-way (in one invocation, or in
        # its first segment)
        world = World(segment_size=segment_size)
        world.given_contacts(5001)
        world.sync(account_version(1, minute=1))
        edit = local_edit("Industry", "Retail")
        world.contacts.fail_writes_after = world.contacts.writes + 4
        segments = []
        if segment_size == 500:
            world.fan_out.apply(LocalEditMessage(edit))
            segments = take(world.changes)
        with pytest.raises(RuntimeError):
            world.fan_out.apply(segments[0] if segments else LocalEditMessage(edit))
        world.contacts.fail_writes_after = None
        world.activity_queue.messages.clear()
        # when a contact leaves the account (5000 now) and the edit, or its segment, is delivered again
        world.fan_out.apply_contact_change(contact_version(1_000_000, account=1, minute=9, deleted=True))
        report = world.fan_out.apply(LocalEditMessage(edit))
        for segment in segments:
            world.fan_out.apply(segment)
        world.log_activities()
        # then the decision taken first holds: synced, not logged, one suppression record; no second plan
        assert report.activity_logging == "suppressed" and report.segments_planned == 0
        assert industries(world) == {"Retail"} and local_activities(world) == {}
        assert len(world.store.suppressions) == 2  # the version's and the edit's

    def test_a_redelivered_edit_does_not_flip_from_logged_to_suppressed(self):
        world = World()
        world.given_contacts(5000)
        world.sync(account_version(1, minute=1))
        edit = local_edit("Industry", "Retail")
        world.contacts.fail_writes_after = world.contacts.writes + 4
        with pytest.raises(RuntimeError):
            world.edit(edit)
        world.contacts.fail_writes_after = None
        world.activity_queue.messages.clear()
        world.fan_out.apply_contact_change(contact_version(9_999_999, account=1, minute=9))  # 5001 now
        report = world.edit(edit)
        assert report.activity_logging == "logged" and not report.suppressed
        assert len(local_activities(world)) == 5000

    def test_a_resumed_version_keeps_its_decision_when_the_count_crossed_the_threshold(self):
        world = World()
        world.given_contacts(5000)
        world.sync(account_version(1, minute=1))
        version = account_version(1, minute=2, Industry="Retail")
        world.contacts.fail_writes_after = world.contacts.writes + 4
        with pytest.raises(RuntimeError):
            world.fan_out.apply_account_change(version)
        world.contacts.fail_writes_after = None
        world.activity_queue.messages.clear()
        world.fan_out.apply_contact_change(contact_version(9_999_999, account=1, minute=3))  # 5001 now
        report = world.sync(version)
        assert (report.outcome, report.activity_logging) == ("resume", "logged")
        assert len(account_activities(world, minute=2)) == 5000
        assert world.store.suppressions == {}


class TestEveryChangeHasItsOwnKeys:
    """Rule 2.3: two edits of one field in the same millisecond are two activities."""

    @pytest.mark.parametrize("segment_size", [10_000, 2], ids=["one-invocation", "segmented"])
    def test_two_edits_of_one_field_in_the_same_millisecond_are_two_activities_per_contact(self, segment_size):
        world = World(segment_size=segment_size)
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        first = LocalEdit("edit-a", contact_id(1_000_000), account_id(1), "Industry", "First", stamp(30))
        second = LocalEdit("edit-b", contact_id(1_000_001), account_id(1), "Industry", "Second", stamp(30))
        world.edit(first)
        world.edit(second)
        assert industries(world) == {"Second"}
        for n in range(3):
            local = [(k, a.old_value, a.new_value) for (c, k), a in world.store.activities.items()
                     if c == contact_id(1_000_000 + n) and "#local#" in k]  # fmt: skip
            assert sorted(local) == [
                (f"{stamp(30)}#local#Industry#edit-a", "Energy", "First"),
                (f"{stamp(30)}#local#Industry#edit-b", "First", "Second"),
            ]

    @pytest.mark.parametrize("segment_size", [10_000, 2], ids=["one-invocation", "segmented"])
    @pytest.mark.parametrize("ids", [("edit-a", "edit-b"), ("edit-b", "edit-a")], ids=["ids-rising", "ids-falling"])
    def test_two_edits_in_one_millisecond_delivered_again_write_and_log_nothing_more(self, segment_size, ids):
        # Issue 10, 2.3: both edits applied, then their batch delivered again. The first is the field's earlier
        # edit (its mark says so, whatever the ids' order): superseded, it writes nothing and logs nothing; the
        # second is the same edit again: resumed, its activities re-emitted under their own keys, unchanged.
        world = World(segment_size=segment_size)
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        first = LocalEdit(ids[0], contact_id(1_000_000), account_id(1), "Industry", "First", stamp(30))
        second = LocalEdit(ids[1], contact_id(1_000_001), account_id(1), "Industry", "Second", stamp(30))
        world.edit(first)
        world.edit(second)
        activities = dict(world.store.activities)
        assert len([k for (_, k) in activities if "#local#" in k]) == 6  # two per contact

        assert world.edit(first).outcome == "superseded"
        world.edit(second)

        assert industries(world) == {"Second"}
        assert world.accounts.items[account_id(1)].fields["Industry"] == "Second"
        assert dict(world.store.activities) == activities

    def test_two_suppressed_edits_in_the_same_millisecond_leave_two_records(self):
        world = World(threshold=1)
        world.given_contacts(2)
        world.sync(account_version(1, minute=1))
        world.edit(LocalEdit("edit-a", contact_id(1_000_000), account_id(1), "Industry", "First", stamp(30)))
        world.edit(LocalEdit("edit-b", contact_id(1_000_000), account_id(1), "Industry", "Second", stamp(30)))
        local = sorted(k for (_, k), r in world.store.suppressions.items() if r.origin is ChangeOrigin.LOCAL)
        assert local == [
            f"{stamp(30)}#local#Industry#edit-a#suppressed",
            f"{stamp(30)}#local#Industry#edit-b#suppressed",
        ]


class TestIndexLagLosesNothing:
    """Rule 2.4: the account index is eventually consistent; a contact that joined just before a version of its
    account still ends with that version's fields."""

    @pytest.mark.parametrize(
        ("segment_size", "joiner"),
        [(10_000, 5), (10, 5), (10, 99)],
        ids=["at-once", "in-a-middle-segment", "after-the-last-key"],
    )
    def test_a_contact_that_joined_just_before_a_version_ends_with_its_fields(self, segment_size, joiner):
        # given an account, and a contact that joins it just before its next version: the index lags behind
        world = World(segment_size=segment_size)
        world.given_contacts(25)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1))
        world.contacts.index_lag = 1
        new_id = 1_000_000 + joiner
        world.contacts.add(FakeContact(contact_id(new_id)))
        world.fan_out.apply_contact_change(contact_version(new_id, account=1, minute=2))
        assert contact_id(new_id) not in [c.contact_id for c in world.contacts.members(account_id(1))]  # lagging
        # when the version is fanned out
        world.sync(account_version(1, minute=3, Industry="Retail"))
        # then the joiner holds it too, with its activity
        assert world.contacts.items[contact_id(new_id)].account_fields["Industry"] == "Retail"
        assert account_activities(world, minute=3)[contact_id(new_id)] == ("Energy", "Retail")

    @pytest.mark.parametrize(("members", "logged"), [(2, True), (3, False)], ids=["threshold", "threshold+1"])
    def test_the_threshold_decision_counts_a_joiner_the_index_does_not_show_yet(self, members, logged):
        # given an account at the threshold less one or at it (threshold 3), and one more contact that joins it
        # just before its next version, while the index does not show it (found by the model-based suite)
        world = World(threshold=3)
        world.given_contacts(members)
        world.sync(account_version(1, minute=1))
        world.contacts.index_lag = 1
        world.contacts.add(FakeContact(contact_id(7)))
        world.fan_out.apply_contact_change(contact_version(7, account=1, minute=2))
        # when the version is accepted
        report = world.sync(account_version(1, minute=3, Industry="Retail"))
        # then the joiner is counted: 3 contacts are logged, 4 are suppressed with one record
        assert report.activity_logging == ("logged" if logged else "suppressed")
        assert len(account_activities(world, minute=3)) == (members + 1 if logged else 0)
        assert len(world.store.suppressions) == (0 if logged else 1)

    def test_a_contact_that_joined_an_account_not_synced_yet_gets_its_first_version(self, world):
        world.contacts.index_lag = 1
        world.fan_out.apply_contact_change(contact_version(7, account=3, minute=1))
        world.sync(account_version(3, minute=2, Name="Three"))
        assert world.contacts.items[contact_id(7)].account_fields["Name"] == "Three"

    def test_a_joiner_the_index_shows_again_is_read_once_and_forgotten_after_the_lag(self):
        world = World()
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_contact_change(contact_version(7, account=1, minute=2))
        assert list(world.accounts.get(account_id(1)).recent_joiners) == [contact_id(7)]
        world.sync(account_version(1, minute=3, Industry="Retail"))
        assert world.contacts.contact_reads == 1  # the joiner's own Contact version; the index showed it
        world.clock[0] = "2026-11-27T12:05:00.000Z"  # past the lag
        world.fan_out.apply_contact_change(contact_version(8, account=1, minute=4))
        assert list(world.accounts.get(account_id(1)).recent_joiners) == [contact_id(8)]

    def test_the_joiners_of_one_message_cost_one_account_write_and_their_moves_one_publish(self):
        world = World(activity_queue=CountingPublisher())
        world.given_contacts(50, account=2)
        world.sync(account_version(1, minute=1, Name="One"))
        world.sync(account_version(2, minute=1, Name="Two"))
        world.activity_queue.calls.clear()
        joining = [contact_version(2_000_000 + n, account=1, minute=3) for n in range(50)]
        joining += [contact_version(500 + n, account=1, minute=3) for n in range(50)]  # new contacts
        report = world.fan_out.apply(ContactChangesMessage(tuple(joining)))
        assert report.contacts_written == 100 and report.activities_queued == 50
        assert world.accounts.joiner_writes == 1 and len(world.accounts.get(account_id(1)).recent_joiners) == 100
        assert world.activity_queue.calls == [1]

    def test_more_joiners_than_the_list_keeps_hold_the_change_until_the_index_caught_up(self):
        world = World(max_recent_joiners=2)
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        world.contacts.index_lag = 3
        for n in range(3):
            world.fan_out.apply_contact_change(contact_version(7 + n, account=1, minute=2))
        with pytest.raises(TransientError, match="joined"):
            world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Retail"))
        world.contacts.index_lag = 0
        world.clock[0] = "2026-11-27T12:05:00.000Z"
        world.sync(account_version(1, minute=3, Industry="Retail"))
        assert industries(world) == {"Retail"}


class TestSegmentBoundary:
    @pytest.mark.parametrize(("count", "segments"), [(10, 0), (11, 2)])
    def test_a_version_of_exactly_the_segment_size_is_written_at_once_and_one_more_in_segments(self, count, segments):
        world = World(segment_size=10)
        world.given_contacts(count)
        report = world.fan_out.apply_account_change(account_version(1, minute=1, Industry="Retail"))
        assert (report.segments_planned, report.contacts_written) == (segments, 0 if segments else count)
        world.run_queued_segments()
        assert industries(world) == {"Retail"}
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(1)


# --- issue 11, item 5: a large account's segments run side by side ---------------------------------------


def permutations_of(items: list, seed: int) -> list:
    """A reproducible shuffle: the order in which parallel consumers happen to finish."""
    import random

    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    return shuffled


class TestSegmentsInParallel:
    """Segments are in message groups of their own: Lambda runs them in any order, side by side. The order of the
    changes is kept by data (conditional contact writes, the account's stamps), the completion counted apart."""

    @pytest.mark.parametrize("seed", range(5))
    def test_segments_in_any_order_interleaved_with_a_newer_version_end_with_the_newer(self, seed):
        world = World(segment_size=10)
        world.given_contacts(45)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Older"))
        older = take(world.changes)
        world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Newer"))
        newer = take(world.changes)
        reports = [world.fan_out.apply(segment) for segment in permutations_of(older + newer, seed)]
        world.log_activities()
        assert industries(world) == {"Newer"}
        assert {world.contact(n).account_modstamp for n in range(45)} == {stamp(3)}
        # the newer version is complete exactly once, the older never (it was overtaken)
        assert [r.completed_version for r in reports if r.completed_version] == [stamp(3)]
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(3)
        assert set(account_activities(world, 3).values()) <= {("Energy", "Newer"), ("Older", "Newer")}
        assert len(account_activities(world, 3)) == 45

    @pytest.mark.parametrize("seed", range(3))
    def test_completion_happens_once_whatever_the_order_and_redeliveries(self, seed):
        world = World(segment_size=10)
        world.given_contacts(35)
        planned = world.fan_out.apply_account_change(account_version(1, minute=1, Industry="Retail"))
        segments = take(world.changes)
        redelivered = segments + segments[: 2 + seed]
        reports = [world.fan_out.apply(s) for s in permutations_of(redelivered, seed)]
        assert planned.completed_version is None
        assert [r.completed_version for r in reports if r.completed_version] == [stamp(1)]
        assert world.accounts.applied_marks == 1  # one account write for the completion, whatever the segments

    def test_segments_done_before_the_plan_is_recorded_are_completed_by_the_planner(self):
        world = World(segment_size=10)
        world.given_contacts(25)
        accounts = world.accounts
        record_plan = accounts.record_plan

        def run_segments_first(change, plan_id, total):
            # the segments, queued a moment earlier, all ran side by side before the plan was recorded
            for segment in take(world.changes):
                assert world.fan_out.apply(segment).completed_version is None
            record_plan(change, plan_id, total)

        accounts.record_plan = run_segments_first  # type: ignore[method-assign]
        planned = world.fan_out.apply_account_change(account_version(1, minute=1, Industry="Retail"))
        assert planned.completed_version == stamp(1)
        assert accounts.get(account_id(1)).applied_modstamp == stamp(1)
        assert industries(world) == {"Retail"}

    def test_a_stray_plans_segments_never_complete_the_version(self):
        world = World(segment_size=10)
        world.given_contacts(15)
        world.fan_out.apply_account_change(account_version(1, minute=1, Industry="Retail"))
        recorded = take(world.changes)
        stray = [
            ChangeSegmentMessage(
                s.change, "stray", s.index, s.total, s.after_contact_id, s.through_contact_id, s.activity_logging
            )
            for s in recorded
        ]
        assert [world.fan_out.apply(s).completed_version for s in stray] == [None, None]
        assert world.accounts.get(account_id(1)).applied_modstamp is None
        assert [world.fan_out.apply(s).completed_version for s in recorded] == [None, stamp(1)]

    @pytest.mark.parametrize("edit_first", [True, False])
    def test_an_edit_over_a_version_still_in_segments_lands_last_in_any_order(self, edit_first):
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail", Name="Renamed"))
        version_segments = take(world.changes)
        world.fan_out.apply_local_edit(local_edit("Industry", "Edited", minute=30))
        edit_segments = take(world.changes)
        assert edit_segments and all(s.change.edit is not None for s in edit_segments)
        first, then = (edit_segments, version_segments) if edit_first else (version_segments, edit_segments)
        for segment in first + then:
            world.fan_out.apply(segment)
        world.log_activities()
        # the edit (over version 2) wins on every contact, and version 2 still brought its other field
        assert industries(world) == {"Edited"}
        assert {world.contact(n).account_fields["Name"] for n in range(15)} == {"Renamed"}
        assert {world.contact(n).account_modstamp for n in range(15)} == {stamp(2)}
        assert len(local_activities(world)) == 15  # every contact logged the edit
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(2)

    def test_a_newer_version_still_overwrites_an_edit_over_an_older_one(self):
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        version_segments = take(world.changes)
        world.fan_out.apply_local_edit(local_edit("Industry", "Edited", minute=30))
        edit_segments = take(world.changes)
        for segment in edit_segments:
            world.fan_out.apply(segment)
        world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Salesforce wins"))
        newest = take(world.changes)
        for segment in version_segments + newest:
            world.fan_out.apply(segment)
        assert industries(world) == {"Salesforce wins"}  # SPEC R3


class TestOvertakingSegmentsCatchUp:
    """Issue 11, item 5 with issue 10, 2.1: segments in groups of their own run in any order, so a later change's
    segment may reach a contact before an earlier change's. It first writes onto the contact the earlier changes
    the account still knows and the contact lacks (as a leaver's catch-up does), each with its activities: every
    contact ends with every change's activities, in the order the changes were accepted, whatever the order the
    segments ran in."""

    CONTACTS = tuple(contact_id(1_000_000 + n) for n in range(25))

    @pytest.mark.parametrize("seed", range(6))
    def test_two_versions_segments_in_any_order_log_both_versions_on_every_contact(self, seed):
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Older"))
        older = take(world.changes)
        world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Newer"))
        newer = take(world.changes)
        reports = [world.fan_out.apply(segment) for segment in permutations_of(older + newer, seed)]
        world.log_activities()
        assert industries(world) == {"Newer"}
        assert account_activities(world, 2) == dict.fromkeys(self.CONTACTS, ("Energy", "Older"))
        assert account_activities(world, 3) == dict.fromkeys(self.CONTACTS, ("Older", "Newer"))
        assert [r.completed_version for r in reports if r.completed_version] == [stamp(3)]
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(3)

    @pytest.mark.parametrize("seed", range(6))
    def test_two_edits_of_one_field_in_any_order_log_both_edits_on_every_contact(self, seed):
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "First", minute=30))
        first = take(world.changes)
        world.fan_out.apply_local_edit(local_edit("Industry", "Second", minute=31))
        second = take(world.changes)
        for segment in permutations_of(first + second, seed):
            world.fan_out.apply(segment)
        world.log_activities()
        assert industries(world) == {"Second"}
        assert local_activities(world, 30) == dict.fromkeys(self.CONTACTS, ("Energy", "First"))
        assert local_activities(world, 31) == dict.fromkeys(self.CONTACTS, ("First", "Second"))

    @pytest.mark.parametrize("seed", range(6))
    def test_a_version_an_edit_over_it_and_a_newer_version_in_any_order_log_all_three(self, seed):
        world = World(segment_size=10)
        world.given_contacts(25)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Retail"))
        segments = take(world.changes)
        world.fan_out.apply_local_edit(local_edit("Industry", "Edited", minute=30))
        segments += take(world.changes)
        world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Banking"))
        segments += take(world.changes)
        for segment in permutations_of(segments, seed):
            world.fan_out.apply(segment)
        world.log_activities()
        assert industries(world) == {"Banking"}
        assert account_activities(world, 2) == dict.fromkeys(self.CONTACTS, ("Energy", "Retail"))
        assert local_activities(world, 30) == dict.fromkeys(self.CONTACTS, ("Retail", "Edited"))
        assert account_activities(world, 3) == dict.fromkeys(self.CONTACTS, ("Edited", "Banking"))
        assert world.accounts.get(account_id(1)).applied_modstamp == stamp(3)

    def test_an_overtaking_segment_killed_after_a_catch_up_write_loses_no_activity(self):
        # the later version's segment writes the earlier version onto a contact, then dies before queueing its
        # activities; redelivered, it queues them again (the contact holds it: its outbox names it)
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_account_change(account_version(1, minute=2, Industry="Older"))
        older = take(world.changes)
        world.fan_out.apply_account_change(account_version(1, minute=3, Industry="Newer"))
        newer = take(world.changes)
        world.contacts.fail_writes_after = world.contacts.writes + 1
        with pytest.raises(RuntimeError, match="simulated crash"):
            world.fan_out.apply(newer[0])
        world.contacts.fail_writes_after = None
        for segment in newer + older:
            world.fan_out.apply(segment)
        world.log_activities()
        assert account_activities(world, 2) == dict.fromkeys(self.CONTACTS[:15], ("Energy", "Older"))
        assert account_activities(world, 3) == dict.fromkeys(self.CONTACTS[:15], ("Older", "Newer"))

    def test_a_later_edits_segment_running_between_an_earlier_ones_read_and_write_wins(self):
        # two invocations at once: the first edit's segment has read its contacts; the second edit's segment runs
        # whole (it first writes the first edit, then its own); then the first one's writes come. They land only on
        # the contacts as read (their revision), so they fail, read again, find a later edit, and write nothing.
        world = World(segment_size=10)
        world.given_contacts(15)
        world.sync(account_version(1, minute=1))
        world.fan_out.apply_local_edit(local_edit("Industry", "First", minute=30))
        first = take(world.changes)
        world.fan_out.apply_local_edit(local_edit("Industry", "Second", minute=31))
        second = take(world.changes)
        write_change, overtaken = world.contacts.write_change, []

        def the_second_runs_first(contact_id, change, *args, **kwargs):
            if change.edit is not None and change.edit.edit_id == "edit-30" and not overtaken:
                overtaken.append(contact_id)
                for segment in second:
                    world.fan_out.apply(segment)
            return write_change(contact_id, change, *args, **kwargs)

        world.contacts.write_change = the_second_runs_first  # type: ignore[method-assign]
        for segment in first:
            world.fan_out.apply(segment)
        world.log_activities()
        assert overtaken and industries(world) == {"Second"}
        assert local_activities(world, 30) == dict.fromkeys(self.CONTACTS[:15], ("Energy", "First"))
        assert local_activities(world, 31) == dict.fromkeys(self.CONTACTS[:15], ("First", "Second"))
