"""One contract for the store's ports, passed by the in-memory fakes and by the DynamoDB adapters (moto): the same
calls give the same outcomes, condition failures included, so that the fakes cannot drift from DynamoDB."""

from __future__ import annotations

import pytest
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import AccountChange, ChangeDecision, OutboxEntry, PendingEdit, SupersededVersion
from account_sync.domain.fields import FieldChange
from account_sync.domain.records import (
    AccountVersion,
    ActivitySuppression,
    ChangeDataValueActivity,
    ChangeOrigin,
    ChangeRef,
    ContactVersion,
    LocalEdit,
    SyncPath,
)
from account_sync.ports import Acceptance, AccountJoin, AccountUnchanged

from tests.model.wiring import Backend, DynamoBackend, FakeBackend

T1, T2, T3 = "2026-12-04T10:00:01.000Z", "2026-12-04T10:00:02.000Z", "2026-12-04T10:00:03.000Z"
LOGGED = ChangeDecision(ActivityLogging.LOGGED, 2, segmented=False)
SUPPRESSED = ChangeDecision(ActivityLogging.SUPPRESSED, 4, segmented=True)


@pytest.fixture(params=["fakes", pytest.param("dynamo", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fakes":
        return FakeBackend()
    from account_sync.settings import load_settings
    from account_sync.wiring import bind_store

    request.getfixturevalue("function_env")
    bind_store(load_settings())
    store = DynamoBackend(prefix="")
    request.addfinalizer(store.close)
    return store


def version(stamp: str, deleted: bool = False, **fields: object) -> AccountVersion:
    return AccountVersion("A1", stamp, deleted, {"Name": "n", **fields})  # type: ignore[arg-type]


def join(backend: Backend, contact_id: str, account_id: str | None, stamp: str = T1) -> bool:
    """A Contact version that makes the contact a member of `account_id`, taking the account's fields if synced."""
    contacts = backend.contacts
    expected = contacts.contact(contact_id)
    account = backend.accounts.get(account_id) if account_id else None
    taken = None
    if account is not None and account.system_modstamp is not None:
        taken = AccountJoin(dict(account.fields), account.system_modstamp, account.is_deleted)
    return contacts.apply_contact_version(ContactVersion(contact_id, stamp, False, account_id), expected, taken)


class TestAccounts:
    def test_a_version_is_accepted_once_with_its_decision_and_never_behind_a_newer_one(self, backend: Backend) -> None:
        accounts = backend.accounts
        assert accounts.get("A1") is None
        first = accounts.accept_version(version(T2), LOGGED, ["Name"])
        assert first.acceptance is Acceptance.NEW and first.previous_fields == {}
        assert accounts.accept_version(version(T2), SUPPRESSED, []).acceptance is Acceptance.RESUME
        assert accounts.accept_version(version(T1), LOGGED, []).acceptance is Acceptance.STALE
        assert accounts.get("A1").decision == LOGGED  # taken once: the redelivery's other decision is not stored
        accounts.mark_applied("A1", T2)
        assert accounts.accept_version(version(T2), LOGGED, []).acceptance is Acceptance.ALREADY_APPLIED
        newer = accounts.accept_version(version(T3, Name="m"), SUPPRESSED, ["Name"])
        assert newer.acceptance is Acceptance.NEW and newer.previous_fields == {"Name": "n"}
        stored = accounts.get("A1")
        assert (stored.system_modstamp, stored.applied_modstamp, stored.fields) == (T3, None, {"Name": "m"})
        assert (stored.decision, stored.changed_fields) == (SUPPRESSED, ("Name",))

    def test_segments_count_only_for_the_current_version_and_its_recorded_plan(self, backend: Backend) -> None:
        accounts = backend.accounts
        accounts.accept_version(version(T2), SUPPRESSED, ["Name"])
        change = AccountChange.of_version(version(T2))
        accounts.record_plan(AccountChange.of_version(version(T1)), "old", 9)  # not the newest: no effect
        accounts.record_plan(change, "plan1", 2)
        assert (accounts.get("A1").segments_plan, accounts.get("A1").segments_total) == ("plan1", 2)
        # progress is counted per plan, on the plan's own item: idempotent, whole once every position is done
        assert accounts.complete_segment("A1", "plan1", 0, 2) is False
        assert accounts.complete_segment("A1", "plan1", 0, 2) is False  # the same segment again
        assert accounts.plan_complete("A1", "plan1", 2) is False
        assert accounts.complete_segment("A1", "plan1", 1, 2) is True
        assert accounts.plan_complete("A1", "plan1", 2) is True
        # the applied mark lands once, only for the newest version and its recorded plan
        assert accounts.mark_applied("A1", T1) is False  # not the newest: no effect
        assert accounts.mark_applied("A1", T2, "other") is False  # not the recorded plan
        assert accounts.get("A1").applied_modstamp is None
        assert accounts.mark_applied("A1", T2, "plan1") is True
        assert accounts.mark_applied("A1", T2, "plan1") is False  # once
        assert accounts.get("A1").applied_modstamp == T2

    def test_an_unchanged_version_is_accepted_only_over_the_applied_one(self, backend: Backend) -> None:
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        stored = accounts.get("A1")
        assert accounts.accept_unchanged_version(version(T2), stored) is False  # not applied yet
        accounts.mark_applied("A1", T1)
        stored = accounts.get("A1")
        assert accounts.accept_unchanged_version(version(T2), stored) is True
        assert accounts.accept_unchanged_version(version(T3), stored) is False  # no longer as `stored` says
        now = accounts.get("A1")
        assert (now.system_modstamp, now.applied_modstamp) == (T2, T2)

    def test_a_local_edit_lands_only_on_the_account_as_it_was_read_with_its_decision(self, backend: Backend) -> None:
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        stored = accounts.get("A1")
        edit = LocalEdit("e1", "C1", "A1", "Name", "x", T2)
        assert accounts.apply_local_edit(edit, stored, SUPPRESSED, True) is True
        assert accounts.apply_local_edit(LocalEdit("e2", "C1", "A1", "Name", "y", T2), stored, LOGGED, True) is False
        now = accounts.get("A1")
        mark = now.local_edits["Name"]
        assert now.fields["Name"] == "x" and (mark.edit_id, mark.base_modstamp, mark.decision) == ("e1", T1, SUPPRESSED)
        change = AccountChange.of_edit(edit, T1)
        accounts.record_plan(change, "p1", 3)
        assert (
            accounts.get("A1").local_edits["Name"].plan_id,
            accounts.get("A1").local_edits["Name"].segments_total,
        ) == (
            "p1",
            3,
        )
        accounts.accept_version(version(T3), LOGGED, ["Name"])
        accounts.record_plan(change, "p2", 1)  # over an older version now: no effect
        assert accounts.get("A1").local_edits["Name"].plan_id == "p1"  # kept, naming the version it was over
        assert accounts.get("A1").local_edits["Name"].base_modstamp == T1

    @pytest.mark.parametrize("base_value", ["n", None, 7, ""])
    def test_an_edits_mark_keeps_the_base_versions_value_and_its_own_across_later_edits(
        self, backend: Backend, base_value: object
    ) -> None:
        # what a contact leaving the account before the edits' segments reached it takes (issue 10, 2.1)
        accounts = backend.accounts
        accounts.accept_version(version(T1, Name=base_value), LOGGED, ["Name"])
        assert accounts.apply_local_edit(
            LocalEdit("e1", "C1", "A1", "Name", None, T2), accounts.get("A1"), LOGGED, True
        )
        assert accounts.get("A1").local_edits["Name"].values == (base_value, None)
        assert accounts.apply_local_edit(LocalEdit("e2", "C1", "A1", "Name", 3, T3), accounts.get("A1"), LOGGED, True)
        assert accounts.get("A1").local_edits["Name"].values == (base_value, 3)  # still the version's own value
        accounts.record_plan(AccountChange.of_edit(LocalEdit("e2", "C1", "A1", "Name", 3, T3), T1), "p1", 2)
        assert accounts.get("A1").local_edits["Name"].values == (base_value, 3)

    def test_an_edits_mark_keeps_the_edits_its_millisecond_applied_before_it(self, backend: Backend) -> None:
        # issue 10, 2.3: within one millisecond only the order of application says which edit came last
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        for edit_id in ("e2", "e1", "e3"):
            edit = LocalEdit(edit_id, "C1", "A1", "Name", edit_id, T2)
            assert accounts.apply_local_edit(edit, accounts.get("A1"), LOGGED, True)
        assert accounts.get("A1").local_edits["Name"].earlier_ids == ("e2", "e1")
        accounts.record_plan(AccountChange.of_edit(LocalEdit("e3", "C1", "A1", "Name", "e3", T2), T1), "p1", 2)
        assert accounts.get("A1").local_edits["Name"].earlier_ids == ("e2", "e1")
        assert accounts.apply_local_edit(LocalEdit("e4", "C1", "A1", "Name", 4, T3), accounts.get("A1"), LOGGED, True)
        assert accounts.get("A1").local_edits["Name"].earlier_ids == ()  # a new millisecond

    def test_superseded_versions_are_kept_until_the_newest_is_applied(self, backend: Backend) -> None:
        accounts = backend.accounts
        # the path that brought it is kept with it (its activities name it, when a leaving contact takes it)
        older = SupersededVersion(version(T1, Name=None, Size=7), ActivityLogging.SUPPRESSED, SyncPath.PUSH)
        accounts.accept_version(version(T2), LOGGED, ["Name"], superseded=[older])
        assert accounts.get("A1").superseded == (older,)
        assert accounts.accept_version(version(T1), LOGGED, ["Name"]).state.superseded == (older,)  # stale: kept
        accounts.mark_applied("A1", T2)
        assert accounts.get("A1").superseded == ()
        accounts.accept_version(version(T3), LOGGED, ["Name"], superseded=[older, older])
        assert accounts.get("A1").superseded == (older, older)
        accounts.accept_version(version("2026-12-04T10:00:04.000Z"), LOGGED, ["Name"])
        assert accounts.get("A1").superseded == ()  # replaced whole by each version accepted

    def test_an_edits_mark_keeps_the_earlier_edits_of_its_field_in_the_order_applied(self, backend: Backend) -> None:
        # issue 10, 2.1: a contact leaving before two edits of one field in segments reached it takes both
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        first = PendingEdit("Name", "e1", T2, None, ActivityLogging.SUPPRESSED, accepted_as=2)
        second = PendingEdit("Name", "e2", T2, 7, ActivityLogging.LOGGED)  # one kept before counts were
        assert accounts.apply_local_edit(
            LocalEdit("e1", "C1", "A1", "Name", None, T2), accounts.get("A1"), SUPPRESSED, True
        )
        edit = LocalEdit("e2", "C1", "A1", "Name", 7, T2)
        assert accounts.apply_local_edit(edit, accounts.get("A1"), SUPPRESSED, True, (first,))
        third = LocalEdit("e3", "C1", "A1", "Name", "", T3)
        assert accounts.apply_local_edit(third, accounts.get("A1"), SUPPRESSED, True, (first, second))
        mark = accounts.get("A1").local_edits["Name"]
        assert (mark.edit_id, mark.earlier_edits, mark.values) == ("e3", (first, second), ("n", ""))
        accounts.record_plan(AccountChange.of_edit(third, T1), "p1", 2)
        assert accounts.get("A1").local_edits["Name"].earlier_edits == (first, second)
        # over a newer version, the field's mark starts again: the superseded version keeps the edits over it
        accounts.accept_version(version(T3), LOGGED, ["Name"])
        later = LocalEdit("e4", "C1", "A1", "Name", "x", "2026-12-04T10:00:04.000Z")
        assert accounts.apply_local_edit(later, accounts.get("A1"), LOGGED, True, (first,))
        assert accounts.get("A1").local_edits["Name"].earlier_edits == ()

    def test_superseded_versions_are_stored_as_diffs_and_read_back_whole_with_their_edits(
        self, backend: Backend
    ) -> None:
        # issue 10, 2.1: more than 20 superseded versions kept, each costing about what changed
        accounts = backend.accounts
        edit = PendingEdit("Size", "e1", T2, True, ActivityLogging.LOGGED, accepted_as=7)
        values = [
            {"Name": "n", "Size": 1},
            {"Name": "n", "Size": True},  # True is not 1: a diff keeps the type
            {"Name": None, "Size": True, "Extra": ""},
            {"Name": None},  # a field no longer there
            {"Name": 7.5, "Size": 0},
        ] * 6
        superseded = tuple(
            SupersededVersion(
                AccountVersion("A1", f"2026-12-04T09:{n:02d}:00.000Z", False, fields),  # type: ignore[arg-type]
                ActivityLogging.LOGGED if n % 2 else ActivityLogging.SUPPRESSED,
                SyncPath.PUSH if n % 3 else None,
                (edit,) if n % 4 == 0 else (),
            )
            for n, fields in enumerate(values)
        )
        accounts.accept_version(version(T2), LOGGED, ["Name"], superseded=superseded)
        assert accounts.get("A1").superseded == superseded
        assert len(superseded) == 30

    def test_changes_accepted_are_counted_on_the_account(self, backend: Backend) -> None:
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        assert accounts.get("A1").changes_accepted == 1
        assert accounts.apply_local_edit(LocalEdit("e1", "C1", "A1", "Name", "x", T2), accounts.get("A1"), LOGGED, True)
        assert accounts.get("A1").changes_accepted == 2
        accounts.accept_version(version(T1), LOGGED, ["Name"])  # stale
        accounts.mark_applied("A1", T1)
        accounts.note_joiners("A1", ["C1"], T2, {}, False)
        assert accounts.get("A1").changes_accepted == 2  # only an accepted change counts
        assert accounts.accept_version(version(T3), LOGGED, ["Name"]).state.changes_accepted == 3
        assert accounts.get("A1").changes_accepted == 3

    def test_an_edit_is_accepted_as_the_accounts_next_change_and_only_over_the_count_it_read(
        self, backend: Backend
    ) -> None:
        # finding F (issue 10): the edit's mark keeps which change of the account it was, so that a contact that
        # joined after it (and took its value with the account's fields) is never written by its segments
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        read = accounts.get("A1")
        assert accounts.apply_local_edit(LocalEdit("e1", "C1", "A1", "Industry", "x", T2), read, LOGGED, True)
        assert accounts.get("A1").local_edits["Industry"].accepted_as == 2
        # another field's edit was accepted since `read`: the count it would take is no longer its own
        assert accounts.apply_local_edit(LocalEdit("e2", "C1", "A1", "Name", "y", T2), read, LOGGED, True) is False
        assert accounts.apply_local_edit(LocalEdit("e2", "C1", "A1", "Name", "y", T2), accounts.get("A1"), LOGGED, True)
        assert accounts.get("A1").local_edits["Name"].accepted_as == 3
        assert accounts.get("A1").changes_accepted == 3

    def test_a_resyncs_refresh_counts_as_a_change_accepted(self, backend: Backend) -> None:
        # a contact that joined before the refresh took the old values: the resync must still reach it
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        assert accounts.refresh_fields("A1", T1, {"Name": "r"}) is None  # not applied yet
        accounts.mark_applied("A1", T1)
        assert accounts.refresh_fields("A1", T1, {"Name": "r"}) == 2
        assert (accounts.get("A1").fields, accounts.get("A1").changes_accepted) == ({"Name": "r"}, 2)
        assert accounts.refresh_fields("A1", T2, {"Name": "s"}) is None  # not the newest version
        assert accounts.get("A1").changes_accepted == 2

    def test_recent_joiners_are_added_forgotten_and_overflow(self, backend: Backend) -> None:
        accounts = backend.accounts
        accounts.accept_version(version(T1), LOGGED, [])
        accounts.note_joiners("A1", ["C1", "C2"], T2, {}, False)
        assert dict(accounts.get("A1").recent_joiners) == {"C1": T2, "C2": T2}
        accounts.note_joiners("A1", ["C3"], T3, {"C1": T2}, False)
        assert dict(accounts.get("A1").recent_joiners) == {"C2": T2, "C3": T3}
        accounts.note_joiners("A1", ["C4"], T3, {}, True)
        assert accounts.get("A1").joiners_overflow_at == T3 and "C4" not in accounts.get("A1").recent_joiners


class TestContacts:
    def test_membership_counts_and_ranges(self, backend: Backend) -> None:
        for n in range(5):
            assert join(backend, f"C{n}", "A1") is True
        join(backend, "C9", "A2")
        contacts = backend.contacts
        assert contacts.count_members("A1", limit=3) == 3
        assert contacts.count_members("A1", limit=10) == 5
        assert list(contacts.member_key_pages("A1", 2)) == [(None, "C1"), ("C1", "C3"), ("C3", "C4")]
        assert [c.contact_id for c in contacts.members("A1", "C1", "C3")] == ["C2", "C3"]
        assert join(backend, "C0", "A2", T1) is False  # the same contact version again: stale
        assert join(backend, "C0", "A2", T2) is True
        assert [c.contact_id for c in contacts.members("A1")] == ["C1", "C2", "C3", "C4"]
        assert contacts.contact("C0").account_id == "A2" and contacts.contact("nobody") is None

    def test_a_contact_version_lands_only_on_the_contact_as_it_was_read(self, backend: Backend) -> None:
        contacts = backend.contacts
        assert contacts.apply_contact_version(ContactVersion("C1", T1, False, "A1"), None, None) is True
        assert contacts.apply_contact_version(ContactVersion("C1", T2, False, "A1"), None, None) is False  # exists
        read = contacts.contact("C1")
        join(backend, "C1", "A2", T2)
        assert contacts.apply_contact_version(ContactVersion("C1", T3, False, "A1"), read, None) is False  # moved

    @pytest.mark.parametrize("leaves", ["deleted", "moved"])
    def test_a_leave_lands_only_while_its_account_accepted_no_change_since_it_was_read(
        self, backend: Backend, leaves: str
    ) -> None:
        # issue 10, 2.1: the window between a leaver's catch-up (its read of the account) and its leave is closed
        contacts, accounts = backend.contacts, backend.accounts
        join(backend, "C1", "A1")
        join(backend, "C2", "A1")

        def leave(contact_id: str, stamp: str, seen: int | None) -> bool:
            target = None if leaves == "deleted" else "A2"
            left = ContactVersion(contact_id, stamp, leaves == "deleted", "A1" if leaves == "deleted" else target)
            return contacts.apply_contact_version(
                left, contacts.contact(contact_id), None, AccountUnchanged("A1", seen)
            )

        assert leave("C1", T2, None) is True  # no account item yet, none accepted since
        accounts.accept_version(version(T1), LOGGED, ["Name"])
        assert leave("C2", T2, None) is False  # the account accepted a version since the read
        assert contacts.contact("C2").account_id == "A1" and not contacts.contact("C2").is_deleted
        assert leave("C2", T2, 1) is True
        join(backend, "C3", "A1", T2)
        accounts.apply_local_edit(LocalEdit("e1", "C1", "A1", "Name", "x", T2), accounts.get("A1"), LOGGED, True)
        assert leave("C3", T3, 1) is False  # an edit accepted since
        assert leave("C3", T3, 2) is True
        assert [c.contact_id for c in contacts.members("A1")] == []

    def test_a_joiner_keeps_the_count_of_changes_its_account_had_accepted_when_it_took_its_fields(
        self, backend: Backend
    ) -> None:
        # finding F (issue 10): what an account change accepted before the join owes the contact is nothing
        contacts = backend.contacts
        taken = AccountJoin({"Name": "n"}, T1, False, changes_accepted=4)
        assert contacts.apply_contact_version(ContactVersion("C1", T1, False, "A1"), None, taken)
        assert contacts.contact("C1").changes_at_join == 4
        stays = ContactVersion("C1", T2, False, "A1")
        assert contacts.apply_contact_version(stays, contacts.contact("C1"), None)
        assert contacts.contact("C1").changes_at_join == 4  # still the member that joined then
        contacts.write_change("C1", AccountChange.of_version(version(T2, Name="m")), [FieldChange("Name", "n", "m")])
        assert contacts.contact("C1").changes_at_join == 4
        uncounted = AccountJoin({"Name": "o"}, T1, False)  # an account item written before counts were
        assert contacts.apply_contact_version(ContactVersion("C1", T3, False, "A2"), contacts.contact("C1"), uncounted)
        assert contacts.contact("C1").changes_at_join is None
        again = AccountJoin({"Name": "n"}, T1, False, changes_accepted=5)
        moved = ContactVersion("C1", "2026-12-04T10:00:04.000Z", False, "A1")
        assert contacts.apply_contact_version(moved, contacts.contact("C1"), again)
        assert contacts.contact("C1").changes_at_join == 5
        alone = ContactVersion("C1", "2026-12-04T10:00:05.000Z", False, None)  # no account: nothing taken
        assert contacts.apply_contact_version(alone, contacts.contact("C1"), None)
        assert contacts.contact("C1").changes_at_join is None

    def test_a_fan_out_write_lands_only_on_the_contact_as_it_was_read(self, backend: Backend) -> None:
        # issue 11, item 5: segments of several changes run side by side; a write diffed against a contact that
        # another write changed since it was read would log the wrong old value, or miss a change
        join(backend, "C1", "A1")
        contacts = backend.contacts
        read = contacts.contact("C1")
        edit = AccountChange.of_edit(LocalEdit("e1", "C1", "A1", "Name", "x", T2), T1)
        assert contacts.write_change("C1", edit, [FieldChange("Name", None, "x")], as_read=read)
        again = contacts.contact("C1")
        assert again.revision != read.revision  # every write counts
        moved = ContactVersion("C1", T2, False, "A2")
        assert contacts.apply_contact_version(moved, read, None) is False  # a move diffed against what it held
        newer = AccountChange.of_version(version(T2, Name="m"))
        assert contacts.write_change("C1", newer, [FieldChange("Name", "x", "m")], as_read=read) is False
        assert contacts.contact("C1").account_fields == {"Name": "x"}
        assert contacts.write_change("C1", newer, [FieldChange("Name", "x", "m")], as_read=again) is True
        stays = ContactVersion("C1", T3, False, "A1")
        before = contacts.contact("C1")
        assert contacts.apply_contact_version(stays, before, None)
        assert contacts.contact("C1").revision != before.revision  # a Contact version counts too

    def test_a_version_read_before_a_local_edit_over_it_reached_the_contact_lands_only_once_read_again(
        self, backend: Backend
    ) -> None:
        # A write as read carries no condition on the outbox entries (2026-12-05): the revision alone stops a version
        # diffed before an edit over it wrote the field (their segments run side by side; the edit is newer, SPEC R3)
        join(backend, "C1", "A1")
        contacts = backend.contacts
        read = contacts.contact("C1")
        edit = AccountChange.of_edit(LocalEdit("e1", "C1", "A1", "Name", "x", T3), T2)
        assert contacts.write_change("C1", edit, [FieldChange("Name", None, "x")], as_read=read)
        v2 = AccountChange.of_version(version(T2, Name="m", Rating="Hot"))
        changes = [FieldChange("Name", None, "m"), FieldChange("Rating", None, "Hot")]
        assert contacts.write_change("C1", v2, changes, as_read=read) is False
        assert contacts.contact("C1").account_fields == {"Name": "x"}
        again = contacts.contact("C1")
        kept = {name: (again.account_fields.get(name), entry) for name, entry in v2.edited_over(again.outbox).items()}
        assert set(kept) == {"Name"}
        assert contacts.write_change("C1", v2, [FieldChange("Rating", None, "Hot")], kept, as_read=again)
        written = contacts.contact("C1")
        assert (written.account_fields, written.account_modstamp) == ({"Name": "x", "Rating": "Hot"}, T2)
        assert written.outbox["Name"].change == ChangeRef(ChangeOrigin.LOCAL, T3, "e1")

    def test_a_version_is_written_only_on_a_member_holding_an_older_one(self, backend: Backend) -> None:
        join(backend, "C1", "A1")
        contacts = backend.contacts
        v2 = AccountChange.of_version(version(T2, Name="m"))
        assert contacts.write_change("C1", v2, [FieldChange("Name", None, "m")]) is True
        assert contacts.write_change("C1", v2, []) is False  # the same version again
        assert contacts.write_change("C1", AccountChange.of_version(version(T1)), []) is False  # an older one
        snapshot = contacts.contact("C1")
        assert (snapshot.account_fields, snapshot.account_modstamp) == ({"Name": "m"}, T2)
        assert snapshot.outbox == {"Name": OutboxEntry(ChangeRef(ChangeOrigin.ACCOUNT, T2), None)}
        join(backend, "C1", "A2", T3)
        assert contacts.write_change("C1", AccountChange.of_version(version(T3)), []) is False  # moved away

    def test_a_local_edit_is_written_with_its_outbox_unless_a_newer_version_holds(self, backend: Backend) -> None:
        join(backend, "C1", "A1")
        contacts = backend.contacts
        contacts.write_change("C1", AccountChange.of_version(version(T2)), [])
        edit = LocalEdit("e1", "C1", "A1", "Name", "x", T3)
        changes = [FieldChange("Name", "n", "x")]
        assert contacts.write_change("C1", AccountChange.of_edit(edit, T1), changes) is False  # holds a newer one
        assert contacts.write_change("C1", AccountChange.of_edit(edit, T2), changes) is True
        snapshot = contacts.contact("C1")
        assert snapshot.account_fields["Name"] == "x"
        assert snapshot.outbox["Name"] == OutboxEntry(ChangeRef(ChangeOrigin.LOCAL, T3, "e1"), "n")


class TestActivities:
    def test_activities_and_suppressions_are_keyed(self, backend: Backend) -> None:
        activity = ChangeDataValueActivity("C1", "A1", "Name", "a", "b", ChangeOrigin.ACCOUNT, T1, T2)
        store = backend.activity_store
        assert store.put_activities([activity]) == 1
        assert store.put_activities([activity]) == 1
        assert len(backend.activities(["C1"])) == 1  # the same key again: one activity
        suppression = ActivitySuppression("A1", T1, 4, 3, ("Name",), T2)
        store.put_suppression(suppression)
        store.put_suppression(suppression)
        assert len(backend.suppressions(["A1"])) == 1

    def test_one_key_twice_in_one_call_is_one_activity(self, backend: Backend) -> None:
        # DynamoDB refuses a BatchWriteItem that names one key twice: the adapter writes each key once
        activity = ChangeDataValueActivity("C1", "A1", "Name", "a", "b", ChangeOrigin.ACCOUNT, T1, T2)
        other = ChangeDataValueActivity("C1", "A1", "Industry", None, "b", ChangeOrigin.ACCOUNT, T1, T2)
        assert backend.activity_store.put_activities([activity, other, activity]) == 2
        assert len(backend.activities(["C1"])) == 2
