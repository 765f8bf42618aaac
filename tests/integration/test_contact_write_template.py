"""The fan-out's contact write from a change's template (`ExpressionTemplate`) against the write it replaced, which
built and serialized pynamodb's expression objects for every contact: the same request, argument for argument, and
on moto the same outcome and the same item, across versions, resyncs, kept fields, revisions, awkward names and
values, and several contacts and changes through one repository (the templates are cached per change)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from account_sync.adapters import dynamodb as adapter
from account_sync.adapters.dynamodb import DynamoContactRepository, _outbox_item, expressions
from account_sync.adapters.dynamodb_models import ContactItem, dynamodb_client
from account_sync.domain.changes import AccountChange, OutboxEntry
from account_sync.domain.fields import FieldChange, FieldValue
from account_sync.domain.records import AccountVersion, ChangeOrigin, ChangeRef, SyncPath
from account_sync.ports import ContactSnapshot, PermanentFailure
from account_sync.settings import load_settings
from account_sync.wiring import bind_store
from botocore.exceptions import ClientError, ParamValidationError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pynamodb.constants import ATTRIBUTE_TYPES

ACCOUNT = "001000000000000001"
STAMPS = [f"2026-12-05T00:00:0{n}.000Z" for n in range(5)]
AWKWARD_NAMES = ["Name", "AnnualRevenue", "Billing.City", "#x", ":v", "a b", "S", "M", "NULL", "Ünï", "x" * 40]
names = st.one_of(st.sampled_from(AWKWARD_NAMES), st.text(min_size=1, max_size=6))
values: st.SearchStrategy[FieldValue] = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.integers(-(10**12), 10**12),
    st.floats(-1e9, 1e9, allow_nan=False),
    st.booleans(),
)


def reference_request(
    contact_id: str,
    change: AccountChange,
    changes: Sequence[FieldChange],
    kept: Mapping[str, tuple[FieldValue, OutboxEntry]],
    as_read: ContactSnapshot,
    now: str,
) -> dict[str, Any]:
    """The version's write as read as `write_change` built it before templates (main at 2b84d8c): pynamodb's
    actions and conditions for this contact, serialized."""
    version = change.version
    assert version is not None
    entries = {
        fc.field: _outbox_item(OutboxEntry(change.ref, fc.old, change.base_modstamp, change.path)) for fc in changes
    }
    if not change.rewrites_own_stamp:
        newer = ContactItem.account_modstamp < change.guard_modstamp
    else:
        newer = ContactItem.account_modstamp <= change.guard_modstamp
    condition = (ContactItem.account_id == change.account_id) & (ContactItem.account_modstamp.does_not_exist() | newer)
    seen = as_read.revision
    condition &= ContactItem.revision.does_not_exist() if seen is None else ContactItem.revision == seen
    fields = {**version.fields, **{name: value for name, (value, _) in kept.items()}}
    entries |= {name: _outbox_item(entry) for name, (_, entry) in kept.items()}
    actions = [
        ContactItem.account_fields.set(fields),
        ContactItem.account_modstamp.set(version.system_modstamp),
        ContactItem.account_previous_values.set(entries),
        ContactItem.account_fields_source.set("salesforce"),
        ContactItem.account_deleted.set(version.is_deleted),
        ContactItem.updated_at.set(now),
        ContactItem.revision.add(1),
    ]
    return {
        "TableName": ContactItem.Meta.table_name,
        "Key": {"contact_id": {"S": contact_id}},
        **expressions(actions, condition),
    }


@dataclass(frozen=True)
class Write:
    """One contact's write of one of the example's changes: the contact as read, what changed, what is kept."""

    change: int
    as_read: ContactSnapshot
    changes: tuple[FieldChange, ...]
    kept: Mapping[str, tuple[FieldValue, OutboxEntry]]


@st.composite
def changes_and_writes(draw: st.DrawFn) -> tuple[list[AccountChange], list[Write]]:
    """One or two changes (versions or resyncs, of any fields) and contacts written by them, interleaved."""
    changes = []
    for _ in range(draw(st.integers(1, 2))):
        fields = draw(st.dictionaries(names, values, max_size=5))
        version = AccountVersion(ACCOUNT, draw(st.sampled_from(STAMPS[1:])), draw(st.booleans()), fields)
        resync = draw(st.one_of(st.none(), st.just("r1")))
        path = draw(st.one_of(st.none(), st.sampled_from(SyncPath)))
        changes.append(AccountChange.of_version(version, resync_id=resync, path=path))
    writes = []
    for n in range(draw(st.integers(1, 4))):
        k = draw(st.integers(0, len(changes) - 1))
        version = changes[k].version
        assert version is not None
        field_names = list(version.fields)
        kept_names = draw(st.lists(st.sampled_from(field_names), unique=True)) if field_names else []
        changed_names = [name for name in field_names if name not in kept_names and draw(st.booleans())]
        kept = {
            name: (
                draw(values),
                OutboxEntry(
                    ChangeRef(ChangeOrigin.LOCAL, draw(st.sampled_from(STAMPS)), draw(st.sampled_from(["e1", "e2"]))),
                    draw(values),
                    version.system_modstamp,
                    SyncPath.API,
                ),
            )
            for name in kept_names
        }
        as_read = ContactSnapshot(
            contact_id=f"003{n:015d}",
            account_fields={},
            account_modstamp=draw(st.one_of(st.none(), st.sampled_from(STAMPS))),
            account_deleted=False,
            account_id=ACCOUNT,
            revision=draw(st.one_of(st.none(), st.integers(0, 3))),
        )
        diffs = tuple(FieldChange(name, draw(values), version.fields[name]) for name in changed_names)
        writes.append(Write(k, as_read, diffs, kept))
    return changes, writes


class Recorder:
    """The adapter's client, its UpdateItem arguments recorded; sent on to `send` (moto) or answered with {}."""

    def __init__(self, send: Any = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self._send = send

    def update_item(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        return self._send.update_item(**kwargs) if self._send is not None else {}


def clock() -> tuple[Any, list[str]]:
    told: list[str] = []
    counter = itertools.count()

    def now() -> str:
        told.append(f"2026-12-05T04:00:00.{next(counter):03d}Z")
        return told[-1]

    return now, told


@settings(max_examples=300, deadline=None)
@given(changes_and_writes())
def test_a_templated_write_is_the_request_pynamodb_builds_for_that_contact(
    example: tuple[list[AccountChange], list[Write]],
) -> None:
    changes, writes = example
    recorder = Recorder()
    now, told = clock()
    contacts = DynamoContactRepository(now=now)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter, "dynamodb_client", lambda: recorder)
        for write in writes:
            contacts.write_change(
                write.as_read.contact_id, changes[write.change], write.changes, write.kept, as_read=write.as_read
            )
            expected = reference_request(
                write.as_read.contact_id, changes[write.change], write.changes, write.kept, write.as_read, told[-1]
            )
            assert recorder.requests[-1] == expected


# --- on moto: the same outcome, the same item ---------------------------------------------------------------

ids = itertools.count()


def stored_item(contact_id: str, as_read: ContactSnapshot, drift: str) -> dict[str, Any]:
    """The contact as the table holds it when the write comes: as read, or moved on since in one way."""
    item: dict[str, Any] = {
        "contact_id": {"S": contact_id},
        "account_id": {"S": ACCOUNT if drift != "left" else "001000000000000002"},
        "account_fields": {"M": {"Name": {"S": "held"}}},
        "account_previous_values": {"M": {"Name": {"M": {"origin": {"S": "account"}, "stamp": {"S": STAMPS[0]}}}}},
    }
    revision = as_read.revision
    if drift == "written since":
        revision = (revision or 0) + 1
    if revision is not None:
        item["revision"] = {"N": str(revision)}
    modstamp = "2026-12-05T00:00:09.000Z" if drift == "newer version" else as_read.account_modstamp
    if modstamp is not None:
        item["account_modstamp"] = {"S": modstamp}
    return item


def outcome(send: Any) -> object:
    try:
        send()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "landed"


def misread_by_pynamodb(change: AccountChange, write: Write) -> bool:
    """A map of one entry named after a DynamoDB type (`{"S": ...}`): pynamodb takes it for a value already
    serialized, on both paths alike (the requests are compared above), and sends what DynamoDB refuses and moto
    in-process fails on. A known limit: no Salesforce field is named so."""
    assert change.version is not None
    sent = [{**change.version.fields, **write.kept}, {**{fc.field: 0 for fc in write.changes}, **write.kept}]
    return any(len(names) == 1 and next(iter(names)) in ATTRIBUTE_TYPES for names in sent)


@pytest.fixture
def store(function_env: dict[str, str]) -> None:
    bind_store(load_settings())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes_and_writes(), st.lists(st.sampled_from(["as read", "written since", "newer version", "left"])))
