"""The one place where the model-based suite builds the services and reads the store, for both back ends.

Everything the machine needs of the code under test goes through here: `FanOut(...)`, `LocalEdits(...)`,
`write_activities`, the repository ports, and the faults. When the fan-out's constructor or the fakes change (the
one-pipeline rewrite of issue 10), this module is the one to adapt.

Two back ends, the same machine:
- `fakes`: tests/unit/fakes.py, in memory.
- `dynamo`: the pynamodb adapters on moto, tables from template.yaml (the caller's `function_env`); every example
  uses its own id prefix, so examples never see each other's items and no table is recreated.

Faults:
- a kill after the N-th contact write: every port of the sandbox raises `SandboxKilled` (a SystemExit: no
  `except Exception` of the code sees it) from then until the queue world revives it, as after Lambda's timeout;
- throttling of a contact write: on the fakes a `TransientError` from the port; on DynamoDB a
  `ProvisionedThroughputExceededException` from the boto3 client (`faults.FaultInjector`), which the adapter
  translates;
- `UnprocessedItems` from BatchWriteItem (DynamoDB only: the fakes have no batch);
- index lag: contacts the `by_account_keys` index does not show yet (`FakeContacts.index_lag`; on DynamoDB the
  client's Query on the index drops them).

Two invocations at once: the sandbox pauses the fan-out just before its N-th store write (`Sandbox.meanwhile`), when
it has read what that write is conditioned on, and runs another invocation there, whole; the paused one then goes
on with its own batch cache (`Services.alongside`). One seam for both back ends: the ports, not the code under test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from account_sync.contracts import parse_activity_batch, parse_change_message
from account_sync.domain.records import CHANGE_DATA_VALUE, CHANGE_DATA_VALUE_SUPPRESSED
from account_sync.ports import TransientError
from account_sync.services.activity_log import write_activities
from account_sync.services.fan_out import FanOut, FanOutConfig
from account_sync.services.local_edit import LocalEdits

from tests.integration.guarantees.faults import Fault, FaultInjector, SandboxKilled, client_error, table
from tests.model.reference import Activity, Suppression, _canon
from tests.unit.fakes import FakeAccounts, FakeActivityStore, FakeContacts

SYNCED = ("Name", "Industry", "BillingCountry")
ChangeKey = tuple[str, str, str | None]  # a change: its origin, stamp, and edit id (a local edit's)
# The store writes a kill or a throttle may fall before: the contacts' (a change written onto a contact, a Contact
# version) and the account's (a version or an edit accepted, a plan recorded, a segment done, joiners noted).
STORE_WRITES = (
    "write_change",
    "apply_contact_version",
    "accept_version",
    "accept_unchanged_version",
    "apply_local_edit",
    "record_plan",
    "complete_segment",
    "mark_applied",
    "note_joiners",
)

# The contact writes conditioned on the contact as read (False: it changed since).
CONDITIONAL_CONTACT_WRITES = ("write_change", "apply_contact_version")


@dataclass
class ContactView:
    account_id: str | None
    is_deleted: bool
    fields: dict[str, Any]
    account_deleted: bool


@dataclass
class Sandbox:
    """One Lambda execution environment of the fan-out: killed after a number of contact writes, revived by the
    queue world; a throttled contact write (the fakes' way)."""

    kill_after_writes: int | None = None
    throttle_write: int | None = None
    dead: bool = False
    writes: int = 0
    # Once, after the fan-out's next read of an account (`get`, with its id): what another invocation, running at
    # the same moment, does between that read and the reader's next write (issue 10, 2.1: the leaver's window).
    after_account_read: Callable[[str], None] | None = None
    # Once, just before the fan-out's store write number `pause_before_write` (counted as `writes` counts them),
    # with the write's name: what another invocation does while this one sits between its reads and that write.
    pause_before_write: int | None = None
    meanwhile: Callable[[str], None] | None = None
    refused: int = 0  # contact writes whose condition failed (the contact changed since it was read)

    def after(self, name: str, args: tuple[Any, ...], result: Any = None) -> None:
        if name in CONDITIONAL_CONTACT_WRITES and result is False:
            self.refused += 1
        if name == "get" and args and self.after_account_read is not None:
            hook, self.after_account_read = self.after_account_read, None
            hook(args[0])

    def before(self, name: str) -> None:
        if self.dead:
            raise SandboxKilled(f"{name} after the function was killed")
        if name not in STORE_WRITES:
            return
        pause = self.pause_before_write
        if self.meanwhile is not None and pause is not None and self.writes >= pause:
            hook, self.meanwhile, self.pause_before_write = self.meanwhile, None, None
            hook(name)
        if self.kill_after_writes is not None and self.writes >= self.kill_after_writes:
            self.kill_after_writes = None
            self.dead = True
            raise SandboxKilled(f"killed before contact write {self.writes + 1}")
        if self.throttle_write is not None and self.writes >= self.throttle_write:
            self.throttle_write = None
            raise TransientError("injected: contact write throttled")
        self.writes += 1


class Guarded:
    """A port whose every call goes through the sandbox first."""

    def __init__(self, inner: Any, sandbox: Sandbox) -> None:
        self._inner = inner
        self._sandbox = sandbox

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._sandbox.before(name)
            result = attribute(*args, **kwargs)
            self._sandbox.after(name, args, result)
            return result

        return call


class Sink:
    """A publisher that hands what it is given to the queue world (`send`)."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        self._send = send

    def publish(self, messages: Any) -> None:
        for message in messages:
            self._send(message)


@dataclass
class Backend:
    name: str
    accounts: Any
    contacts: Any
    activity_store: Any
    prefix: str = ""
    index_lag: set[str] = field(default_factory=set)
    sandbox: Sandbox = field(default_factory=Sandbox)

    # faults --------------------------------------------------------------------------------------------------

    def arm_throttle(self, after_writes: int) -> None:
        self.sandbox.throttle_write = self.sandbox.writes + after_writes

    def arm_unprocessed_items(self) -> bool:
        return False

    def lag(self, contact_ids: set[str]) -> None:
        self.index_lag |= contact_ids

    def catch_up(self) -> None:
        self.index_lag.clear()

    def close(self) -> None:
        pass

    # views ---------------------------------------------------------------------------------------------------

    def contact_view(self, contact_id: str) -> ContactView | None:
        raise NotImplementedError

    def activities(self, contact_ids: list[str]) -> list[Activity]:
        raise NotImplementedError

    def suppressions(self, account_ids: list[str]) -> list[Suppression]:
        raise NotImplementedError

    # The changes (origin, stamp, edit id) whose activities were logged, and those suppressed.

    def logged_changes(self, contact_ids: list[str]) -> set[ChangeKey]:
        raise NotImplementedError

    def suppressed_changes(self, account_ids: list[str]) -> set[ChangeKey]:
        raise NotImplementedError


class FakeBackend(Backend):
    def __init__(self) -> None:
        accounts = FakeAccounts()
        contacts = FakeContacts(accounts)
        super().__init__("fakes", accounts, contacts, FakeActivityStore())
        self.index_lag = contacts.hidden_from_index  # the fakes' own switch

    def contact_view(self, contact_id: str) -> ContactView | None:
        c = self.contacts.items.get(contact_id)
        if c is None:
            return None
        return ContactView(c.account_id, c.is_deleted, dict(c.account_fields), c.account_deleted)

    def activities(self, contact_ids: list[str]) -> list[Activity]:
        wanted = set(contact_ids)
        return [
            _activity(a.contact_id, a.origin.value, a.attribute_name, a.old_value, a.new_value, a.system_modstamp)
            for a in self.activity_store.activities.values()
            if a.contact_id in wanted
        ]

    def suppressions(self, account_ids: list[str]) -> list[Suppression]:
        wanted = set(account_ids)
        return [
            Suppression(s.account_id, s.origin.value, s.system_modstamp, tuple(s.changed_fields))
            for s in self.activity_store.suppressions.values()
            if s.account_id in wanted
        ]

    def logged_changes(self, contact_ids: list[str]) -> set[ChangeKey]:
        wanted = set(contact_ids)
        return {
            (a.origin.value, a.system_modstamp, a.change_id)
            for a in self.activity_store.activities.values()
            if a.contact_id in wanted
        }

    def suppressed_changes(self, account_ids: list[str]) -> set[ChangeKey]:
        wanted = set(account_ids)
        return {
            (s.origin.value, s.system_modstamp, s.change_id)
            for s in self.activity_store.suppressions.values()
            if s.account_id in wanted
        }


class DynamoBackend(Backend):
    """The pynamodb adapters; the caller has bound the tables (moto, `function_env`)."""

    def __init__(self, prefix: str) -> None:
        from account_sync.adapters.dynamodb import (
            DynamoAccountRepository,
            DynamoActivityStore,
            DynamoContactRepository,
        )

        super().__init__(
            "dynamo",
            DynamoAccountRepository(),
            DynamoContactRepository(),
            DynamoActivityStore(sleep=lambda seconds: None),
            prefix=prefix,
        )
        self._monkeypatch = pytest.MonkeyPatch()
        self.faults = FaultInjector(self._monkeypatch)
        self.faults.add(Fault("dynamodb", "Query", self._lagging_query, when=_on_index("by_account_keys")))

    def arm_throttle(self, after_writes: int) -> None:
        self.faults.add(
            Fault(
                "dynamodb",
                "UpdateItem",
                client_error("ProvisionedThroughputExceededException"),
                when=table("-contacts"),
                after=after_writes,
                times=1,
            )
        )

    def arm_unprocessed_items(self) -> bool:
        self.faults.add(Fault("dynamodb", "BatchWriteItem", _unprocessed_after_first, times=2))
        return True

    def close(self) -> None:
        self._monkeypatch.undo()

    def _lagging_query(self, operation: str, params: dict[str, Any], call: Callable[..., Any]) -> Any:
        """The index does not show the lagging contacts yet: dropped from the items and from a COUNT."""
        if not self.index_lag:
            return call()
        counting = params.get("Select") == "COUNT"
        sent = {k: v for k, v in params.items() if k != "Select"} if counting else params
        response = dict(call(sent))
        items = [item for item in response.get("Items", []) if item["contact_id"]["S"] not in self.index_lag]
        response["Count"] = len(items)
        if counting:
            response.pop("Items", None)
        else:
            response["Items"] = items
        return response

    def contact_view(self, contact_id: str) -> ContactView | None:
        from account_sync.adapters.dynamodb_models import ContactItem

        try:
            item = ContactItem.get(contact_id, consistent_read=True)
        except ContactItem.DoesNotExist:
            return None
        raw = item.account_fields.as_dict() if hasattr(item.account_fields, "as_dict") else dict(item.account_fields)
        return ContactView(
            item.account_id, bool(item.is_deleted), {k: _canon(v) for k, v in raw.items()}, bool(item.account_deleted)
        )

    def activities(self, contact_ids: list[str]) -> list[Activity]:
        from account_sync.adapters.dynamodb_models import ActivityItem

        found = []
        for contact_id in contact_ids:
            for item in ActivityItem.query(contact_id, consistent_read=True):
                if item.activity_type != CHANGE_DATA_VALUE:
                    continue
                origin = item.activity_key.split("#")[1]  # <stamp>#<origin>#<field> (docs/data-model.md)
                found.append(
                    _activity(
                        contact_id, origin, item.attribute_name, item.old_value, item.new_value, item.system_modstamp
                    )
                )
        return found

    def logged_changes(self, contact_ids: list[str]) -> set[ChangeKey]:
        """From each activity's key, `<stamp>#<origin>#<field>[#<edit id>]` (docs/data-model.md)."""
        from account_sync.adapters.dynamodb_models import ActivityItem

        found = set()
        for contact_id in contact_ids:
            for item in ActivityItem.query(contact_id, consistent_read=True):
                if item.activity_type == CHANGE_DATA_VALUE:
                    stamp, origin, *rest = item.activity_key.split("#")
                    found.add((origin, stamp, rest[1] if len(rest) > 1 else None))
        return found

    def suppressed_changes(self, account_ids: list[str]) -> set[ChangeKey]:
        """From each suppression's key: `<stamp>#suppressed`, `<stamp>#local#<fields>[#<edit id>]#suppressed`."""
        from account_sync.adapters.dynamodb_models import ActivityItem

        found = set()
        for account_id in account_ids:
            for item in ActivityItem.query(account_id, consistent_read=True):
                if item.activity_type == CHANGE_DATA_VALUE_SUPPRESSED:
                    stamp, *rest = item.activity_key.split("#")
                    if rest[0] == "local":
                        found.add(("local", stamp, rest[2] if len(rest) > 3 else None))
                    else:
                        found.add(("account", stamp, None))
        return found

    def suppressions(self, account_ids: list[str]) -> list[Suppression]:
        from account_sync.adapters.dynamodb_models import ActivityItem

        found = []
        for account_id in account_ids:
            for item in ActivityItem.query(account_id, consistent_read=True):
                if item.activity_type == CHANGE_DATA_VALUE_SUPPRESSED:
                    origin = "local" if item.source == "local" else "account"
                    found.append(
                        Suppression(account_id, origin, item.system_modstamp, tuple(item.changed_fields or ()))
                    )
        return found


def _activity(contact_id: str, origin: str, attribute: Any, old: Any, new: Any, stamp: str) -> Activity:
    return Activity(contact_id, origin, str(attribute), old, new, None if origin == "contact" else stamp)


def _on_index(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda params: params.get("IndexName") == name


def _unprocessed_after_first(operation: str, params: dict[str, Any], call: Callable[..., Any]) -> Any:
    """DynamoDB takes the first item of the batch and hands the others back as UnprocessedItems."""
    ((table_name, requests),) = params["RequestItems"].items()
    if len(requests) < 2:
        return call()
    response = dict(call({"RequestItems": {table_name: requests[:1]}}))
    response["UnprocessedItems"] = {table_name: requests[1:]}
    return response


@dataclass
class Services:
    fan_out: FanOut
    local_edits: LocalEdits
    apply_change: Callable[[str], object]
    apply_activity: Callable[[str], object]
    begin_batch: Callable[[], None]
    # Around another invocation run while one is paused: the paused one then goes on with its own batch cache (as
    # read before the other ran: a real invocation's cache is its own).
    alongside: Callable[[], AbstractContextManager[None]]


def build_services(
    backend: Backend,
    now: Callable[[], str],
    threshold: int,
    segment_size: int,
    send_change: Callable[[Any], None],
    send_activity: Callable[[Any], None],
    send_edit: Callable[[Any], None],
) -> Services:
    """The fan-out (its ports in the sandbox), the API's local edits and the logging step, on `backend`."""
    sandbox = backend.sandbox
    plan_numbers = itertools.count()
    fan_out = FanOut(
        accounts=Guarded(backend.accounts, sandbox),
        contacts=Guarded(backend.contacts, sandbox),
        changes=Guarded(Sink(send_change), sandbox),
        activities=Guarded(Sink(send_activity), sandbox),
        activity_store=Guarded(backend.activity_store, sandbox),
        config=FanOutConfig(synced_fields=SYNCED, activity_threshold=threshold, segment_size=segment_size),
        now=now,
        # Segments' groups are named by their plan: numbered, so that Hypothesis replays (and shrinks) an example
        # with the same groups in the same order.
        new_plan_id=lambda: f"p{next(plan_numbers):05d}",
    )
    local_edits = LocalEdits(
        contacts=backend.contacts,
        accounts=backend.accounts,
        changes=Sink(send_edit),
        synced_fields=SYNCED,
        now=now,
    )

    def apply_activity(body: str) -> object:
        return write_activities(parse_activity_batch(body), backend.activity_store, now)

    # As the handler does: each invocation is a batch of its own, with its own cache of the accounts it reads.
    current = [fan_out.batch()]

    def begin_batch() -> None:
        current[0] = fan_out.batch()

    def apply_change_in_batch(body: str) -> object:
        return current[0].apply(parse_change_message(body))

    @contextmanager
    def alongside() -> Iterator[None]:
        paused = current[0]
        try:
            yield
        finally:
            current[0] = paused

    return Services(fan_out, local_edits, apply_change_in_batch, apply_activity, begin_batch, alongside)
