"""The order of local edits (SPEC R3) among themselves and against the account's Salesforce versions.

An edit is queued in the account's FIFO group and applied in queue order, but a large account's edit is applied in
segments that run side by side with other changes' segments, and a dead-letter redrive comes late by nature. So each
edit is recorded on the stored account, per field, with the Salesforce version it was applied over (`EditMark`),
and every later step of the edit asks whether it is still the field's last edit over the account's newest version.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from account_sync.domain.changes import ChangeDecision, PendingEdit
from account_sync.domain.fields import FieldValue
from account_sync.domain.records import ChangeOrigin, ChangeRef, LocalEdit


@dataclass(frozen=True)
class EditMark:
    """The last local edit of one field applied to the stored account, the version it was applied over, and what
    was decided when it was (its activity decision, whether it changed the account's value, its segment plan
    once queued): a redelivery or a resume reuses them, never decides again."""

    edit_id: str
    edited_at: str
    base_modstamp: str
    decision: ChangeDecision | None = None  # None: a mark written before decisions were stored
    changed: bool = True  # the edit changed the stored account's value (a suppression record is owed)
    plan_id: str | None = None  # set once every segment of the edit is queued
    segments_total: int | None = None
    # (the field's value in the base version, the edit's value): what a contact that leaves the account before the
    # edit's segments (or its base version's) reached it takes on its way out. None: a mark written before they
    # were kept, or an edit over an edit whose mark had none.
    values: tuple[FieldValue, FieldValue] | None = None
    # The edits of the field applied before this one in its millisecond, in the order they were applied: edit ids
    # are random, so within a millisecond only the queue orders edits, and only the mark remembers that order.
    earlier_ids: tuple[str, ...] = ()
    # The edits of the field over the same version applied before this one and fanned out in segments (which may
    # still be queued), oldest first: a contact leaving the account before their segments reach it takes each of
    # them, not only the last (issue 10, 2.1). Bounded with the account's other pending changes (services/fan_out).
    earlier_edits: tuple[PendingEdit, ...] = ()
    # Which change of the account the edit was (`AccountState.changes_accepted` once it was accepted): a contact that
    # joined the account after it took its value and is owed nothing of it (`AccountChange.held_since_join`).
    accepted_as: int | None = None

    def pending(self, field: str, value: FieldValue) -> PendingEdit | None:
        """This edit as one a leaving contact may still be owed (`value`: its value, when the mark kept none),
        None when it was written at once: it reached every member when it was applied."""
        if self.decision is None or not (self.decision.segmented or self.plan_id is not None):
            return None
        own = self.values[1] if self.values is not None else value
        return PendingEdit(field, self.edit_id, self.edited_at, own, self.decision.activity_logging, self.accepted_as)

    def is_edit(self, edit: LocalEdit) -> bool:
        return self.edit_id == edit.edit_id and self.edited_at == edit.edited_at

    def edits_after(self, change: ChangeRef) -> frozenset[ChangeRef]:
        """The edits of the field applied after `change` in its millisecond (the mark's own, at least, unless it is
        `change`): a contact one of them wrote holds a later edit, which a late segment of `change` must keep."""
        order = (*self.earlier_ids, self.edit_id)
        if change.stamp == self.edited_at and change.change_id in order:
            later = order[order.index(change.change_id) + 1 :]
        else:
            later = (self.edit_id,)
        return frozenset(ChangeRef(ChangeOrigin.LOCAL, self.edited_at, edit_id) for edit_id in later)

    def supersedes(self, edit: LocalEdit) -> bool:
        """The field's last edit came after `edit`: edited later, or in the same millisecond and applied after it
        (`edit` is one of the edits the mark's millisecond applied before it: a redelivery of an older edit)."""
        if self.is_edit(edit):
            return False
        return self.edited_at > edit.edited_at or (
            self.edited_at == edit.edited_at and edit.edit_id in self.earlier_ids
        )


def earlier_edits(
    field: str, previous: EditMark | None, base_modstamp: str, stored_value: FieldValue
) -> tuple[PendingEdit, ...]:
    """What a new edit's mark keeps of the edits of its field before it (`previous`, the field's mark, with those it
    kept): those over the same version that went in segments, in the order they were applied. An edit over an
    older version is the superseded version's to keep (`SupersededVersion.edits`)."""
    if previous is None or previous.base_modstamp != base_modstamp:
        return ()
    own = previous.pending(field, stored_value)
    return (*previous.earlier_edits, own) if own is not None else previous.earlier_edits


def mark_of(
    edit: LocalEdit,
    previous: EditMark | None,
    base_modstamp: str,
    stored_value: FieldValue,
    decision: ChangeDecision,
    changed: bool,
    earlier: tuple[PendingEdit, ...] = (),
    accepted_as: int | None = None,
) -> EditMark:
    """The field's mark for `edit`, applied over `base_modstamp` where the stored account held `stored_value`: the
    base version's value is that, unless an earlier edit over the same version already replaced it (its mark
    keeps it). `earlier`: the edits before it that the mark keeps (`earlier_edits`, within the account's bound);
    `accepted_as`: which change of the account it is."""
    if previous is not None and previous.base_modstamp == base_modstamp:
        values = (previous.values[0], edit.value) if previous.values is not None else None
    else:
        values = (stored_value, edit.value)
    same_ms: tuple[str, ...] = ()
    if previous is not None and previous.edited_at == edit.edited_at and previous.edit_id != edit.edit_id:
        same_ms = (*previous.earlier_ids, previous.edit_id)
    return EditMark(
        edit.edit_id,
        edit.edited_at,
        base_modstamp,
        decision,
        changed,
        values=values,
        earlier_ids=same_ms,
        earlier_edits=earlier if previous is not None and previous.base_modstamp == base_modstamp else (),
        accepted_as=accepted_as,
    )


class EditVerdict(enum.Enum):
    APPLY = "apply"  # not applied yet, and nothing newer touched the field: apply it
    RESUME = "resume"  # already applied over the account's newest version (a redelivery): finish it
    SUPERSEDED = "superseded"  # a later edit of the field, or a newer Salesforce version, came since: do nothing


def judge_local_edit(edit: LocalEdit, mark: EditMark | None, system_modstamp: str) -> EditVerdict:
    """Where `edit` stands against the field's last edit (`mark`) and the account's newest version.

    The same edit again is resumed while the account still holds the version it was applied over; once a newer
    Salesforce version is accepted, that version has overwritten it (R3) and a late delivery must not bring it back.
    An edit made before the field's last edit is superseded by it (`edited_at` orders edits: both come from the
    API's clock; within one millisecond, the order they were first applied in, which the mark keeps). Edits are
    never compared with SystemModstamps (Salesforce's clock): an edit that was never applied is applied when it
    comes, in queue order.
    """
    if mark is None:
        return EditVerdict.APPLY
    if mark.is_edit(edit):
        return EditVerdict.RESUME if mark.base_modstamp == system_modstamp else EditVerdict.SUPERSEDED
    if mark.supersedes(edit):
        return EditVerdict.SUPERSEDED
    return EditVerdict.APPLY


def edits_since(marks: Mapping[str, EditMark], system_modstamp: str | None) -> list[str]:
    """The fields edited locally over the account's newest version (their contacts may not all hold it yet)."""
    return sorted(name for name, mark in marks.items() if mark.base_modstamp == system_modstamp)
