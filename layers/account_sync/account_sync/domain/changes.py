"""An account change: a Salesforce version of the account, or a local edit of one of its fields (SPEC R2, R3).

Both are carried out the same way (services/fan_out.py): the stored account decides once (newer or not, logged or
suppressed, at once or in segments), the change is diffed against each contact of the account and written onto it
in planned key ranges, and each contact write keeps, per field, the change that wrote it and the value before it
(`OutboxEntry`), so that a redelivery re-emits the same activities, under the same keys, instead of losing them.
What differs between the two kinds is said here: which fields a change writes, and which contact it must not
overwrite.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from account_sync.domain.activity_policy import ActivityLogging, activity_logging_for
from account_sync.domain.fields import FieldValue
from account_sync.domain.records import AccountVersion, ChangeOrigin, ChangeRef, LocalEdit, SyncPath


@dataclass(frozen=True)
class OutboxEntry:
    """On a contact, for one account field: the change that wrote its value, and the value before it. A local
    edit's entry also names the account version it was applied over (`base`): that version's fan-out, whose
    segments may reach the contact after the edit's (they run side by side), must not overwrite the field."""

    change: ChangeRef
    old: FieldValue
    base: str | None = field(default=None, compare=False)
    # The path that applied the change here: a later delivery of the same change by another path re-emits the
    # activities with this one (SyncPath: the first path is recorded).
    path: SyncPath | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ChangeDecision:
    """Taken once, when a change is first accepted, and stored on the account: every redelivery, resume and
    segment of the change reuses it, whatever the account's contacts have become since (issue 10, rule 2)."""

    activity_logging: ActivityLogging
    contacts_counted: int  # capped at threshold + 1
    segmented: bool

    @classmethod
    def from_count(
        cls, counted: int, threshold: int, segment_size: int, force_segments: bool = False
    ) -> ChangeDecision:
        """Exactly `threshold` contacts: logged; one more: suppressed. More than `segment_size`: in segments."""
        return cls(
            activity_logging_for(counted, threshold),
            min(counted, threshold + 1),
            force_segments or counted > segment_size,
        )


@dataclass(frozen=True)
class PendingEdit:
    """A local edit whose segments may still be queued, as a contact leaving the account before they reach it must
    take it (issue 10, 2.1): its id and time (its activities' keys), its field and value, and its decision."""

    field: str
    edit_id: str
    edited_at: str
    value: FieldValue
    activity_logging: ActivityLogging
    accepted_as: int | None = None  # which change of the account it was (`AccountChange.accepted_as`)

    def as_change(self, account_id: str, base_modstamp: str) -> tuple[AccountChange, ChangeDecision]:
        edit = LocalEdit(self.edit_id, "", account_id, self.field, self.value, self.edited_at)
        change = AccountChange.of_edit(edit, base_modstamp, self.accepted_as)
        return change, ChangeDecision(self.activity_logging, 0, False)


@dataclass(frozen=True)
class SupersededVersion:
    """A version of the account that a newer one superseded while its segments, or those of edits over it, may still
    be queued: its own values (before any local edit over it), its decision, and the edits over it in the order
    they were applied, kept on the account until the newer version is applied (each of its segments took them onto
    its contacts first, where they lacked them), so that a contact leaving the account meanwhile, or a later
    change's segment overtaking theirs, takes them with their activities (issue 10, 2.1)."""

    version: AccountVersion
    activity_logging: ActivityLogging
    path: SyncPath | None = None  # the path that brought it first: its activities name it
    edits: tuple[PendingEdit, ...] = ()


@dataclass(frozen=True)
class VersionDiff:
    """How a superseded version is stored: the fields that differ from the version kept before it (all of them for
    the first), and those it lacks. Successive versions of an account differ in a few fields, so a list of them
    costs about what changed, not a whole account per version."""

    changed: Mapping[str, FieldValue]
    removed: tuple[str, ...] = ()


def version_diffs(superseded: Sequence[SupersededVersion]) -> list[VersionDiff]:
    """Each superseded version as its difference from the one before it (the first one whole)."""
    diffs: list[VersionDiff] = []
    before: Mapping[str, FieldValue] | None = None
    for entry in superseded:
        fields = entry.version.fields
        if before is None:
            diffs.append(VersionDiff(dict(fields)))
        else:
            changed = {
                name: value for name, value in fields.items() if name not in before or not _same(before[name], value)
            }
            diffs.append(VersionDiff(changed, tuple(sorted(name for name in before if name not in fields))))
        before = fields
    return diffs


