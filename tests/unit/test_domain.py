from dataclasses import replace
from decimal import Decimal

import pytest
from account_sync.domain.activity_policy import ActivityLogging, activity_logging_for
from account_sync.domain.changes import (
    AccountChange,
    ChangeDecision,
    OutboxEntry,
    PendingEdit,
    SupersededVersion,
    superseded_size,
    version_diffs,
    versions_from_diffs,
    within_budget,
)
from account_sync.domain.fields import FieldChange, canonical_value, diff_fields, value_as_text
from account_sync.domain.local_edits import EditMark, EditVerdict, edits_since, judge_local_edit, mark_of
from account_sync.domain.records import AccountVersion, ChangeOrigin, ChangeRef, LocalEdit
from account_sync.domain.timestamps import InvalidTimestamp, normalize_timestamp, shift
from account_sync.domain.versions import VersionVerdict, compare_versions
from hypothesis import given
from hypothesis import strategies as st


class TestTimestamps:
    def test_salesforce_and_iso_forms_normalise_to_one_sortable_string(self):
        assert normalize_timestamp("2026-11-27T20:38:14.000+0000") == "2026-11-27T20:38:14.000Z"
        assert normalize_timestamp("2026-11-27T21:38:14.5+01:00") == "2026-11-27T20:38:14.500Z"
        assert normalize_timestamp("2026-11-27T20:38:14Z") == "2026-11-27T20:38:14.000Z"

    @pytest.mark.parametrize("bad", ["", "yesterday", "2026-11-27T20:38:14", 12])
    def test_a_datetime_without_zone_or_not_a_datetime_is_refused(self, bad):
        with pytest.raises(InvalidTimestamp):
            normalize_timestamp(bad)

    def test_shift_moves_back_by_the_lookback(self):
        assert shift("2026-11-27T20:00:00.000Z", -300) == "2026-11-27T19:55:00.000Z"


class TestVersionOrder:
    def test_newer_same_older(self):
        assert compare_versions("2026-01-01T00:00:00.001Z", "2026-01-01T00:00:00.000Z") is VersionVerdict.NEWER
        assert compare_versions("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z") is VersionVerdict.SAME
        assert compare_versions("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.001Z") is VersionVerdict.OLDER

    def test_anything_is_newer_than_nothing(self):
        assert compare_versions("2026-01-01T00:00:00.000Z", None) is VersionVerdict.NEWER


class TestActivityThreshold:
    @pytest.mark.parametrize(
        ("contacts", "expected"),
        [
            (0, ActivityLogging.LOGGED),
            (4999, ActivityLogging.LOGGED),
            (5000, ActivityLogging.LOGGED),
            (5001, ActivityLogging.SUPPRESSED),
            (100_000, ActivityLogging.SUPPRESSED),
        ],
    )
    def test_default_threshold_is_5000_inclusive(self, contacts, expected):
        assert activity_logging_for(contacts) is expected

    def test_threshold_is_configurable(self):
        assert activity_logging_for(3, threshold=3) is ActivityLogging.LOGGED
        assert activity_logging_for(4, threshold=3) is ActivityLogging.SUPPRESSED

    def test_negative_counts_are_a_bug(self):
        with pytest.raises(ValueError):
            activity_logging_for(-1)


class TestFieldDiff:
    def test_only_fields_whose_value_changed(self):
        changes = diff_fields(
            {"Name": "Acme", "Industry": "Energy"}, {"Name": "Acme", "Industry": "Retail"}, ["Name", "Industry"]
        )
        assert changes == [FieldChange("Industry", "Energy", "Retail")]

    def test_a_blank_that_stays_blank_is_no_change_but_a_new_value_is(self):
        assert diff_fields({}, {"Rating": None}, ["Rating"]) == []
        assert diff_fields({}, {"Rating": "Hot"}, ["Rating"]) == [FieldChange("Rating", None, "Hot")]

    def test_numbers_compare_as_numbers_whatever_their_json_or_dynamodb_form(self):
        assert diff_fields({"AnnualRevenue": Decimal("1000")}, {"AnnualRevenue": 1000.0}, ["AnnualRevenue"]) == []
        assert canonical_value(Decimal("2.5")) == 2.5

    def test_a_boolean_is_not_the_number_one(self):
        assert diff_fields({"Flag": 1}, {"Flag": True}, ["Flag"]) == [FieldChange("Flag", 1, True)]

    def test_fields_outside_the_synced_list_are_ignored(self):
        assert diff_fields({"Secret": "a"}, {"Secret": "b"}, ["Name"]) == []

    def test_values_are_shown_as_text_in_activities(self):
        assert [value_as_text(v) for v in (None, True, 12, 2.5, "x")] == [None, "true", "12", "2.5", "x"]


LOGGED = ChangeDecision(ActivityLogging.LOGGED, 1, segmented=False)


