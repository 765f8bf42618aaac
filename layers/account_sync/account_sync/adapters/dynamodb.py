"""The store, on DynamoDB through pynamodb, and boto3 where pynamodb's public API cannot make a call as the store needs
it (docs/decisions.md, "pynamodb through its public API"). Every write that orders versions is a conditional update."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

from botocore.exceptions import ClientError
from pynamodb.attributes import Attribute, MapAttribute
from pynamodb.constants import NULL
from pynamodb.exceptions import PutError, PynamoDBException, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path, Value
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from account_sync.adapters.dynamodb_models import (
    AccountItem,
    ActivityItem,
    ContactItem,
    SyncStateItem,
    dynamodb_client,
)
from account_sync.adapters.expression_templates import Build, ExpressionTemplate, NotTemplatable, expressions
from account_sync.domain.activity_policy import ActivityLogging
from account_sync.domain.changes import (
    AccountChange,
    ChangeDecision,
    OutboxEntry,
    PendingEdit,
    SupersededVersion,
    VersionDiff,
    version_diffs,
    versions_from_diffs,
)
from account_sync.domain.conversion import PersonConversion
from account_sync.domain.fields import FieldChange, FieldValue, canonical_value
from account_sync.domain.local_edits import EditMark, mark_of
from account_sync.domain.records import (
    CHANGE_DATA_VALUE,
    CHANGE_DATA_VALUE_SUPPRESSED,
    AccountVersion,
    ActivitySuppression,
    ChangeDataValueActivity,
    ChangeOrigin,
    ChangeRef,
    ContactVersion,
    LocalEdit,
    SyncPath,
    sync_path,
)
from account_sync.domain.timestamps import parse_timestamp, utc_now
from account_sync.ports import (
    Acceptance,
    AcceptResult,
    AccountJoin,
    AccountState,
    AccountUnchanged,
    ApiUsage,
    ContactSnapshot,
    DriftState,
    PermanentFailure,
    RecordedUsage,
    StoredActivity,
    StoredContact,
    StreamState,
    Throttled,
    TransientError,
    WindowProgress,
    stays_in_account,
)

# DynamoDB's answers for a lack of capacity: a partition key's, the table's or an index's back-pressure
# (ProvisionedThroughputExceededException, ThrottlingException) and the account's request rate.
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_SERVER_ERRORS = frozenset({"InternalServerError", "ServiceUnavailable"})
_THROTTLING = THROTTLING_CODES | _SERVER_ERRORS
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100  # keys per BatchGetItem
_TEMPLATES_KEPT = 16  # contact-write templates a repository keeps (`DynamoContactRepository._request`)
PLAN_PROGRESS_RETENTION_SECONDS = 7 * 86400  # a plan's progress item outlives any redelivery of its segments


def plan_progress_id(account_id: str, plan_id: str) -> str:
    """The sync-state item that counts the segments of one plan done."""
    return f"segments#{account_id}#{plan_id}"


def _error_code(exc: PynamoDBException | ClientError) -> str | None:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return exc.cause_response_code


def is_condition_failure(exc: PynamoDBException | ClientError) -> bool:
    return _error_code(exc) == "ConditionalCheckFailedException"


def translate(exc: PynamoDBException | ClientError) -> Exception:
    """Throttling (`Throttled`) and server errors are transient (SQS retries the message); an invalid item is
    permanent (the consumer dead-letters the message at once); anything else is a bug to see. pynamodb's and
    boto3's errors alike: some calls go through boto3 (`dynamodb_client`)."""
    code = _error_code(exc)
    message = exc.response.get("Error", {}).get("Message") if isinstance(exc, ClientError) else None
    message = message or getattr(exc, "cause_response_message", "")
    if code in THROTTLING_CODES:
        return Throttled(f"DynamoDB {code}: {message}")
    if code in _SERVER_ERRORS:
        return TransientError(f"DynamoDB {code}: {message}")
    if code == "ValidationException":  # an invalid item: sent again, refused again
        # DynamoDB's message is left out: it may quote an attribute's value
        return PermanentFailure(f"DynamoDB refused the write as invalid ({type(exc).__name__}: ValidationException)")
    return exc


def _update_unless_condition_fails(item: Model, *, actions: list[Action], condition: Condition) -> bool:
    """A conditional update: True when it landed, False when its condition did not hold (another delivery got
    there first, or the item moved on); any other failure translated."""
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise translate(exc) from exc
    return True


def _fields(raw: Any) -> dict[str, FieldValue]:
    if raw is None:
        return {}
    data = raw.as_dict() if isinstance(raw, MapAttribute) else dict(raw)
    return {name: canonical_value(value) for name, value in data.items()}


# --- accounts ------------------------------------------------------------------------------------------