def versions_from_diffs(diffs: Sequence[VersionDiff]) -> list[dict[str, FieldValue]]:
    """The fields of each version back from its diff (`version_diffs` undone)."""
    fields: dict[str, FieldValue] = {}
    out: list[dict[str, FieldValue]] = []
    for diff in diffs:
        fields = {name: value for name, value in fields.items() if name not in diff.removed}
        fields.update(diff.changed)
        out.append(dict(fields))
    return out


def _same(a: FieldValue, b: FieldValue) -> bool:
    return type(a) is type(b) and a == b  # True is not 1: a diff must keep a value's type


_ENTRY_OVERHEAD = 96  # a list element's map: its stamp, flags and attribute names, as DynamoDB counts them


def _value_size(value: FieldValue) -> int:
    return len(str(value).encode()) + 1


def pending_edit_size(edit: PendingEdit) -> int:
    size = _ENTRY_OVERHEAD + len(edit.field) + len(edit.edit_id) + len(edit.edited_at) + _value_size(edit.value)
    return size + (16 if edit.accepted_as is not None else 0)  # its name and a number


def _entry_size(entry: SupersededVersion, diff: VersionDiff) -> int:
    size = _ENTRY_OVERHEAD + len(entry.version.system_modstamp)
    size += sum(len(name) + _value_size(value) for name, value in diff.changed.items())
    size += sum(len(name) + 1 for name in diff.removed)
    return size + sum(pending_edit_size(edit) for edit in entry.edits)


def superseded_size(superseded: Sequence[SupersededVersion]) -> int:
    """An upper estimate of the bytes the list takes on the account item, stored as diffs (`version_diffs`)."""
    return sum(_entry_size(entry, diff) for entry, diff in zip(superseded, version_diffs(superseded), strict=True))


def within_budget(superseded: Sequence[SupersededVersion], budget: int) -> tuple[tuple[SupersededVersion, ...], int]:
    """The newest superseded versions that fit `budget` bytes, and how many of the oldest did not (dropped: a contact
    leaving before their segments ran would miss them, so the caller makes it seen). One pass: dropping the oldest
    makes the next one the first, stored whole."""
    entries = tuple(superseded)
    sizes = [_entry_size(entry, diff) for entry, diff in zip(entries, version_diffs(entries), strict=True)]
    total, start = sum(sizes), 0
    while start < len(entries) and total > budget:
        total -= sizes[start]
        start += 1
        if start < len(entries):
            whole = _entry_size(entries[start], VersionDiff(dict(entries[start].version.fields)))
            total += whole - sizes[start]
            sizes[start] = whole
    return entries[start:], start


