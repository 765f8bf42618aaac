"""The push path in the model-based suite (issue 13; switch `PUSH_EVENTS`): Salesforce's records as they are now,
the Change Data Capture events Event Relay delivers for each committed change, the real push service reading them,
and the fetch's poll as the net.

With the switch on, a Salesforce change of the machine is no longer queued at once by the fetch: it is committed
to `ModelSalesforce` (rows as the REST API returns them), which publishes its change event (only the changed
fields; several records of one transaction in one event when their change is the same; `changeOrigin` naming
Account Sync's own API client for its own changes). Two paths then bring it to the store, in any interleaving with
the fan-out's messages and local edits:
- the push function (`push_changes` on the events the relay hands over: any order, duplicates, gaps, overflows,
  events lost), which reads the records again by id and queues the fetch's own messages;
- the poll (`PushEvents.polled`), which queues every record changed since it last read it, with the fetch's own
  `account_messages` / `contact_messages`.

Like the machine's own rules, both queue a record only behind nothing of its groups while the families of issue 10,
2.1 are off (`Switches.CONTACTS_IN_SAME_WINDOW`, `CHANGE_OVERTAKES_SEGMENTS`); what cannot go now waits for a later
run. `polled_quiet_point` polls until nothing is left and then checks, besides the reference model, that the store
holds every record's newest Salesforce version.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from account_sync.change_events import ACCOUNT_SYNC_CLIENT_ID, GAP_PREFIX, OVERFLOW, parse_change_event
from account_sync.contracts import ContactChangesMessage, contact_group
from account_sync.domain.records import AccountVersion, ContactVersion
from account_sync.ports import ApiUsage
from account_sync.services.fetch_changes import (
    CONTACT_FIELDS,
    account_messages,
    contact_messages,
    contact_version,
)
from account_sync.services.push_changes import PushConfig, push_changes
from account_sync.settings import SYSTEM_ACCOUNT_FIELDS
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from tests.model.wiring import SYNCED
from tests.unit.fakes import FakeSyncState

if TYPE_CHECKING:
    from tests.model.machine import Switches
    from tests.model.queues import QueueWorld
    from tests.model.reference import ReferenceModel

# A change made through Account Sync's own API client (Convert Person): Salesforce names the client of the call.
OWN_ORIGIN = f"com/salesforce/api/rest/62.0;client={ACCOUNT_SYNC_CLIENT_ID}"
USER_ORIGIN = ""  # a change made in Salesforce's user interface: no API client
# What the push rules did, over every example (make chaos prints it): how much of the push path was exercised.
PUSHED: Counter[str] = Counter()


def salesforce_id(key_prefix: str, name: str) -> str:
    """A 15-character Salesforce id ending with a readable `name` (the push path reads only real record ids)."""
    if len(name) > 12:
        raise ValueError(f"{name!r}: too long for a record id")
    return key_prefix + name.rjust(12, "0")


@dataclass(frozen=True)
class Change:
    """One committed record change, as its event tells it."""

    entity: str
    record_id: str
    change_type: str  # CREATE, UPDATE, DELETE
    changed: tuple[tuple[str, object], ...]  # the changed fields and their new values (an event carries no others)
    origin: str


def account_row(version: AccountVersion) -> dict[str, object]:
    return {
        "Id": version.account_id,
        "SystemModstamp": version.system_modstamp,
        "IsDeleted": version.is_deleted,
        **version.fields,
    }


def contact_row(version: ContactVersion) -> dict[str, object]:
    return {
        "Id": version.contact_id,
        "AccountId": version.account_id,
        "FirstName": version.first_name,
        "LastName": version.last_name,
        "Email": version.email,
        "SystemModstamp": version.system_modstamp,
        "IsDeleted": version.is_deleted,
    }


class ModelSalesforce:
    """Salesforce's Accounts and Contacts as they are now, read by id as `SalesforceRestSource.records_by_id` reads
    them (deleted rows too, one call per 200 ids), and the relay's events not delivered yet."""

    IDS_PER_QUERY = 200

    def __init__(self, publish_events: bool) -> None:
        self.publish_events = publish_events
        self.rows: dict[str, dict[str, dict[str, object]]] = {"Account": {}, "Contact": {}}
        self.unpolled: dict[str, dict[str, None]] = {"Account": {}, "Contact": {}}  # changed since the poll read them
        self.events: list[dict[str, Any]] = []  # published by Salesforce, not delivered by the relay yet
        self.origin = USER_ORIGIN
        self.calls = 0
        self._transaction: list[Change] | None = None
        self._commits = itertools.count(1)

    # --- changes and their events -----------------------------------------------------------------------------

    def commit(self, entity: str, row: dict[str, object]) -> None:
        """A record written: the row as it is now, the poll's to read, and its event (alone, or with the rest of
        the transaction in progress)."""
        record_id = str(row["Id"])
        before = self.rows[entity].get(record_id)
        self.rows[entity][record_id] = dict(row)
        self.unpolled[entity][record_id] = None
        if not self.publish_events:
            return
        carried = [name for name in row if name not in ("Id", "SystemModstamp", "IsDeleted")]
        if before is None:
            change_type, changed = "CREATE", [name for name in carried if row[name] is not None]
        elif row["IsDeleted"]:
            change_type, changed = "DELETE", []
        else:
            change_type, changed = "UPDATE", [name for name in carried if before.get(name) != row[name]]
        change = Change(entity, record_id, change_type, tuple((name, row[name]) for name in changed), self.origin)
        if self._transaction is not None:
            self._transaction.append(change)
        else:
            self._publish([change])

    @contextmanager
    def transaction(self, origin: str = USER_ORIGIN) -> Iterator[None]:
        """Changes committed together: one event for the records whose change is the same (CDC's several
        `recordIds`), in commit order."""
        self._transaction, self.origin = [], origin
        try:
            yield
        finally:
            changes, self._transaction, self.origin = self._transaction, None, USER_ORIGIN
            self._publish(changes)

    def _publish(self, changes: list[Change]) -> None:
        same: dict[tuple[str, str, tuple[tuple[str, object], ...], str], list[str]] = {}
        for change in changes:
            same.setdefault((change.entity, change.change_type, change.changed, change.origin), []).append(
                change.record_id
            )
        for (entity, change_type, changed, origin), record_ids in same.items():
            self.events.append(self._event(entity, record_ids, change_type, dict(changed), origin))

    def _event(
        self, entity: str, record_ids: list[str], change_type: str, values: dict[str, object], origin: str
    ) -> dict[str, Any]:
        """The EventBridge event Event Relay puts on the partner event source (tests/unit/test_push_changes.py)."""
        commit = next(self._commits)
        header = {
            "entityName": entity,
            "recordIds": record_ids,
            "changeType": change_type,
            "changedFields": sorted(values) if change_type == "UPDATE" else [],
            "nulledFields": sorted(n for n, v in values.items() if v is None) if change_type == "UPDATE" else [],
            "diffFields": [],
            "changeOrigin": origin,
            "transactionKey": f"tx-{commit}",
            "sequenceNumber": 1,
            "commitTimestamp": 1796032860000 + commit,  # Salesforce's commit clock: never a SystemModstamp
            "commitNumber": commit,
            "commitUser": "005000000000001AAA",
        }
        return {
            "version": "0",
            "id": f"event-{commit}",
            "detail-type": f"{entity}ChangeEvent",
            "source": "aws.partner/salesforce.com/00D000000000001EAA/0YL000000000001GAA",
            "detail": {"payload": {"ChangeEventHeader": header, **values}, "replayId": str(commit)},
        }

    # --- the relay's faults -----------------------------------------------------------------------------------

    def pick(self, indexes: Sequence[int]) -> list[int]:
        """Positions of pending events, in the order given (the relay's order, not Salesforce's), each once."""
        return list(dict.fromkeys(i % len(self.events) for i in indexes)) if self.events else []

    def take(self, positions: Sequence[int], duplicate: bool) -> list[dict[str, Any]]:
        """Events delivered; with `duplicate` they stay and are delivered again later (at least once)."""
        taken = [self.events[i] for i in positions]
        if not duplicate:
            self.events = [e for i, e in enumerate(self.events) if i not in set(positions)]
        return taken

    def become_gap(self, position: int) -> None:
        """A gap event: the header only (its records named, no value, no changed field)."""
        header = dict(self.events[position]["detail"]["payload"]["ChangeEventHeader"])
        if not header["changeType"].startswith(GAP_PREFIX):
            header.update(changeType=GAP_PREFIX + header["changeType"], changedFields=[], nulledFields=[])
        self.events[position] = {**self.events[position], "detail": {"payload": {"ChangeEventHeader": header}}}

    def overflow(self, positions: Sequence[int]) -> None:
        """Too many changes for the relay: these events are replaced by one overflow event naming no record."""
        entity = self.events[positions[0]]["detail"]["payload"]["ChangeEventHeader"]["entityName"]
        self.take(positions, duplicate=False)
        self.events.append(self._event(entity, [], OVERFLOW, {}, USER_ORIGIN))

    # --- the push function's read -------------------------------------------------------------------------------

    def records_by_id(
        self, sobject: str, fields: Sequence[str], record_ids: Sequence[str]
    ) -> Iterator[Mapping[str, object]]:
        bad = [i for i in record_ids if not (len(i) in (15, 18) and i.isalnum())]
        if bad:
            raise ValueError(f"not Salesforce record ids: {bad[:3]!r}")
        for first in range(0, len(record_ids), self.IDS_PER_QUERY):
            self.calls += 1
            for record_id in record_ids[first : first + self.IDS_PER_QUERY]:
                row = self.rows[sobject].get(record_id)
                if row is not None:
                    yield {name: row.get(name) for name in fields}

    @property
    def api_usage(self) -> ApiUsage | None:
        return None  # the budget is the unit tests' (tests/unit/test_push_changes.py)

    @property
    def api_calls(self) -> int:
        return self.calls