class TestLocalEditOrder:
    EDIT = LocalEdit(
        "edit-2", "003000000000000001", "001000000000000001", "Industry", "Retail", "2026-11-27T10:30:00.000Z"
    )

    @pytest.mark.parametrize(
        ("mark", "newest_version", "verdict"),
        [
            (None, "2026-11-27T10:01:00.000Z", EditVerdict.APPLY),  # the field's first edit
            (EditMark("edit-1", "2026-11-27T10:29:00.000Z", "2026-11-27T10:01:00.000Z"), None, EditVerdict.APPLY),
            # the same edit again, over the same version: a redelivery finishes it
            (EditMark("edit-2", "2026-11-27T10:30:00.000Z", "2026-11-27T10:01:00.000Z"), None, EditVerdict.RESUME),
            # the same edit, but a newer Salesforce version was accepted since: it overwrote the edit (R3)
            (
                EditMark("edit-2", "2026-11-27T10:30:00.000Z", "2026-11-27T10:01:00.000Z"),
                "2026-11-27T10:40:00.000Z",
                EditVerdict.SUPERSEDED,
            ),
            # a later edit of the field was applied already (a late delivery of this one)
            (EditMark("edit-3", "2026-11-27T10:31:00.000Z", "2026-11-27T10:01:00.000Z"), None, EditVerdict.SUPERSEDED),
            # the same edit id re-sent after the deduplication window is a new edit (a new edited_at)
            (EditMark("edit-2", "2026-11-27T10:20:00.000Z", "2026-11-27T10:01:00.000Z"), None, EditVerdict.APPLY),
        ],
    )
    def test_an_edit_against_the_fields_last_edit_and_the_newest_version(self, mark, newest_version, verdict):
        assert judge_local_edit(self.EDIT, mark, newest_version or "2026-11-27T10:01:00.000Z") is verdict

    @pytest.mark.parametrize("other_id", ["edit-1", "edit-3"], ids=["other-id-lower", "other-id-higher"])
    def test_in_one_millisecond_the_order_of_application_decides_never_the_edit_ids(self, other_id):
        # Issue 10, 2.3: edit ids are random, so two edits of one field in one millisecond are ordered by the
        # order the fan-out first applied them, which the field's mark keeps (`earlier_ids`).
        base = "2026-11-27T10:01:00.000Z"
        edit = self.EDIT  # edit-2
        other = replace(edit, edit_id=other_id, value="Energy")
        # `other` applied first, then `edit`: `edit` applies over it, and `other` delivered again is superseded
        first = mark_of(other, None, base, "Media", LOGGED, True)
        assert judge_local_edit(edit, first, base) is EditVerdict.APPLY
        second = mark_of(edit, first, base, "Energy", LOGGED, True)
        assert second.earlier_ids == (other_id,)
        assert second.values == ("Media", "Retail")  # the base version's value, as the first edit found it
        assert judge_local_edit(other, second, base) is EditVerdict.SUPERSEDED
        assert judge_local_edit(edit, second, base) is EditVerdict.RESUME  # the same edit again: finished
        # a third edit of the millisecond, whatever its id, is new: applied after both, which it supersedes
        third = replace(edit, edit_id="edit-0", value="Media")
        assert judge_local_edit(third, second, base) is EditVerdict.APPLY
        last = mark_of(third, second, base, "Retail", LOGGED, True)
        assert last.earlier_ids == (other_id, "edit-2")
        assert [judge_local_edit(e, last, base) for e in (other, edit, third)] == [
            EditVerdict.SUPERSEDED,
            EditVerdict.SUPERSEDED,
            EditVerdict.RESUME,
        ]
        # the next millisecond starts a new order: an edit of it remembers none of the earlier millisecond's
        later = replace(edit, edit_id="edit-9", edited_at="2026-11-27T10:30:00.001Z")
        newer = mark_of(later, last, base, "Media", LOGGED, True)
        assert newer.earlier_ids == ()
        assert judge_local_edit(other, newer, base) is EditVerdict.SUPERSEDED  # edited before it

    def test_a_late_segment_keeps_what_an_edit_applied_after_it_in_its_millisecond_wrote(self):
        # three edits of one field in one millisecond, applied in the order e2, e1, e3 (their ids do not order them)
        base, at = "2026-11-27T10:01:00.000Z", self.EDIT.edited_at
        mark = EditMark("e3", at, base, LOGGED, earlier_ids=("e2", "e1"))
        edits = {i: AccountChange.of_edit(replace(self.EDIT, edit_id=i), base) for i in ("e1", "e2", "e3")}

        def wrote(edit_id: str) -> dict[str, OutboxEntry]:
            return {"Industry": OutboxEntry(ChangeRef(ChangeOrigin.LOCAL, at, edit_id), "Media")}

        behind = {
            (late, holder): edits[late].behind(wrote(holder), mark.edits_after(edits[late].ref))
            for late in edits
            for holder in edits
        }
        assert {pair for pair, is_behind in behind.items() if is_behind} == {("e2", "e1"), ("e2", "e3"), ("e1", "e3")}
        # an edit of the millisecond the mark does not know (not applied yet) is behind the mark's edit only
        unknown = AccountChange.of_edit(replace(self.EDIT, edit_id="e0"), base)
        assert mark.edits_after(unknown.ref) == {edits["e3"].ref}
        # the same id in another millisecond is another edit (an Idempotency-Key re-sent after a day)
        other_ms = AccountChange.of_edit(replace(self.EDIT, edit_id="e2", edited_at="2026-11-27T10:29:00.000Z"), base)
        assert mark.edits_after(other_ms.ref) == {edits["e3"].ref}
        assert other_ms.behind(wrote("e1"), mark.edits_after(other_ms.ref))  # edited later, whatever the mark says

    def test_the_edits_over_the_newest_version_are_those_whose_fan_out_may_be_on_its_way(self):
        marks = {
            "Industry": EditMark("edit-1", "2026-11-27T10:29:00.000Z", "2026-11-27T10:01:00.000Z"),
            "Name": EditMark("edit-0", "2026-11-27T09:00:00.000Z", "2026-11-27T08:00:00.000Z"),
        }
        assert edits_since(marks, "2026-11-27T10:01:00.000Z") == ["Industry"]
        assert edits_since(marks, "2026-11-27T10:40:00.000Z") == []


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "a", "b"]))
_FIELDS = st.dictionaries(st.sampled_from(["Name", "Industry", "Size"]), _VALUES, max_size=3)