@dataclass(frozen=True)
class AccountChange:
    """A Salesforce version (`version`) or a local edit (`edit`, applied over the account's version
    `base_modstamp`). A version with a `resync_id` is an operator's resync of the version the account already
    applied: it is diffed again against every contact, even one that holds its stamp (a contact changed behind the
    store's back, a newly synced field), and what it writes is keyed and reasoned as the resync's. `path`: the path
    that applied it first (the account keeps it from the version's acceptance), shown on its activities only.
    `accepted_as`: which change of the account it was (the account's `changes_accepted` once it held the change's
    values): a contact that joined the account after it took those values with the account's fields, and is owed
    nothing of it (`held_since_join`). Known for an edit and a resync; a version needs none (its stamp tells)."""

    account_id: str
    version: AccountVersion | None = None
    edit: LocalEdit | None = None
    base_modstamp: str | None = None
    resync_id: str | None = None
    path: SyncPath | None = field(default=None, compare=False)
    accepted_as: int | None = field(default=None, compare=False)

    @classmethod
    def of_version(
        cls,
        version: AccountVersion,
        resync_id: str | None = None,
        path: SyncPath | None = None,
        accepted_as: int | None = None,
    ) -> AccountChange:
        return cls(version.account_id, version=version, resync_id=resync_id, path=path, accepted_as=accepted_as)

    @classmethod
    def of_edit(cls, edit: LocalEdit, base_modstamp: str, accepted_as: int | None = None) -> AccountChange:
        return cls(edit.account_id, edit=edit, base_modstamp=base_modstamp, path=SyncPath.API, accepted_as=accepted_as)

    def __post_init__(self) -> None:
        if (self.version is None) == (self.edit is None) or (self.edit is not None and not self.base_modstamp):
            raise ValueError("an account change is a version, or a local edit with the version it is over")
        if self.resync_id is not None and self.version is None:
            raise ValueError("only a version is resynced")

    @property
    def origin(self) -> ChangeOrigin:
        return ChangeOrigin.ACCOUNT if self.version is not None else ChangeOrigin.LOCAL

    @property
    def ref(self) -> ChangeRef:
        if self.version is not None and self.resync_id is not None:
            return ChangeRef(ChangeOrigin.RESYNC, self.version.system_modstamp, self.resync_id)
        if self.version is not None:
            return ChangeRef(ChangeOrigin.ACCOUNT, self.version.system_modstamp)
        assert self.edit is not None
        return ChangeRef(ChangeOrigin.LOCAL, self.edit.edited_at, self.edit.edit_id)

    @property
    def stamp(self) -> str:
        return self.ref.stamp

    @property
    def is_deleted(self) -> bool:
        return self.version is not None and self.version.is_deleted

    @property
    def rewrites_own_stamp(self) -> bool:
        """The contact write's condition: a version writes a contact at an older version only; an edit, or a resync,
        also one at the version it is over (never one at a newer version)."""
        return self.edit is not None or self.resync_id is not None

    @property
    def guard_modstamp(self) -> str:
        """The account version the change is: a contact holding a newer one is never written by it."""
        if self.version is not None:
            return self.version.system_modstamp
        assert self.base_modstamp is not None
        return self.base_modstamp

    def fields(self, synced_fields: Sequence[str]) -> tuple[str, ...]:
        """A version writes every synced field (SPEC R3: the Salesforce values overwrite all of them), an edit one."""
        if self.edit is not None:
            return (self.edit.field,)
        return tuple(synced_fields)

    @property
    def values(self) -> Mapping[str, FieldValue]:
        if self.version is not None:
            return self.version.fields
        assert self.edit is not None
        return {self.edit.field: self.edit.value}

    def overtaken_on(self, contact_modstamp: str | None) -> bool:
        """The contact holds a newer account version than this change: it must not be written (an edit is over
        its base version, so it may write a contact at that version; a version only one at an older one)."""
        return contact_modstamp is not None and contact_modstamp > self.guard_modstamp

    def edited_over(self, outbox: Mapping[str, OutboxEntry]) -> dict[str, OutboxEntry]:
        """A version: the contact's fields that a local edit over this version, or a newer one, wrote. The edit
        came later than the version (SPEC R3: the newest wins), even where its segment reached the contact first;
        the version writes every other field and keeps these."""
        if self.version is None:
            return {}
        stamp = self.version.system_modstamp
        return {name: entry for name, entry in outbox.items() if entry.base is not None and entry.base >= stamp}

    def behind_base(self, contact_modstamp: str | None) -> bool:
        """An edit reaching a contact that its base version has not reached yet (that version's segment is still
        to come): the edit marks the field even where the value does not change, so that the version keeps it."""
        return self.edit is not None and (contact_modstamp is None or contact_modstamp < self.guard_modstamp)

    def behind(self, outbox: Mapping[str, OutboxEntry], later_edits: Collection[ChangeRef] = ()) -> bool:
        """An edit whose field a later edit already wrote on the contact: a segment that comes late (redriven
        from the dead-letter queue) must not write its older value back. Later: edited after it, or, in the same
        millisecond (ordered by the queue alone), one the field's mark applied after it (`later_edits`)."""
        if self.edit is None:
            return False
        entry = outbox.get(self.edit.field)
        if entry is None or entry.change.origin is not ChangeOrigin.LOCAL or entry.change == self.ref:
            return False
        return entry.change.stamp > self.edit.edited_at or entry.change in later_edits

    def held_since_join(self, changes_at_join: int | None) -> bool:
        """The contact joined the account after the account accepted this change (`changes_at_join`: the account's
        count of changes accepted when the contact took its fields, `ContactSnapshot.changes_at_join`): it holds the
        change's values, or a later change's, and was no member when the change was owed (issue 10, 2.1). Its
        segment, or a leaver's catch-up, must neither write it (an older edit of a field would overwrite the later
        one the contact took) nor log it. Unknown on either side: not held, as before counts were kept."""
        return changes_at_join is not None and self.accepted_as is not None and changes_at_join >= self.accepted_as

    def already_on(self, contact_modstamp: str | None) -> bool:
        """A version whose stamp the contact holds was written there by an earlier delivery (a resync diffs it
        again: that is what it is for)."""
        return self.version is not None and self.resync_id is None and contact_modstamp == self.version.system_modstamp


def written_via(change: ChangeRef, outbox: Mapping[str, OutboxEntry]) -> SyncPath | None:
    """The path that wrote `change` on a contact, from its outbox (None: not written there, or before paths were)."""
    return next((entry.path for entry in outbox.values() if entry.change == change and entry.path), None)


def owed_again(
    change: ChangeRef, outbox: Mapping[str, OutboxEntry], values: Mapping[str, FieldValue]
) -> list[tuple[str, FieldValue, FieldValue]]:
    """The (field, old, new) that `change` wrote on a contact, from its outbox: what a redelivery re-emits."""
    return [(name, entry.old, values.get(name)) for name, entry in outbox.items() if entry.change == change]
