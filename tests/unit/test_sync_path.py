"""Issue 13: the activity's path (push, fetch, sweep, resync, api) shows which path applied each change. It is in no
key, deduplication id or decision: the same version by two paths is one change with one activity per contact per
field, and the path that applied it first is the one recorded, whichever delivery finishes or repeats it."""

from __future__ import annotations

import itertools

import pytest
from account_sync.contracts import (
    AccountChangeMessage,
    ActivityBatchMessage,
    ContactChangesMessage,
    ContactFieldChange,
    MalformedMessage,
    parse_activity_batch,
    parse_change_message,
)
from account_sync.domain.records import ChangeOrigin, SyncPath

from tests.unit.factories import account_version, contact_id, contact_version, stamp
from tests.unit.test_fan_out import World, local_edit

PATHS = [*SyncPath, None]


def deliver(world: World, message) -> None:
    """A message through its body, as the queue carries it, then its segments and its activities."""
    world.fan_out.apply(parse_change_message(message.to_body()))
    world.run_queued_segments()
    world.log_activities()


def paths_of(
    world: World, origin: ChangeOrigin = ChangeOrigin.ACCOUNT, minute: int | None = None
) -> dict[str, SyncPath | None]:
    """Each activity of `origin` (of the change stamped at `minute`), by contact and key: the path it names."""
    return {
        f"{c}|{key}": a.path
        for (c, key), a in world.store.activities.items()
        if a.origin is origin and (minute is None or a.system_modstamp == stamp(minute))
    }


class TestThePathIsInNoIdentity:
    @pytest.mark.parametrize("path", PATHS)
    def test_every_message_carries_it_and_no_deduplication_id_or_group_names_it(self, path):
        version = account_version(1, minute=2, Industry="Retail")
        contacts = (contact_version(1, minute=3), contact_version(2, minute=3))
        for plain, carried in (
            (AccountChangeMessage(version), AccountChangeMessage(version, path=path)),
            (ContactChangesMessage(contacts), ContactChangesMessage(contacts, path)),
        ):
            assert (carried.deduplication_id, carried.group_id) == (plain.deduplication_id, plain.group_id)
            assert parse_change_message(carried.to_body()).path == path  # type: ignore[union-attr]
        changes = (ContactFieldChange(contact_id(1), "Name", "Old", "New"),)
        batch = ActivityBatchMessage("001000000000000001", ChangeOrigin.ACCOUNT, stamp(2), changes, path=path)
        assert parse_activity_batch(batch.to_body()).path == path

    def test_an_unknown_path_is_a_malformed_message(self):
        body = (
            AccountChangeMessage(account_version(1, minute=2)).to_body().replace('"schema":1', '"schema":1,"path":"x"')
        )
        with pytest.raises(MalformedMessage, match="unknown path"):
            parse_change_message(body)

    def test_a_message_queued_before_paths_were_has_none(self):
        assert '"path"' not in AccountChangeMessage(account_version(1, minute=2)).to_body()
        assert parse_change_message(AccountChangeMessage(account_version(1, minute=2)).to_body()).path is None  # type: ignore[union-attr]


class TestTheFirstPathIsRecorded:
    @pytest.mark.parametrize(
        ("first", "second"), list(itertools.permutations([SyncPath.PUSH, SyncPath.FETCH, SyncPath.SWEEP], 2))
    )
    @pytest.mark.parametrize("segment_size", [10_000, 2])
    def test_one_version_by_two_paths_is_one_activity_per_contact_per_field_named_by_the_first(
        self, first, second, segment_size
    ):
        world = World(segment_size=segment_size)
        world.given_contacts(5)
        world.sync(account_version(1, minute=1))
        version = account_version(1, minute=2, Industry="Retail", Name="Renamed")
        deliver(world, AccountChangeMessage(version, path=first))
        once = paths_of(world, minute=2)
        deliver(world, AccountChangeMessage(version, path=second))
        assert paths_of(world, minute=2) == once
        assert len(once) == 5 * 2 and set(once.values()) == {first}

    def test_a_version_that_died_half_way_by_push_and_is_finished_by_the_poll_is_pushs_everywhere(self):
        world = World()
        world.given_contacts(10)
        world.sync(account_version(1, minute=1))
        version = account_version(1, minute=2, Industry="Retail")
        world.contacts.fail_writes_after = world.contacts.account_writes + 4
        with pytest.raises(RuntimeError):
            world.fan_out.apply(AccountChangeMessage(version, path=SyncPath.PUSH))
        world.activity_queue.messages.clear()  # the crash lost what had not been sent
        world.contacts.fail_writes_after = None
        deliver(world, AccountChangeMessage(version, path=SyncPath.FETCH))
        industry = {key: path for key, path in paths_of(world).items() if key.endswith(f"{stamp(2)}#account#Industry")}
        assert len(industry) == 10 and set(industry.values()) == {SyncPath.PUSH}

    @pytest.mark.parametrize(("first", "second"), [(SyncPath.PUSH, SyncPath.FETCH), (SyncPath.SWEEP, SyncPath.PUSH)])
    def test_a_move_read_again_by_the_other_path_keeps_the_first_paths_activity(self, first, second):
        world = World()
        world.given_contacts(1, account=1)
        world.given_contacts(1, account=2)
        world.sync(account_version(1, minute=1, Industry="Energy"))
        world.sync(account_version(2, minute=1, Industry="Banking"))
        move = (contact_version(1_000_000, account=2, minute=3),)
        deliver(world, ContactChangesMessage(move, first))
        deliver(world, ContactChangesMessage(move, second))  # the same Contact version, read by the other path
        moved = paths_of(world, ChangeOrigin.CONTACT)
        assert len(moved) == 2 and set(moved.values()) == {first}  # Name and Industry changed by the move

    def test_a_local_edit_is_the_apis_and_a_resync_the_resyncs(self):
        world = World(segment_size=2)
        world.given_contacts(5)
        world.sync(account_version(1, minute=1))
        world.edit(local_edit("Industry", "Local"))
        assert set(paths_of(world, ChangeOrigin.LOCAL).values()) == {SyncPath.API}
        world.contacts.items[contact_id(1_000_000)].account_fields["Name"] = "Drifted"  # behind the store's back
        deliver(world, AccountChangeMessage(account_version(1, minute=1), "resync1", SyncPath.RESYNC))
        assert set(paths_of(world, ChangeOrigin.RESYNC).values()) == {SyncPath.RESYNC}

    def test_a_suppressed_change_names_its_path_on_its_record(self):
        world = World(threshold=2)
        world.given_contacts(3)
        world.sync(account_version(1, minute=1))
        deliver(world, AccountChangeMessage(account_version(1, minute=2, Industry="Retail"), path=SyncPath.PUSH))
        (suppression,) = [s for s in world.store.suppressions.values() if s.system_modstamp == stamp(2)]
        assert suppression.path is SyncPath.PUSH