@st.composite
def _superseded_lists(draw: st.DrawFn) -> list[SupersededVersion]:
    versions = draw(st.lists(_FIELDS, max_size=8))
    return [
        SupersededVersion(
            AccountVersion("A1", f"2026-12-04T10:00:{n:02d}.000Z", False, fields),  # type: ignore[arg-type]
            ActivityLogging.LOGGED,
            edits=tuple(
                PendingEdit("Name", f"e{n}{k}", f"2026-12-04T10:00:{n:02d}.500Z", value, ActivityLogging.LOGGED)
                for k, value in enumerate(draw(st.lists(_VALUES, max_size=2)))
            ),
        )
        for n, fields in enumerate(versions)
    ]


class TestHeldSinceJoin:
    """Finding F (issue 10): a change the account accepted before a contact joined it is held by the contact (the
    join took the account's fields), never owed to it."""

    EDIT = LocalEdit("e1", "C1", "A1", "Name", "b", "2026-11-27T10:30:00.000Z")

    @given(st.integers(1, 10**9), st.integers(0, 10**9))
    def test_held_exactly_when_the_join_counted_the_change(self, accepted_as: int, at_join: int) -> None:
        change = AccountChange.of_edit(self.EDIT, "2026-11-27T10:00:00.000Z", accepted_as)
        assert change.held_since_join(at_join) is (at_join >= accepted_as)

    @pytest.mark.parametrize(("accepted_as", "at_join"), [(None, 5), (5, None), (None, None)])
    def test_an_unknown_count_on_either_side_holds_nothing(self, accepted_as: int | None, at_join: int | None) -> None:
        change = AccountChange.of_edit(self.EDIT, "2026-11-27T10:00:00.000Z", accepted_as)
        assert change.held_since_join(at_join) is False

    def test_a_pending_edit_and_a_mark_hand_their_count_to_the_change(self) -> None:
        pending = PendingEdit("Name", "e1", self.EDIT.edited_at, "b", ActivityLogging.LOGGED, accepted_as=4)
        assert pending.as_change("A1", "2026-11-27T10:00:00.000Z")[0].accepted_as == 4
        mark = EditMark("e1", self.EDIT.edited_at, "T0", ChangeDecision(ActivityLogging.LOGGED, 1, True), accepted_as=4)
        assert mark.pending("Name", "b") == pending


class TestPendingChangesForLeavers:
    """Issue 10, 2.1: what the account item keeps for contacts that leave before the segments reach them."""

    @given(_superseded_lists())
    def test_diffs_give_back_every_version_whole(self, superseded):
        fields = versions_from_diffs(version_diffs(superseded))
        assert [{n: (type(v), v) for n, v in f.items()} for f in fields] == [
            {n: (type(v), v) for n, v in s.version.fields.items()} for s in superseded
        ]

    @given(_superseded_lists(), st.integers(0, 2000))
    def test_the_newest_that_fit_are_kept_and_only_as_many_of_the_oldest_dropped_as_the_bound_needs(
        self, superseded, budget
    ):
        kept, dropped = within_budget(superseded, budget)
        assert kept == tuple(superseded[dropped:])  # the newest, in order
        assert not kept or superseded_size(kept) <= budget
        if dropped:  # one more kept would not fit
            assert superseded_size(superseded[dropped - 1 :]) > budget