def test_on_moto_a_templated_write_and_pynamodbs_land_alike_and_leave_the_same_item(
    store: None, example: tuple[list[AccountChange], list[Write]], drifts: list[str]
) -> None:
    changes, writes = example
    assume(not any(misread_by_pynamodb(changes[write.change], write) for write in writes))
    client = dynamodb_client()
    table = ContactItem.Meta.table_name
    now, told = clock()
    contacts = DynamoContactRepository(now=now)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter, "dynamodb_client", lambda: Recorder(send=client))
        _write_both_ways(contacts, client, table, changes, writes, drifts, told)


def _write_both_ways(
    contacts: DynamoContactRepository,
    client: Any,
    table: str,
    changes: list[AccountChange],
    writes: list[Write],
    drifts: list[str],
    told: list[str],
) -> None:
    for write, drift in zip(writes, itertools.chain(drifts, itertools.repeat("as read")), strict=False):
        fast_id, reference_id = f"fast-{next(ids)}", f"reference-{next(ids)}"
        for contact_id in (fast_id, reference_id):
            client.put_item(TableName=table, Item=stored_item(contact_id, write.as_read, drift))
        change = changes[write.change]

        def fast(change: AccountChange = change, write: Write = write, fast_id: str = fast_id) -> None:
            if not contacts.write_change(fast_id, change, write.changes, write.kept, as_read=write.as_read):
                raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")

        landed = outcome(fast)
        request = reference_request(reference_id, change, write.changes, write.kept, write.as_read, told[-1])
        assert landed == outcome(lambda request=request: client.update_item(**request))
        assert landed != "landed" or drift == "as read"
        held = [
            client.get_item(TableName=table, Key={"contact_id": {"S": contact_id}}, ConsistentRead=True)["Item"]
            for contact_id in (fast_id, reference_id)
        ]
        assert [{k: v for k, v in item.items() if k != "contact_id"} for item in held] == [
            {k: v for k, v in held[1].items() if k != "contact_id"}
        ] * 2