class DynamoAccountRepository:
    def __init__(self, now: Callable[[], str] = utc_now) -> None:
        self._now = now

    def get(self, account_id: str) -> AccountState | None:
        try:
            item = AccountItem.get(account_id, consistent_read=True)
        except AccountItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise translate(exc) from exc
        return _account_state(item)

    def accept_version(
        self,
        version: AccountVersion,
        decision: ChangeDecision,
        changed_fields: Sequence[str],
        path: SyncPath | None = None,
        superseded: Sequence[SupersededVersion] = (),
    ) -> AcceptResult:
        item = AccountItem(version.account_id)
        condition = AccountItem.system_modstamp.does_not_exist() | (
            AccountItem.system_modstamp < version.system_modstamp
        )
        try:
            # boto3: pynamodb's Model.update returns the new item only, and the local edits come from the old one
            old = dynamodb_client().update_item(
                TableName=AccountItem.Meta.table_name,
                Key={"account_id": {"S": version.account_id}},
                ReturnValues="ALL_OLD",
                **expressions(
                    [
                        AccountItem.fields.set(dict(version.fields)),
                        AccountItem.system_modstamp.set(version.system_modstamp),
                        AccountItem.is_deleted.set(version.is_deleted),
                        AccountItem.activity_logging.set(decision.activity_logging.value),
                        AccountItem.contacts_counted.set(decision.contacts_counted),
                        AccountItem.segmented.set(decision.segmented),
                        AccountItem.changed_fields.set(list(changed_fields)),
                        AccountItem.sync_path.set(path.value) if path else AccountItem.sync_path.remove(),
                        AccountItem.updated_at.set(self._now()),
                        AccountItem.applied_modstamp.remove(),
                        AccountItem.segments_plan.remove(),
                        AccountItem.segments_total.remove(),
                        AccountItem.segments_done.remove(),
                        AccountItem.superseded.set(_superseded_items(superseded))
                        if superseded
                        else AccountItem.superseded.remove(),
                        AccountItem.changes_accepted.add(1),
                    ],
                    condition,
                ),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise translate(exc) from exc
            current = self.get(version.account_id)
            assert current is not None  # the condition failed, so the item exists
            if current.system_modstamp == version.system_modstamp:
                acceptance = (
                    Acceptance.ALREADY_APPLIED
                    if current.applied_modstamp == version.system_modstamp
                    else Acceptance.RESUME
                )
            else:
                acceptance = Acceptance.STALE
            return AcceptResult(acceptance, current)
        previous = item.from_raw_data(old["Attributes"]) if old.get("Attributes") else None
        state = AccountState(
            account_id=version.account_id,
            fields=dict(version.fields),
            system_modstamp=version.system_modstamp,
            applied_modstamp=None,
            is_deleted=version.is_deleted,
            activity_logging=decision.activity_logging,
            contacts_counted=decision.contacts_counted,
            changed_fields=tuple(changed_fields),
            segmented=decision.segmented,
            local_edits=_edit_marks(previous.local_edits) if previous else {},
            recent_joiners=_joiners(previous.recent_joiners) if previous else {},
            joiners_overflow_at=previous.joiners_overflow_at if previous else None,
            sync_path=path,
            superseded=tuple(superseded),
            changes_accepted=_count(previous.changes_accepted if previous else None) + 1,
        )
        return AcceptResult(Acceptance.NEW, state, _fields(previous.fields) if previous else {})

    def record_plan(self, change: AccountChange, plan_id: str, total: int) -> None:
        if change.version is not None:
            self._update_if_current(
                change.account_id,
                change.stamp,
                [
                    AccountItem.segments_plan.set(plan_id),
                    AccountItem.segments_total.set(total),
                    AccountItem.segments_done.remove(),
                ],
            )
            return
        assert change.edit is not None and change.base_modstamp is not None
        mark = cast(Path, AccountItem.local_edits[change.edit.field])  # the document path local_edits.<field>
        self._update_if_current(
            change.account_id,
            change.base_modstamp,
            [mark["plan_id"].set(plan_id), mark["segments_total"].set(total)],
            extra_condition=(mark["edit_id"] == change.edit.edit_id) & (mark["edited_at"] == change.edit.edited_at),
        )

    def complete_segment(self, account_id: str, plan_id: str, index: int, total: int) -> bool:
        """ADD to a number set is idempotent (a redelivered segment adds nothing) and needs no read. The item is the
        plan's, in the sync-state table, and expires with the table's TTL a week later; at 2,000 segments the set
        holds ~6 KB, so a write costs at most 7 write units, ~0.01 per contact, on an item no contact write shares."""
        item = SyncStateItem(plan_progress_id(account_id, plan_id))
        try:
            item.update(
                actions=[
                    SyncStateItem.segments_done.add({index}),
                    SyncStateItem.segments_total.set(total),
                    SyncStateItem.expires_at.set(self._expires_at()),
                ]
            )
        except UpdateError as exc:
            raise translate(exc) from exc
        return len(item.segments_done or ()) >= total

    def plan_complete(self, account_id: str, plan_id: str, total: int) -> bool:
        try:
            item = SyncStateItem.get(plan_progress_id(account_id, plan_id), consistent_read=True)
        except SyncStateItem.DoesNotExist:
            return False
        except PynamoDBException as exc:
            raise translate(exc) from exc
        return len(item.segments_done or ()) >= total

    def mark_applied(self, account_id: str, system_modstamp: str, plan_id: str | None = None) -> bool:
        condition = (AccountItem.system_modstamp == system_modstamp) & (
            AccountItem.applied_modstamp.does_not_exist() | (AccountItem.applied_modstamp != system_modstamp)
        )
        if plan_id is not None:
            condition &= AccountItem.segments_plan == plan_id  # a replaced plan's segments never complete it
        return _update_unless_condition_fails(
            AccountItem(account_id),
            actions=[
                AccountItem.applied_modstamp.set(system_modstamp),
                AccountItem.superseded.remove(),
                AccountItem.updated_at.set(self._now()),
            ],
            condition=condition,
        )

    def _expires_at(self) -> int:
        return int(parse_timestamp(self._now()).timestamp()) + PLAN_PROGRESS_RETENTION_SECONDS

    def accept_unchanged_version(self, version: AccountVersion, stored: AccountState) -> bool:
        """One conditional write: the version becomes the newest and is applied, while the item is still the
        fully applied `stored` version. It keeps an older version that comes late from being accepted."""
        if stored.system_modstamp is None:
            return False
        item = AccountItem(version.account_id)
        condition = (
            (AccountItem.system_modstamp == stored.system_modstamp)
            & (AccountItem.applied_modstamp == stored.system_modstamp)
            & (AccountItem.is_deleted == stored.is_deleted)
        )
        return _update_unless_condition_fails(
            item,
            actions=[
                AccountItem.system_modstamp.set(version.system_modstamp),
                AccountItem.applied_modstamp.set(version.system_modstamp),
                AccountItem.changed_fields.set([]),
                AccountItem.updated_at.set(self._now()),
            ],
            condition=condition,
        )

    def refresh_fields(self, account_id: str, system_modstamp: str, fields: Mapping[str, FieldValue]) -> int | None:
        item = self._update_if_current(
            account_id,
            system_modstamp,
            [AccountItem.fields.set(dict(fields)), AccountItem.changes_accepted.add(1)],
            extra_condition=AccountItem.applied_modstamp == system_modstamp,
            return_new=True,
        )
        return int(item.changes_accepted) if item is not None and item.changes_accepted is not None else None

    def apply_local_edit(
        self,
        edit: LocalEdit,
        stored: AccountState,
        decision: ChangeDecision,
        changed: bool,
        earlier: Sequence[PendingEdit] = (),
    ) -> bool:
        """One conditional write: the field's value and its mark (the edit, over the newest version, with its
        decision and the earlier edits it keeps), while the item is still `stored` in what decides the edit (newest
        version, not deleted, the field's last edit)."""
        if stored.system_modstamp is None:
            return False
        previous = stored.local_edits.get(edit.field)
        counted = _count(stored.changes_accepted) + 1  # the count this write makes (conditioned on the one read)
        kept = mark_of(
            edit,
            previous,
            stored.system_modstamp,
            stored.fields.get(edit.field),
            decision,
            changed,
            tuple(earlier),
            accepted_as=counted,
        )
        values = kept.values
        mark = {
            "edit_id": edit.edit_id,
            "edited_at": edit.edited_at,
            "base_modstamp": stored.system_modstamp,
            "activity_logging": decision.activity_logging.value,
            "contacts_counted": decision.contacts_counted,
            "segmented": decision.segmented,
            "changed": changed,
            **({"values": list(values)} if values is not None else {}),
            **({"earlier_ids": list(kept.earlier_ids)} if kept.earlier_ids else {}),
            **({"earlier_edits": [_pending_edit_item(e) for e in kept.earlier_edits]} if kept.earlier_edits else {}),
            "accepted_as": counted,
        }
        field_mark = cast(Path, AccountItem.local_edits[edit.field])  # the document path local_edits.<field>
        condition = (AccountItem.system_modstamp == stored.system_modstamp) & (AccountItem.is_deleted == False)  # noqa: E712
        seen = stored.changes_accepted
        condition &= (
            AccountItem.changes_accepted.does_not_exist() if seen is None else AccountItem.changes_accepted == seen
        )
        if previous is None:
            condition &= field_mark.does_not_exist()
        else:
            condition &= (field_mark["edit_id"] == previous.edit_id) & (field_mark["edited_at"] == previous.edited_at)
        if stored.local_edits:
            mark_action = field_mark.set(mark)
        else:  # the first edit of the account: a nested path cannot be set in a map that does not exist yet
            mark_action = AccountItem.local_edits.set({edit.field: mark})
            condition &= AccountItem.local_edits.does_not_exist()
        return _update_unless_condition_fails(
            AccountItem(edit.account_id),
            actions=[
                AccountItem.fields[edit.field].set(edit.value),  # type: ignore[attr-defined]
                mark_action,
                AccountItem.changes_accepted.add(1),
                AccountItem.updated_at.set(self._now()),
            ],
            condition=condition,
        )

    def note_joiners(
        self, account_id: str, contact_ids: Sequence[str], joined_at: str, forget: Mapping[str, str], overflow: bool
    ) -> None:
        """ADD and DELETE on a string set need no item, no set and no read: one unconditional write, two when
        joiners are both forgotten and added (one update expression may not name the set twice: DynamoDB refuses
        it as invalid). Forgetting first: a crash between the two only prunes the list early of expired joiners."""
        forgotten = {f"{c}|{at}" for c, at in forget.items()}
        adding = not overflow and bool(contact_ids)
        if forgotten and adding:
            self._update_joiners(account_id, [AccountItem.recent_joiners.delete(forgotten)])
            forgotten = set()
        actions: list[Any] = []
        if forgotten:
            actions.append(AccountItem.recent_joiners.delete(forgotten))
        if overflow:
            actions.append(AccountItem.joiners_overflow_at.set(joined_at))
        elif contact_ids:
            actions.append(AccountItem.recent_joiners.add({f"{c}|{joined_at}" for c in contact_ids}))
        self._update_joiners(account_id, actions)

    def _update_joiners(self, account_id: str, actions: list[Any]) -> None:
        try:
            AccountItem(account_id).update(actions=[*actions, AccountItem.updated_at.set(self._now())])
        except UpdateError as exc:
            raise translate(exc) from exc

    def _update_if_current(
        self,
        account_id: str,
        system_modstamp: str,
        actions: list[Any],
        extra_condition: Condition | None = None,
        return_new: bool = False,
    ) -> AccountItem | None:
        """An update that only lands while `system_modstamp` is still the account's newest version."""
        item = AccountItem(account_id)
        condition = AccountItem.system_modstamp == system_modstamp
        if extra_condition is not None:
            condition = condition & extra_condition
        try:
            item.update(actions=[*actions, AccountItem.updated_at.set(self._now())], condition=condition)
        except UpdateError as exc:
            if is_condition_failure(exc):
                return None
            raise translate(exc) from exc
        return item if return_new else None


def _account_state(item: AccountItem) -> AccountState:
    return AccountState(
        account_id=item.account_id,
        fields=_fields(item.fields),
        system_modstamp=item.system_modstamp,
        applied_modstamp=item.applied_modstamp,
        is_deleted=bool(item.is_deleted),
        activity_logging=ActivityLogging(item.activity_logging) if item.activity_logging else None,
        contacts_counted=int(item.contacts_counted) if item.contacts_counted is not None else None,
        changed_fields=tuple(item.changed_fields or ()),
        segments_total=int(item.segments_total) if item.segments_total is not None else None,
        segments_done=frozenset(item.segments_done or ()),
        local_edits=_edit_marks(item.local_edits),
        # an item written before `segmented` was: a version with a plan was fanned out in segments
        segmented=bool(item.segmented) if item.segmented is not None else item.segments_plan is not None,
        segments_plan=item.segments_plan,
        recent_joiners=_joiners(item.recent_joiners),
        joiners_overflow_at=item.joiners_overflow_at,
        sync_path=sync_path(item.sync_path),
        superseded=_superseded(item.account_id, item.superseded),
        changes_accepted=int(item.changes_accepted) if item.changes_accepted is not None else None,
    )


def _count(raw: Any) -> int:
    return int(raw) if raw is not None else 0


def _superseded_items(superseded: Sequence[SupersededVersion]) -> list[object]:
    """Each version as its diff from the one before (`changed`, `removed`; the first one's `changed` is whole), with
    the edits over it: successive versions differ in a few fields, so the list costs about what changed."""
    items: list[object] = []
    for entry, diff in zip(superseded, version_diffs(superseded), strict=True):
        version = entry.version
        items.append(
            {
                "system_modstamp": version.system_modstamp,
                "is_deleted": version.is_deleted,
                "changed": dict(diff.changed),
                **({"removed": list(diff.removed)} if diff.removed else {}),
                "activity_logging": entry.activity_logging.value,
                **({"path": entry.path.value} if entry.path else {}),
                **({"edits": [_pending_edit_item(edit) for edit in entry.edits]} if entry.edits else {}),
            }
        )
    return items


def _superseded(account_id: str, raw: Any) -> tuple[SupersededVersion, ...]:
    """The list back from its diffs. An entry written before diffs were (`fields`, whole) starts the chain again."""
    entries = [_plain(entry) for entry in _as_list(raw)]
    diffs: list[VersionDiff] = []
    for entry in entries:
        if "fields" in entry:
            before = versions_from_diffs(diffs)[-1] if diffs else {}
            whole = _fields(entry["fields"])
            diffs.append(VersionDiff(whole, tuple(name for name in before if name not in whole)))
        else:
            removed = tuple(str(name) for name in _as_list(entry.get("removed")))
            diffs.append(VersionDiff(_fields(entry.get("changed")), removed))
    return tuple(
        SupersededVersion(
            AccountVersion(account_id, str(entry["system_modstamp"]), bool(entry["is_deleted"]), fields),
            ActivityLogging(entry["activity_logging"]),
            sync_path(entry.get("path")),
            tuple(_pending_edit(edit) for edit in _as_list(entry.get("edits"))),
        )
        for entry, fields in zip(entries, versions_from_diffs(diffs), strict=True)
    )


def _pending_edit_item(edit: PendingEdit) -> dict[str, Any]:
    return {
        "field": edit.field,
        "edit_id": edit.edit_id,
        "edited_at": edit.edited_at,
        "value": edit.value,
        "activity_logging": edit.activity_logging.value,
        **({"accepted_as": edit.accepted_as} if edit.accepted_as is not None else {}),
    }


def _pending_edit(raw: Any) -> PendingEdit:
    entry = _plain(raw)
    return PendingEdit(
        str(entry["field"]),
        str(entry["edit_id"]),
        str(entry["edited_at"]),
        canonical_value(entry.get("value")),
        ActivityLogging(entry["activity_logging"]),
        _optional_int(entry.get("accepted_as")),
    )


def _plain(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    return raw.as_dict() if isinstance(raw, MapAttribute) else dict(raw)


def _edit_marks(raw: Any) -> dict[str, EditMark]:
    return {name: _edit_mark(mark) for name, mark in _plain(raw).items()}


def _edit_mark(mark: Mapping[str, Any]) -> EditMark:
    decision = None
    if mark.get("activity_logging"):  # a mark written before decisions were stored has none
        decision = ChangeDecision(
            ActivityLogging(mark["activity_logging"]),
            int(mark.get("contacts_counted") or 0),
            bool(mark.get("segmented")),
        )
    return EditMark(
        str(mark["edit_id"]),
        str(mark["edited_at"]),
        str(mark["base_modstamp"]),
        decision=decision,
        changed=bool(mark.get("changed", True)),
        plan_id=str(mark["plan_id"]) if mark.get("plan_id") else None,
        segments_total=int(mark["segments_total"]) if mark.get("segments_total") is not None else None,
        values=_mark_values(mark.get("values")),
        earlier_ids=tuple(str(edit_id) for edit_id in _as_list(mark.get("earlier_ids"))),
        earlier_edits=tuple(_pending_edit(edit) for edit in _as_list(mark.get("earlier_edits"))),
        accepted_as=_optional_int(mark.get("accepted_as")),
    )


def _optional_int(raw: Any) -> int | None:
    return int(raw) if raw is not None else None


def _as_list(raw: Any) -> list[Any]:
    if raw is None:
        return []
    return raw.as_list() if hasattr(raw, "as_list") else list(raw)


def _mark_values(raw: Any) -> tuple[FieldValue, FieldValue] | None:
    if raw is None:
        return None
    base, value = (canonical_value(v) for v in _as_list(raw))
    return base, value


def _joiners(raw: Any) -> dict[str, str]:
    joiners: dict[str, str] = {}
    for entry in raw or ():
        contact_id, _, joined_at = str(entry).partition("|")
        joiners[contact_id] = max(joined_at, joiners.get(contact_id, ""))
    return joiners


def _outbox(raw: Any, account_modstamp: str | None) -> dict[str, OutboxEntry]:
    """The contact's outbox. An entry written before the outbox named its change (a bare value: the value before
    the account version `account_modstamp`) is read as that version's."""
    entries = {}
    for name, entry in _plain(raw).items():
        if isinstance(entry, Mapping) and "origin" in entry:
            ref = ChangeRef(ChangeOrigin(entry["origin"]), str(entry["stamp"]), entry.get("change_id"))
            base = str(entry["base"]) if entry.get("base") else None
            entries[name] = OutboxEntry(ref, canonical_value(entry.get("old")), base, sync_path(entry.get("path")))
        elif account_modstamp is not None:
            entries[name] = OutboxEntry(ChangeRef(ChangeOrigin.ACCOUNT, account_modstamp), canonical_value(entry))
    return entries


def _outbox_item(entry: OutboxEntry) -> dict[str, Any]:
    item: dict[str, Any] = {"origin": entry.change.origin.value, "stamp": entry.change.stamp, "old": entry.old}
    if entry.change.change_id:
        item["change_id"] = entry.change.change_id
    if entry.base:
        item["base"] = entry.base
    if entry.path:
        item["path"] = entry.path.value
    return item


# --- contacts ------------------------------------------------------------------------------------------


class DynamoContactRepository:
    def __init__(
        self,
        now: Callable[[], str] = utc_now,
        batch_get_attempts: int = 6,
        batch_get_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._now = now
        self._batch_get_attempts = batch_get_attempts
        self._batch_get_delay = batch_get_delay
        self._sleep = sleep
        self._templates: dict[tuple[object, ...], tuple[AccountChange, ExpressionTemplate]] = {}

    def count_members(self, account_id: str, limit: int) -> int:
        """A COUNT query that stops after `limit` items: its cost is bounded whatever the account's size."""
        # boto3: pynamodb's Index.count reads the whole account, in pages of `limit`, whatever the limit
        counted = 0
        start: dict[str, Any] = {}
        try:
            while counted < limit:
                page = dynamodb_client().query(
                    TableName=ContactItem.Meta.table_name,
                    IndexName=ContactItem.by_account.Meta.index_name,
                    Select="COUNT",
                    Limit=limit - counted,
                    **expressions(key=ContactItem.account_id == account_id),
                    **start,
                )
                counted += int(page.get("Count", 0))
                if not page.get("LastEvaluatedKey"):
                    break
                start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        except ClientError as exc:
            raise translate(exc) from exc
        return min(counted, limit)

    def member_key_pages(self, account_id: str, page_size: int) -> Iterator[tuple[str | None, str]]:
        """The account's contacts cut into ranges `(after, through]` of `page_size` contacts (the last one fewer),
        read as keys only, in DynamoDB's 1 MB pages: a request reads the keys of thousands of contacts, where one
        request per range would cost an account of 100,000 contacts 200 requests to plan 500-contact segments."""
        after: str | None = None
        in_range = 0
        last_contact: str | None = None
        try:
            for item in ContactItem.by_account.query(account_id, attributes_to_get=["contact_id"]):
                last_contact = item.contact_id
                in_range += 1
                if in_range == page_size:
                    yield after, last_contact
                    after, in_range = last_contact, 0
        except PynamoDBException as exc:
            raise translate(exc) from exc
        if in_range and last_contact is not None:
            yield after, last_contact

    def members(
        self, account_id: str, after: str | None = None, through: str | None = None
    ) -> Iterator[ContactSnapshot]:
        """The keys from the account index (keys only: contact writes never touch it), then the items from the
        table, 100 keys a BatchGetItem, strongly consistent: what the fan-out diffs is what the table holds now,
        and a contact the lagging index still shows in the account after it left is left out."""
        key_condition: Condition | None = None
        if after is not None and through is not None:
            key_condition = ContactItem.contact_id.between(after, through)
        elif through is not None:
            key_condition = ContactItem.contact_id <= through
        elif after is not None:
            key_condition = ContactItem.contact_id > after
        keys: list[str] = []
        try:
            for item in ContactItem.by_account.query(account_id, range_key_condition=key_condition):
                if after is not None and item.contact_id == after:
                    continue  # BETWEEN is inclusive; the range is (after, through]
                keys.append(item.contact_id)
                if len(keys) == BATCH_GET_LIMIT:
                    yield from self._members_by_key(account_id, keys)
                    keys = []
        except PynamoDBException as exc:
            raise translate(exc) from exc
        if keys:
            yield from self._members_by_key(account_id, keys)

    def _members_by_key(self, account_id: str, keys: list[str]) -> list[ContactSnapshot]:
        items = self._batch_get(keys)
        return [
            _snapshot(item, account_id)
            for item in sorted(items, key=lambda item: item.contact_id)
            if item.account_id == account_id and not item.is_deleted
        ]

    def _batch_get(self, keys: Sequence[str]) -> list[SimpleNamespace]:
        """One BatchGetItem (at most 100 keys), strongly consistent; the keys DynamoDB left unprocessed (it does
        under throttling) are asked again with growing backoff and jitter, then the message is retried. boto3:
        pynamodb's Model.batch_get asks unprocessed keys again at once and for ever."""
        table = ContactItem.Meta.table_name
        found: list[SimpleNamespace] = []
        pending = list(keys)
        for attempt in range(self._batch_get_attempts):
            try:
                keys_map = [{"contact_id": {"S": contact_id}} for contact_id in pending]
                response = dynamodb_client().batch_get_item(
                    RequestItems={table: {"Keys": keys_map, "ConsistentRead": True}}
                )
            except ClientError as exc:
                raise translate(exc) from exc
            found += [_decoded_contact(raw) for raw in response.get("Responses", {}).get(table, [])]
            unprocessed = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not unprocessed:
                return found
            pending = [key["contact_id"]["S"] for key in unprocessed]
            if attempt + 1 < self._batch_get_attempts:
                self._sleep(_backoff(self._batch_get_delay, attempt))
        raise TransientError(
            f"{len(pending)} of {len(keys)} contacts still unread after {self._batch_get_attempts} attempts"
        )

    def contact(self, contact_id: str) -> ContactSnapshot | None:
        try:
            item = ContactItem.get(contact_id, consistent_read=True)
        except ContactItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise translate(exc) from exc
        return _snapshot(item, item.account_id)

    def write_change(
        self,
        contact_id: str,
        change: AccountChange,
        changes: Sequence[FieldChange],
        kept: Mapping[str, tuple[FieldValue, OutboxEntry]] | None = None,
        as_read: ContactSnapshot | None = None,
    ) -> bool:
        """A version replaces the account fields and the whole outbox, but for the `kept` fields (a local edit over
        it wrote them); an edit sets its field and the field's outbox entry, naming its base version (a nested
        path, so the outbox map must exist: a contact without one gets it whole). `revision` is added to in the
        same update, and with `as_read` it is the condition's (no read: one conditional UpdateItem). Then the
        outbox entries' conditions are left out: every write of a contact adds to its revision, so an unchanged
        revision is an unchanged outbox, and the entries were judged on the contact as read (`kept`, `edited_over`).
        Those conditions, one or two per synced field, cost moto and the client more than the rest of the write's
        expression (docs/decisions.md, Target 4, amended 2026-12-05). The writes as read, the fan-out's, come from
        the change's templates (`_request`)."""
        kept = kept or {}
        entries = {
            fc.field: _outbox_item(OutboxEntry(change.ref, fc.old, change.base_modstamp, change.path)) for fc in changes
        }
        read = "unread" if as_read is None else "as read"  # a template's kind: only as read has a revision clause
        slots: dict[str, tuple[Attribute[Any] | None, Any]] = {"updated_at": (ContactItem.updated_at, self._now())}
        if as_read is not None and as_read.revision is not None:
            slots["revision"] = (ContactItem.revision, as_read.revision)

        def condition(values: Mapping[str, Any]) -> Condition:
            if as_read is None:
                return _change_condition(change)
            return _change_condition(change) & _revision_condition(values.get("revision"))

        if change.version is not None:
            version = change.version
            if as_read is None:
                return self._write_version_unread(contact_id, change, entries, kept, condition({}))
            slots["entries"] = (
                ContactItem.account_previous_values,
                entries | {name: _outbox_item(entry) for name, (_, entry) in kept.items()},
            )
            if kept:  # the fields a local edit over the version wrote keep their values
                slots["fields"] = (
                    ContactItem.account_fields,
                    {**version.fields, **{name: value for name, (value, _) in kept.items()}},
                )

            def version_write(values: Mapping[str, Any]) -> tuple[list[Action], Condition]:
                fields = values.get("fields", dict(version.fields))
                return _version_actions(version, fields, values["entries"], values["updated_at"]), condition(values)

            return self._update(contact_id, self._request(change, f"version {read}", version_write, slots))
        edit = change.edit
        assert edit is not None

        def common(values: Mapping[str, Any]) -> list[Action]:
            return [
                ContactItem.account_fields[edit.field].set(edit.value),  # type: ignore[attr-defined]
                ContactItem.account_fields_source.set("local"),
                ContactItem.updated_at.set(values["updated_at"]),
                ContactItem.revision.add(1),
            ]

        def field_write(values: Mapping[str, Any]) -> tuple[list[Action], Condition]:
            return common(values), condition(values)

        if not entries:
            return self._update(contact_id, self._request(change, f"edit {read}", field_write, slots))
        entry = cast(Path, ContactItem.account_previous_values[edit.field])  # the path account_previous_values.<f>

        def entry_write(values: Mapping[str, Any]) -> tuple[list[Action], Condition]:
            actions = [*common(values), entry.set(values["entry"])]
            return actions, condition(values) & ContactItem.account_previous_values.exists()

        one = {**slots, "entry": (entry.attribute, entries[edit.field])}  # serialized as the path's set would
        if self._update(contact_id, self._request(change, f"edit entry {read}", entry_write, one)):
            return True

        def outbox_write(values: Mapping[str, Any]) -> tuple[list[Action], Condition]:
            actions = [*common(values), ContactItem.account_previous_values.set(values["entries"])]
            return actions, condition(values) & ContactItem.account_previous_values.does_not_exist()

        whole = {**slots, "entries": (ContactItem.account_previous_values, entries)}
        return self._update(contact_id, self._request(change, f"edit outbox {read}", outbox_write, whole))

    def _write_version_unread(
        self,
        contact_id: str,
        change: AccountChange,
        entries: dict[str, Any],
        kept: Mapping[str, tuple[FieldValue, OutboxEntry]],
        condition: Condition,
    ) -> bool:
        """A version's write on a contact not read: each outbox entry's condition says that no local edit over
        the version (or a newer one) wrote the field since, or that the kept edit is still the one there."""
        version = change.version
        assert version is not None
        for name in version.fields:
            entry = cast(Path, ContactItem.account_previous_values[name])  # account_previous_values.<field>
            if name in kept:  # still the edit that was read
                ref = kept[name][1].change
                condition &= (entry["origin"] == ref.origin.value) & (entry["stamp"] == ref.stamp)
                if ref.change_id:
                    condition &= entry["change_id"] == ref.change_id
            else:  # no local edit over this version (or a newer one) wrote it since the contact was read
                condition &= entry["base"].does_not_exist() | (entry["base"] < version.system_modstamp)
        fields = {**version.fields, **{name: value for name, (value, _) in kept.items()}}
        entries |= {name: _outbox_item(entry) for name, (_, entry) in kept.items()}
        return self._conditional_update(contact_id, _version_actions(version, fields, entries, self._now()), condition)

    def _request(
        self,
        change: AccountChange,
        kind: str,
        make: Build,
        slots: Mapping[str, tuple[Attribute[Any] | None, Any]],
    ) -> dict[str, Any]:
        """A contact write's expressions: `make`'s actions and condition for these slots' values. The fan-out
        writes every contact of a change with the same expressions but for a few values (the outbox entries, the
        time, the revision read), so the change's template of this kind and these slots is built once, on first
        use, and then only the values are serialized (`ExpressionTemplate`). Keyed by the change object itself
        (the fan-out passes the same one for every contact); a few are kept. Where pynamodb would write other
        expressions for these values (`NotTemplatable`), `make` builds them in full. The fan-out's writer threads
        share the cache without a lock: each dict operation is atomic, and two threads building one template at once
        build the same one (either is kept); `cached[0] is change` keeps a reused `id` from matching."""
        key = (id(change), kind, tuple(slots))
        values = {name: value for name, (_, value) in slots.items()}
        try:
            cached = self._templates.get(key)
            if cached is not None and cached[0] is change:
                return cached[1].fill(values)
            template = ExpressionTemplate.build(make, slots)
            if len(self._templates) >= _TEMPLATES_KEPT:
                self._templates.clear()
            self._templates[key] = (change, template)
            return template.fill(values)
        except NotTemplatable:
            return expressions(*make(values))

    def apply_contact_version(
        self,
        version: ContactVersion,
        expected: ContactSnapshot | None,
        join: AccountJoin | None,
        account_unchanged: AccountUnchanged | None = None,
    ) -> bool:
        condition = ContactItem.contact_modstamp.does_not_exist() | (
            ContactItem.contact_modstamp < version.system_modstamp
        )
        if expected is None:
            condition &= ContactItem.contact_id.does_not_exist()
        else:  # still as read: the same account, account version and revision (no fan-out write since)
            for attribute, value in (
                (ContactItem.account_id, expected.account_id),
                (ContactItem.account_modstamp, expected.account_modstamp),
                (ContactItem.revision, expected.revision),
            ):
                condition &= attribute.does_not_exist() if value is None else attribute == value
        actions: list[Any] = [
            ContactItem.contact_modstamp.set(version.system_modstamp),
            ContactItem.is_deleted.set(version.is_deleted),
            ContactItem.updated_at.set(self._now()),
            ContactItem.revision.add(1),
        ]
        for attribute, value in (
            (ContactItem.first_name, version.first_name),
            (ContactItem.last_name, version.last_name),
            (ContactItem.email, version.email),
        ):
            actions.append(attribute.set(value) if value is not None else attribute.remove())
        if version.is_deleted:
            actions.append(ContactItem.account_id.remove())
            if version.account_id:
                actions.append(ContactItem.deleted_from_account_id.set(version.account_id))
            return self._write_version(version.contact_id, actions, condition, account_unchanged)
        actions.append(ContactItem.deleted_from_account_id.remove())
        if stays_in_account(version, expected):
            # The account's own fan-out writes its fields (and owes their activities).
            return self._write_version(version.contact_id, actions, condition, account_unchanged)
        if version.account_id:
            actions.append(ContactItem.account_id.set(version.account_id))
        else:
            actions.append(ContactItem.account_id.remove())
        if join is not None:
            # SPEC R4: the contact takes its account's fields, as the account holds them now.
            actions += [
                ContactItem.account_fields.set(dict(join.fields)),
                ContactItem.account_modstamp.set(join.system_modstamp),
                ContactItem.account_deleted.set(join.is_deleted),
                ContactItem.account_fields_source.set("salesforce"),
                ContactItem.account_previous_values.set({n: _outbox_item(e) for n, e in join.outbox.items()}),
                ContactItem.account_changes_at_join.set(join.changes_accepted)
                if join.changes_accepted is not None
                else ContactItem.account_changes_at_join.remove(),
            ]
        else:
            # No account, or one not synced yet: its fan-out will write the fields when it comes.
            actions += [
                ContactItem.account_fields.set({}),
                ContactItem.account_modstamp.remove(),
                ContactItem.account_deleted.set(False),
                ContactItem.account_previous_values.set({}),
                ContactItem.account_changes_at_join.remove(),
            ]
        return self._write_version(version.contact_id, actions, condition, account_unchanged)

    def _write_version(
        self, contact_id: str, actions: list[Any], condition: Condition, account_unchanged: AccountUnchanged | None
    ) -> bool:
        """A Contact version's write; a leave conditioned on its account item is one transaction with a
        ConditionCheck on that item (`changes_accepted` still as read), so that no change of the account is
        accepted between the leaver's catch-up and its leave. Only leavers pay for it (twice the write units)."""
        if account_unchanged is None:
            return self._conditional_update(contact_id, actions, condition)
        seen = account_unchanged.changes_accepted
        unchanged = (
            AccountItem.changes_accepted.does_not_exist() if seen is None else AccountItem.changes_accepted == seen
        )
        try:
            dynamodb_client().transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": ContactItem.Meta.table_name,
                            "Key": {"contact_id": {"S": contact_id}},
                            **expressions(actions, condition),
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": AccountItem.Meta.table_name,
                            "Key": {"account_id": {"S": account_unchanged.account_id}},
                            **expressions(condition=unchanged),
                        }
                    },
                ]
            )
        except ClientError as exc:
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
            if _error_code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons:
                return False
            if _error_code(exc) == "TransactionCanceledException" and "ValidationError" in reasons:
                raise PermanentFailure("DynamoDB refused a leave as invalid (ValidationError)") from exc
            if _error_code(exc) == "TransactionCanceledException":
                # another transaction or write on one of the items at the same moment, or throttling: worth a retry
                throttled = any(code in THROTTLING_CODES or code == "ThrottlingError" for code in reasons)
                raise (Throttled if throttled else TransientError)(f"DynamoDB cancelled a leave: {reasons}") from exc
            raise translate(exc) from exc
        return True

    # --- the HTTP API -------------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> StoredContact | None:
        try:
            item = ContactItem.get(contact_id, consistent_read=True)
        except ContactItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise translate(exc) from exc
        return _stored_contact(item)

    def link_conversion(self, conversion: PersonConversion) -> bool:
        """One write, all or nothing: the person is linked to its three records, or not at all. Only a person
        (an item the fetch never wrote: no `contact_modstamp`) not linked yet; never a member of the account
        (no `account_id`): the Contact arrives under its own Id with the fetch (docs/data-model.md)."""
        condition = (
            ContactItem.contact_id.exists()
            & ContactItem.contact_modstamp.does_not_exist()
            & ContactItem.converted_contact_id.does_not_exist()
        )
        actions = [
            ContactItem.conversion_key.set(conversion.conversion_key),
            ContactItem.converted_contact_id.set(conversion.contact_id),
            ContactItem.converted_account_id.set(conversion.account_id),
            ContactItem.converted_opportunity_id.set(conversion.opportunity_id),
            ContactItem.converted_at.set(conversion.converted_at),
            ContactItem.updated_at.set(self._now()),
        ]
        if conversion.converted_by:
            actions.append(ContactItem.converted_by.set(conversion.converted_by))
        return self._conditional_update(conversion.person_id, actions, condition)

    @classmethod
    def _conditional_update(cls, contact_id: str, actions: list[Any], condition: Condition) -> bool:
        return cls._update(contact_id, expressions(actions, condition))

    @staticmethod
    def _update(contact_id: str, request: Mapping[str, Any]) -> bool:
        """A conditional UpdateItem: True when it landed, False when its condition did not hold. boto3: pynamodb's
        Model.update asks for the whole new item back, a contact's worth of response for each of the fan-out's
        writes, which read nothing of it."""
        try:
            dynamodb_client().update_item(
                TableName=ContactItem.Meta.table_name,
                Key={"contact_id": {"S": contact_id}},
                **request,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise translate(exc) from exc
        return True


def _change_condition(change: AccountChange) -> Condition:
    """A change lands on a contact of its account that holds no newer version (its own again for a resync or an
    edit)."""
    if not change.rewrites_own_stamp:
        newer: Condition = ContactItem.account_modstamp < change.guard_modstamp
    else:
        newer = ContactItem.account_modstamp <= change.guard_modstamp
    return (ContactItem.account_id == change.account_id) & (ContactItem.account_modstamp.does_not_exist() | newer)


def _revision_condition(seen: int | Value | None) -> Condition:
    """The contact still at the revision read (none yet: `seen` None); `seen` a value or a template's operand."""
    return ContactItem.revision.does_not_exist() if seen is None else ContactItem.revision == seen


def _version_actions(version: AccountVersion, fields: Any, entries: Any, updated_at: Any) -> list[Action]:
    """A version's write of a contact: its fields, stamp and outbox, `revision` added to. The values are plain or
    a template's operands (`ExpressionTemplate`), so that both kinds of write are built here."""
    return [
        ContactItem.account_fields.set(fields),
        ContactItem.account_modstamp.set(version.system_modstamp),
        ContactItem.account_previous_values.set(entries),
        ContactItem.account_fields_source.set("salesforce"),
        ContactItem.account_deleted.set(version.is_deleted),
        ContactItem.updated_at.set(updated_at),
        ContactItem.revision.add(1),
    ]


# What a snapshot reads of a contact item: the model's attributes, by name
_SNAPSHOT_ATTRIBUTES = tuple(
    (name, ContactItem.get_attributes()[name])
    for name in (
        "contact_id",
        "account_id",
        "account_fields",
        "account_modstamp",
        "account_deleted",
        "account_previous_values",
        "contact_modstamp",
        "is_deleted",
        "account_changes_at_join",
        "revision",
    )
)


def _decoded_contact(raw: Mapping[str, Any]) -> SimpleNamespace:
    """The attributes of a read item that a snapshot takes, each deserialized by the model's attribute as
    `Model.from_raw_data` does (absent or NULL: None), without building the model and all its attributes'
    defaults: 0.082 → 0.040 ms of CPU a contact decoded into its snapshot, in-process (docs/decisions.md, Target 4,
    amended 2026-12-05)."""
    values = {}
    for name, attribute in _SNAPSHOT_ATTRIBUTES:
        value = raw.get(attribute.attr_name)
        values[name] = attribute.deserialize(attribute.get_value(value)) if value and NULL not in value else None
    return SimpleNamespace(**values)


def _snapshot(item: ContactItem | SimpleNamespace, account_id: str | None) -> ContactSnapshot:
    return ContactSnapshot(
        contact_id=item.contact_id,
        account_fields=_fields(item.account_fields),
        account_modstamp=item.account_modstamp,
        account_deleted=bool(item.account_deleted),
        outbox=_outbox(item.account_previous_values, item.account_modstamp),
        account_id=account_id,
        contact_modstamp=item.contact_modstamp,
        is_deleted=bool(item.is_deleted),
        changes_at_join=_optional_int(item.account_changes_at_join),
        revision=_optional_int(item.revision),
    )


def _stored_contact(item: ContactItem) -> StoredContact:
    conversion = None
    if item.converted_contact_id:
        conversion = PersonConversion(
            person_id=item.contact_id,
            conversion_key=item.conversion_key or "",
            account_id=item.converted_account_id or "",
            contact_id=item.converted_contact_id,
            opportunity_id=item.converted_opportunity_id or "",
            converted_at=item.converted_at or "",
            converted_by=item.converted_by,
        )
    return StoredContact(
        contact_id=item.contact_id,
        account_id=item.account_id,
        is_salesforce_contact=item.contact_modstamp is not None,
        is_deleted=bool(item.is_deleted),
        account_deleted=bool(item.account_deleted),
        first_name=item.first_name,
        last_name=item.last_name,
        email=item.email,
        conversion=conversion,
    )


# --- activities ----------------------------------------------------------------------------------------


class DynamoActivityStore:
    """BatchWriteItem in 25s; `UnprocessedItems` are retried with growing backoff and jitter."""

    def __init__(
        self,
        retention_days: int = 400,
        max_attempts: int = 6,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        client: Any | None = None,
    ) -> None:
        self._client = client  # the boto3 DynamoDB client; by default the process's (`dynamodb_client`)
        self._retention_seconds = retention_days * 86400
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep

    def put_activities(self, activities: Iterable[ChangeDataValueActivity]) -> int:
        """Each key once: the same key twice is the same activity (its keys are deterministic), and a
        BatchWriteItem with one key twice is refused whole (ValidationException), the first copy with it."""
        written = 0
        batch: list[dict[str, Any]] = []
        unique = {(activity.contact_id, activity.activity_key): activity for activity in activities}
        for activity in unique.values():
            batch.append(self._serialize_activity(activity))
            if len(batch) == BATCH_WRITE_LIMIT:
                written += self._write_batch(batch)
                batch = []
        if batch:
            written += self._write_batch(batch)
        return written

    def put_suppression(self, suppression: ActivitySuppression) -> None:
        item = ActivityItem(
            suppression.account_id,
            suppression.activity_key,
            activity_type=CHANGE_DATA_VALUE_SUPPRESSED,
            reason=(
                f"Account has more than {suppression.threshold} contacts: changes synced, "
                "Change Data Value activities not logged"
            ),
            source=suppression.origin.source,
            account_id=suppression.account_id,
            system_modstamp=suppression.system_modstamp,
            activity_at=suppression.activity_at,
            expires_at=self._expires_at(suppression.activity_at),
            contacts_counted=suppression.contacts_counted,
            threshold=suppression.threshold,
            changed_fields=list(suppression.changed_fields),
            sync_path=suppression.path.value if suppression.path else None,
        )
        try:
            item.save()
        except PutError as exc:
            raise translate(exc) from exc

    def _expires_at(self, activity_at: str) -> int:
        return int(parse_timestamp(activity_at).timestamp()) + self._retention_seconds

    def _serialize_activity(self, activity: ChangeDataValueActivity) -> dict[str, Any]:
        item = ActivityItem(
            activity.contact_id,
            activity.activity_key,
            activity_type=CHANGE_DATA_VALUE,
            attribute_name=activity.attribute_name,
            old_value=activity.old_value,
            new_value=activity.new_value,
            reason=activity.origin.reason,
            source=activity.origin.source,
            account_id=activity.account_id,
            system_modstamp=activity.system_modstamp,
            activity_at=activity.activity_at,
            expires_at=self._expires_at(activity.activity_at),
            sync_path=activity.path.value if activity.path else None,
        )
        serialized = item.serialize()
        for name in ("old_value", "new_value"):  # a blank is stored as NULL, never left out (docs/data-model.md)
            serialized.setdefault(name, {"NULL": True})
        return {"PutRequest": {"Item": serialized}}

    def _write_batch(self, requests: list[dict[str, Any]]) -> int:
        client = self._client or dynamodb_client()
        table = ActivityItem.Meta.table_name
        pending = requests
        for attempt in range(self._max_attempts):
            try:
                response = client.batch_write_item(RequestItems={table: pending})
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in _THROTTLING:
                    raise
                unprocessed = pending
            else:
                unprocessed = response.get("UnprocessedItems", {}).get(table, [])
            if not unprocessed:
                return len(requests)
            pending = unprocessed
            if attempt + 1 < self._max_attempts:
                self._sleep(_backoff(self._base_delay, attempt))
        # UnprocessedItems is how BatchWriteItem says it was throttled (item by item, without an error)
        raise Throttled(
            f"{len(pending)} of {len(requests)} activities still unprocessed after {self._max_attempts} attempts"
        )


class DynamoActivityHistory:
    """Pages of one subject's activities, newest first. Each request asks DynamoDB for no more items than are
    still missing, so a page never reads past what it returns and the next page starts exactly where it stopped;
    at most `max_requests` requests per page (a sparse filter returns a shorter page, with a next key)."""

    def __init__(self, max_requests: int = 10) -> None:
        self._max_requests = max_requests

    def page(
        self, subject_id: str, activity_type: str, limit: int, after_key: str | None
    ) -> tuple[list[StoredActivity], str | None]:
        # boto3: pynamodb's query iterator would keep reading past a sparse filter, `max_requests` or not
        start = {"subject_id": {"S": subject_id}, "activity_key": {"S": after_key}} if after_key else None
        found: list[StoredActivity] = []
        last_key: str | None = None
        try:
            for _ in range(self._max_requests):
                response = dynamodb_client().query(
                    TableName=ActivityItem.Meta.table_name,
                    ScanIndexForward=False,
                    Limit=limit - len(found),
                    **expressions(
                        key=ActivityItem.subject_id == subject_id, filter=ActivityItem.activity_type == activity_type
                    ),
                    **({"ExclusiveStartKey": start} if start else {}),
                )
                for raw in response.get("Items", []):
                    item = ActivityItem.from_raw_data(raw)
                    found.append(StoredActivity(item.subject_id, item.activity_key, item.attribute_values))
                start = response.get("LastEvaluatedKey")
                last_key = start["activity_key"]["S"] if start else None
                if not start or len(found) >= limit:
                    break
        except ClientError as exc:
            raise translate(exc) from exc
        return found, last_key


def _backoff(base: float, attempt: int, cap: float = 5.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not cryptography  # nosec B311


# --- sync state ----------------------------------------------------------------------------------------


class DynamoSyncStateStore:
    LEASE_ID = "lease#fetch"
    USAGE_ID = "usage#salesforce"
    FIELDS_ID = "fields#account"
    DRIFT_ID = "drift#sample"

    def __init__(self, now: Callable[[], str] = utc_now, clock: Callable[[], float] = time.time) -> None:
        self._now = now
        self._clock = clock

    @staticmethod
    def _read(state_id: str) -> SyncStateItem | None:
        """One sync-state item, strongly consistent (the last run's writes must be seen); None if absent."""
        try:
            return SyncStateItem.get(state_id, consistent_read=True)
        except SyncStateItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise translate(exc) from exc

    def load_watermark(self, sobject: str) -> str | None:
        item = self._read(f"watermark#{sobject}")
        return item.watermark if item is not None else None

    def save_watermark(self, sobject: str, watermark: str, run: Mapping[str, object]) -> None:
        item = SyncStateItem(f"watermark#{sobject}")
        try:
            item.update(
                actions=[
                    SyncStateItem.watermark.set(watermark),
                    SyncStateItem.updated_at.set(self._now()),
                    SyncStateItem.last_run.set(dict(run)),
                    SyncStateItem.window_start.remove(),
                    SyncStateItem.window_end.remove(),
                    SyncStateItem.position.remove(),
                ],
                condition=SyncStateItem.watermark.does_not_exist() | (SyncStateItem.watermark < watermark),
            )
        except UpdateError as exc:
            if not is_condition_failure(exc):  # an older run finishing late never moves it back
                raise translate(exc) from exc

    def load_stream(self, stream: str) -> StreamState:
        item = self._read(f"watermark#{stream}")
        if item is None:
            return StreamState(watermark=None)
        if item.window_start is None or item.window_end is None:
            return StreamState(watermark=item.watermark)
        raw = item.position.as_dict() if item.position is not None else {}
        position = {str(key): str(value) for key, value in raw.items()}
        progress = WindowProgress(start=item.window_start, end=item.window_end, position=position)
        return StreamState(item.watermark, progress)

    def save_progress(self, stream: str, progress: WindowProgress, run: Mapping[str, object]) -> None:
        """Unconditional: only the lease holder writes, and its lease ends before the Lambda's deadline does."""
        item = SyncStateItem(f"watermark#{stream}")
        try:
            item.update(
                actions=[
                    SyncStateItem.window_start.set(progress.start),
                    SyncStateItem.window_end.set(progress.end),
                    SyncStateItem.position.set(dict(progress.position)),
                    SyncStateItem.updated_at.set(self._now()),
                    SyncStateItem.last_run.set(dict(run)),
                ]
            )
        except UpdateError as exc:
            raise translate(exc) from exc

    def end_window(self, stream: str, run: Mapping[str, object]) -> None:
        item = SyncStateItem(f"watermark#{stream}")
        try:
            item.update(
                actions=[
                    SyncStateItem.updated_at.set(self._now()),
                    SyncStateItem.last_run.set(dict(run)),
                    SyncStateItem.window_start.remove(),
                    SyncStateItem.window_end.remove(),
                    SyncStateItem.position.remove(),
                ]
            )
        except UpdateError as exc:
            raise translate(exc) from exc

    def load_drift(self) -> DriftState | None:
        item = self._read(self.DRIFT_ID)
        if item is None:
            return None
        if item.updated_at is None:
            return None
        run = item.last_run.as_dict() if item.last_run is not None else {}
        raw = run.get("drifted") or []
        drifted = tuple({str(k): str(v) for k, v in dict(entry).items()} for entry in raw if isinstance(entry, dict))
        checked = run.get("checked")
        return DriftState(item.updated_at, item.after_id, int(checked) if checked is not None else 0, drifted)

    def save_drift(self, drift: DriftState) -> None:
        item = SyncStateItem(self.DRIFT_ID)
        run = {"checked": drift.checked, "drifted": [dict(entry) for entry in drift.drifted]}
        actions: list[Any] = [SyncStateItem.updated_at.set(drift.checked_at), SyncStateItem.last_run.set(run)]
        actions.append(
            SyncStateItem.after_id.set(drift.after_id) if drift.after_id else SyncStateItem.after_id.remove()
        )
        try:
            item.update(actions=actions)
        except UpdateError as exc:
            raise translate(exc) from exc

    def load_synced_fields(self) -> tuple[str, ...] | None:
        item = self._read(self.FIELDS_ID)
        if item is None:
            return None
        return tuple(item.synced_fields) if item.synced_fields is not None else None

    def save_synced_fields(self, fields: Sequence[str], at: str) -> None:
        item = SyncStateItem(self.FIELDS_ID)
        try:
            item.update(actions=[SyncStateItem.synced_fields.set(list(fields)), SyncStateItem.updated_at.set(at)])
        except UpdateError as exc:
            raise translate(exc) from exc

    def load_api_usage(self) -> RecordedUsage | None:
        item = self._read(self.USAGE_ID)
        if item is None:
            return None
        if item.api_used is None or item.api_limit is None or item.measured_at is None:
            return None
        return RecordedUsage(ApiUsage(used=int(item.api_used), limit=int(item.api_limit)), item.measured_at)

    def save_api_usage(self, recorded: RecordedUsage) -> None:
        item = SyncStateItem(self.USAGE_ID)
        try:
            item.update(
                actions=[
                    SyncStateItem.api_used.set(recorded.usage.used),
                    SyncStateItem.api_limit.set(recorded.usage.limit),
                    SyncStateItem.measured_at.set(recorded.measured_at),
                ]
            )
        except UpdateError as exc:
            raise translate(exc) from exc

    def acquire_lease(self, owner: str, seconds: int) -> bool:
        now = self._clock()
        item = SyncStateItem(self.LEASE_ID)
        return _update_unless_condition_fails(
            item,
            actions=[
                SyncStateItem.owner.set(owner),
                SyncStateItem.lease_expires_at.set(int(now + seconds)),
                SyncStateItem.updated_at.set(self._now()),
            ],
            condition=SyncStateItem.lease_expires_at.does_not_exist()
            | (SyncStateItem.lease_expires_at < int(now))
            | (SyncStateItem.owner == owner),
        )

    def release_lease(self, owner: str) -> None:
        item = SyncStateItem(self.LEASE_ID)
        try:
            item.update(actions=[SyncStateItem.lease_expires_at.set(0)], condition=SyncStateItem.owner == owner)
        except UpdateError as exc:
            if not is_condition_failure(exc):
                raise translate(exc) from exc