class PushEvents:
    """The rules of the `PUSH_EVENTS` family, mixed into `FanOutMachine` as `PushMachine`; the machine provides the
    attributes below and its helpers (`account_ids`, `new_account_version`, `group_free`, `quiet_point`...)."""

    SWITCHES: Switches
    queues: QueueWorld
    reference: ReferenceModel
    salesforce: ModelSalesforce
    sf_accounts: dict[str, dict]
    sf_contacts: dict[str, dict]
    prefix: str

    # --- Salesforce: changes of several records in one transaction, Account Sync's own -----------------------

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS)
    @rule(
        accounts=st.lists(st.integers(0, 30), min_size=2, max_size=3, unique=True),
        fields=st.lists(st.sampled_from(SYNCED), min_size=1, max_size=3, unique=True),
    )
    def accounts_changed_in_one_transaction(self, accounts: list[int], fields: list[str]) -> None:
        """A mass update: the same new value on several accounts, one event naming them all."""
        live = self.live_accounts()  # type: ignore[attr-defined]
        value = f"mass update {self.tick()}"  # type: ignore[attr-defined]  # new to every account: the same change
        with self.salesforce.transaction():
            for account_id in dict.fromkeys(live[n % len(live)] for n in accounts) if live else ():
                self.new_account_version(account_id, dict.fromkeys(fields, value))  # type: ignore[attr-defined]

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS)
    @rule(contacts=st.lists(st.integers(0, 30), min_size=2, max_size=3), account=st.integers(-1, 30))
    def contacts_moved_in_one_transaction(self, contacts: list[int], account: int) -> None:
        """A mass transfer of contacts to one account (or to none): one event naming them all."""
        live = self.live_contacts()  # type: ignore[attr-defined]
        accounts = self.live_accounts()  # type: ignore[attr-defined]
        if not live or (account >= 0 and not accounts):
            return
        account_id = accounts[account % len(accounts)] if account >= 0 else None
        with self.salesforce.transaction():
            for contact_id in dict.fromkeys(live[n % len(live)] for n in contacts):
                if self.sf_contacts[contact_id]["account"] != account_id:
                    self.new_contact_version(contact_id, account_id)  # type: ignore[attr-defined]

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS)
    @rule(name=st.sampled_from(["a", "b", None]))
    def person_converted(self, name: object) -> None:
        """Convert Person (R5): Account Sync itself creates an Account and its Contact in Salesforce; their events
        name Account Sync's API client in `changeOrigin`."""
        account_id = salesforce_id("001", f"{self.prefix}P{len(self.sf_accounts)}")
        self.sf_accounts[account_id] = {"fields": {}, "deleted": False, "versions": []}
        with self.salesforce.transaction(origin=OWN_ORIGIN):
            self.new_account_version(account_id, {**dict.fromkeys(SYNCED), "Name": name})  # type: ignore[attr-defined]
            self.new_contact_version(self.new_contact_id(), account_id)  # type: ignore[attr-defined]

    # --- the relay and the push function ---------------------------------------------------------------------

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS and self.salesforce.events)
    @rule(start=st.integers(0, 50), size=st.integers(1, 10), reverse=st.booleans(), duplicate=st.booleans())
    def push_invoked(self, start: int, size: int, reverse: bool, duplicate: bool) -> None:
        """The relay hands the push function a batch of events (up to 10), in its order or reversed, from any
        point of what it holds; with `duplicate` they are delivered again later. An event whose records may not be
        queued now (see the module) stays for a later batch."""
        self._relay_batch(start, size, reverse, duplicate, fan_out_first=False)

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS and self.salesforce.events)
    @rule(start=st.integers(0, 50), size=st.integers(1, 10), reverse=st.booleans(), duplicate=st.booleans())
    def push_invoked_after_the_fan_out(self, start: int, size: int, reverse: bool, duplicate: bool) -> None:
        """As `push_invoked`, the relay slower than the queue: the fan-out has first worked through the groups of
        the records the batch names (a rule of its own, so that batches which can be read come often)."""
        self._relay_batch(start, size, reverse, duplicate, fan_out_first=True)

    def _relay_batch(self, start: int, size: int, reverse: bool, duplicate: bool, fan_out_first: bool) -> None:
        picked = self.salesforce.pick(range(start, start + size))
        picked = picked[::-1] if reverse else picked
        if fan_out_first:
            for group in sorted({g for p in picked for g in self._groups_named(p)}):
                for _ in range(50):  # each call redelivers until its group is free or a message dead-letters
                    if not self.queues.pending_in(group):
                        break
                    self.queues.deliver_changes(group, 10)
        positions = self._queueable_now(picked)
        self._push(self.salesforce.take(positions, duplicate))

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS and self.salesforce.events)
    @rule(indexes=st.lists(st.integers(0, 50), min_size=1, max_size=5))
    def events_become_gaps(self, indexes: list[int]) -> None:
        for position in self.salesforce.pick(indexes):
            self.salesforce.become_gap(position)

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS and self.salesforce.events)
    @rule(indexes=st.lists(st.integers(0, 50), min_size=1, max_size=5))
    def events_overflow(self, indexes: list[int]) -> None:
        self.salesforce.overflow(self.salesforce.pick(indexes))

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS and self.salesforce.events)
    @rule(indexes=st.lists(st.integers(0, 50), min_size=1, max_size=5))
    def relay_loses_events(self, indexes: list[int]) -> None:
        """The relay down longer than Salesforce keeps events (or stopped): they are never delivered."""
        self.salesforce.take(self.salesforce.pick(indexes), duplicate=False)

    def _push(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        nudges = [parse_change_event(json.dumps(event)) for event in events]
        calls_before = self.salesforce.calls
        publisher = _Tagged(self.queues)
        report = push_changes(
            nudges,
            self.salesforce,
            publisher,
            FakeSyncState(),
            PushConfig(SYNCED, None, ACCOUNT_SYNC_CLIENT_ID),
            now=self.now,  # type: ignore[attr-defined]
        )
        own = sum(e["detail"]["payload"]["ChangeEventHeader"]["changeOrigin"] == OWN_ORIGIN for e in events)
        named = {n.sobject for n in nudges if n.record_ids}
        # Account Sync's own changes are told apart; one read per object named (a batch holds at most 10 events).
        assert report.own_origin == own, f"own-origin events counted {report.own_origin}, sent {own}"
        calls = self.salesforce.calls - calls_before
        named_now = {
            (record_id, self.salesforce.rows[n.sobject][record_id]["SystemModstamp"])
            for n in nudges
            for record_id in n.record_ids
        }
        # Each record named is queued as it is now, once (a duplicate event or id reads it once).
        assert sorted(publisher.sent) == sorted(named_now), f"queued {publisher.sent}, named {sorted(named_now)}"
        assert calls == len(named), f"{calls} calls for {sorted(named)}"
        PUSHED.update(
            invocations=1,
            events=len(events),
            several_records=sum(len(n.record_ids) > 1 for n in nudges),
            gaps=report.gap_events,
            own_origin=own,
            left_to_poll=report.left_to_poll,
            records_queued=len(publisher.sent),
        )

    # --- the poll -------------------------------------------------------------------------------------------------

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS)
    @rule()
    def polled(self) -> None:
        """The fetch's next window: every record changed since it last read it, as it is now, Accounts first; a
        record that may not be queued now waits for a later window."""
        batch_accounts: set[str] = set()
        ready = {
            entity: [i for i in self.salesforce.unpolled[entity] if self._may_queue(entity, i, batch_accounts)]
            for entity in ("Account", "Contact")
        }
        for entity, record_ids in ready.items():
            for record_id in record_ids:
                del self.salesforce.unpolled[entity][record_id]
            rows = [self.salesforce.rows[entity][i] for i in record_ids]
            if entity == "Account":
                fields = (*SYSTEM_ACCOUNT_FIELDS, *SYNCED)
                messages = account_messages([{n: r.get(n) for n in fields} for r in rows], SYNCED)
            else:
                messages = contact_messages([{n: r.get(n) for n in CONTACT_FIELDS} for r in rows])
            _Tagged(self.queues).publish([message for message, _ in messages])

    @precondition(lambda self: self.SWITCHES.PUSH_EVENTS)
    @rule()
    def polled_quiet_point(self) -> None:
        """Polls until every change is read, then the machine's quiet point: the store must agree with the
        reference model, and hold every record's newest Salesforce version (by push or by poll, whatever the relay
        did)."""
        for _ in range(10):
            self.queues.drain()
            if not any(self.salesforce.unpolled.values()):
                break
            self.polled()
        self.quiet_point()  # type: ignore[attr-defined]
        behind = [
            f"{entity} {record_id}: store at {stamp}, Salesforce at {row['SystemModstamp']}"
            for entity, rows in self.salesforce.rows.items()
            for record_id, row in sorted(rows.items())
            if (stamp := self._applied_stamp(entity, record_id)) != row["SystemModstamp"]
        ]
        assert not behind, "the store is behind Salesforce after a final poll:\n  " + "\n  ".join(behind)

    def _applied_stamp(self, entity: str, record_id: str) -> str | None:
        record = (self.reference.accounts if entity == "Account" else self.reference.contacts).get(record_id)
        return record.modstamp if record else None

    # --- what may be queued now ------------------------------------------------------------------------------------

    def _may_queue(self, entity: str, record_id: str, batch_accounts: set[str]) -> bool:
        """As the machine's own rules decide: an account's version only behind nothing of its group (unless
        CHANGE_OVERTAKES_SEGMENTS); a contact's only behind nothing of the groups it leaves and joins, and, unless
        CONTACTS_IN_SAME_WINDOW, never after a version queued in the same batch for an account it leaves (deleted,
        or moved away: issue 10, 2.1, still open). `batch_accounts` gathers the accounts queued in the batch."""
        if entity == "Account":
            if self.SWITCHES.CHANGE_OVERTAKES_SEGMENTS or not self.queues.pending_in(record_id):
                batch_accounts.add(record_id)
                return True
            return False
        version = contact_version(self.salesforce.rows["Contact"][record_id])
        stored = self.reference.contacts.get(record_id)
        left = {stored.account_id} if stored and stored.account_id else set()
        joined = contact_group(version)
        if not version.is_deleted:
            left.discard(joined)
        else:
            left.add(joined)
        if not self.SWITCHES.CONTACTS_IN_SAME_WINDOW and left & batch_accounts:
            return False
        return bool(self.group_free(record_id, joined, *left))  # type: ignore[attr-defined]

    def _contact_groups(self, contact_id: str) -> set[str]:
        """The group a contact's version goes to, and the account the store has it in (the one it leaves)."""
        version = contact_version(self.salesforce.rows["Contact"][contact_id])
        stored = self.reference.contacts.get(contact_id)
        return {contact_group(version), *([stored.account_id] if stored and stored.account_id else [])}

    def _groups_named(self, position: int) -> set[str]:
        header = self.salesforce.events[position]["detail"]["payload"]["ChangeEventHeader"]
        if header["entityName"] == "Account":
            return set(header["recordIds"])
        return {group for i in header["recordIds"] for group in self._contact_groups(i)}

    def _queueable_now(self, positions: list[int]) -> list[int]:
        """The events (in the relay's order) whose records may all be queued now: the push service reads them and
        queues the Accounts before the Contacts."""
        headers = {p: self.salesforce.events[p]["detail"]["payload"]["ChangeEventHeader"] for p in positions}
        batch_accounts: set[str] = set()
        kept: set[int] = set()
        for entity in ("Account", "Contact"):
            for position in positions:
                if headers[position]["entityName"] != entity:
                    continue
                trial = set(batch_accounts)
                if all(self._may_queue(entity, i, trial) for i in headers[position]["recordIds"]):
                    batch_accounts = trial
                    kept.add(position)
        return [p for p in positions if p in kept]


class _Tagged:
    """A publisher onto the machine's change queue: each message tagged with itself, so that the reference model
    is told of it once the fan-out applied it (`queues.py`)."""

    def __init__(self, queues: QueueWorld) -> None:
        self._queues = queues
        self.sent: list[tuple[str, str]] = []  # (record id, SystemModstamp) of each version published

    def publish(self, messages: Sequence[Any]) -> None:
        for message in messages:
            if isinstance(message, ContactChangesMessage):
                self.sent += [(v.contact_id, v.system_modstamp) for v in message.versions]
            else:
                self.sent.append((message.version.account_id, message.version.system_modstamp))
            self._queues.send_change(message.to_body(), message.group_id, message.deduplication_id, tag=message)