def test_a_write_dynamodb_refuses_is_a_permanent_failure_without_botocores_validation(store: None) -> None:
    # given the store's client, which leaves the requests' validation to DynamoDB (its CPU per contact write)
    client, table = dynamodb_client(), ContactItem.Meta.table_name
    with pytest.raises(Exception) as refused:
        client.get_item(TableName=table)  # no Key: sent, and failed by moto
    assert not isinstance(refused.value, ParamValidationError)
    as_read = ContactSnapshot("003-large", {}, None, False, account_id=ACCOUNT)
    client.put_item(TableName=table, Item=stored_item(as_read.contact_id, as_read, "as read"))
    # when a version's write makes the item larger than DynamoDB takes
    version = AccountVersion(ACCOUNT, STAMPS[1], False, {"Description": "x" * 410_000})
    write = AccountChange.of_version(version)
    # then it is refused as invalid, a permanent failure (the message is dead-lettered, not retried for ever)
    with pytest.raises(PermanentFailure):
        DynamoContactRepository().write_change(as_read.contact_id, write, [], as_read=as_read)


@pytest.mark.parametrize(
    ("fields", "changed"),
    [({"S": None}, []), ({"Name": "A", "NULL": None}, ["NULL"]), ({"M": "x"}, [])],
    ids=["SET of None: a REMOVE", "outbox of one type-named entry", "fields of one type-named entry"],
)
def test_where_pynamodb_writes_other_expressions_for_a_contacts_values_the_write_is_built_in_full(fields, changed):
    # given a version whose values pynamodb reads as another expression (see `NotTemplatable`)
    change = AccountChange.of_version(AccountVersion(ACCOUNT, STAMPS[1], False, fields))
    recorder, (now, told) = Recorder(), clock()
    contacts = DynamoContactRepository(now=now)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter, "dynamodb_client", lambda: recorder)
        for n, revision in enumerate([None, 1, 2]):
            as_read = ContactSnapshot(f"003-{n}", {}, STAMPS[0], False, account_id=ACCOUNT, revision=revision)
            diffs = [FieldChange(name, "before", None) for name in changed]
            # when contacts are written, then each request is the one pynamodb builds in full
            contacts.write_change(as_read.contact_id, change, diffs, {}, as_read=as_read)
            expected = reference_request(as_read.contact_id, change, diffs, {}, as_read, told[-1])
            assert recorder.requests[-1] == expected
