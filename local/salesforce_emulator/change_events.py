"""Change Data Capture, relayed as Event Relay does: every committed Account or Contact change becomes an
`AccountChangeEvent` / `ContactChangeEvent` inside the EventBridge event that Event Relay puts on the partner event
source, handed to a sink (the local stack: the rule's target queue). Faults a test can inject: duplicates,
reordering, gap events, overflow events, and a relay that is down (events lost, as with the `LATEST` recovery
option, or kept longer than Salesforce's 3 days).

The payload follows the Change Data Capture Developer Guide: a `ChangeEventHeader` (entityName, recordIds,
changeType, changedFields, nulledFields, diffFields, changeOrigin, transactionKey, sequenceNumber,
commitTimestamp, commitNumber, commitUser) and only the changed fields' values; no SystemModstamp, no IsDeleted.
Gap events carry the header only; an overflow event (`GAP_OVERFLOW`) names no record.
"""

from __future__ import annotations

import contextvars
import json
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .schema import OBJECTS
from .store import Record, api_value

CAPTURED = ("Account", "Contact")
# The changeOrigin of the changes being made: set by the REST routes for an API request (`com/salesforce/api/rest/
# <version>` and the request's `Sforce-Call-Options`, e.g. `;client=AccountSync`), empty for the emulator's in-process
# changes, as for a change made in Salesforce's user interface.
CHANGE_ORIGIN: contextvars.ContextVar[str] = contextvars.ContextVar("change_origin", default="")
# Fields a change event never carries (the guide: IsDeleted, SystemModstamp and the like are left out).
_NOT_CARRIED = {"Id", "IsDeleted", "SystemModstamp", "LastModifiedDate", "CreatedDate"}
Sink = Callable[[list[dict]], None]


@dataclass
class RelayFaults:
    """What the relay does wrong, until cleared. Each applies to the events published while it is set."""

    duplicate: bool = False  # every event delivered twice (at least once)
    reorder: bool = False  # events held and delivered in reverse order at `flush()`
    gap: bool = False  # each change becomes a GAP_<type> event: header only
    overflow: bool = False  # each change becomes one GAP_OVERFLOW event: no record id, no field
    down: bool = False  # the relay delivers nothing (stopped, or beyond the 3 days Salesforce keeps events)


@dataclass
class EventRelay:
    """Salesforce's change events for one channel, relayed to `sink` as EventBridge events."""

    org_id: str
    channel_id: str = "0YL000000000001GAA"
    sink: Sink | None = None
    faults: RelayFaults = field(default_factory=RelayFaults)
    region: str = "us-east-1"
    aws_account: str = "123456789012"
    delivered: int = 0
    dropped: int = 0
    _commit_number: int = 0
    _replay_id: int = 0
    _held: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def source(self) -> str:
        return f"aws.partner/salesforce.com/{self.org_id}/{self.channel_id}"

    def on_change(self, name: str, old: Record | None, new: Record) -> None:
        """The store's listener: one committed write of a record."""
        if name not in CAPTURED:
            return
        with self._lock:
            self._commit_number += 1
            event = self._envelope(self._payload(name, old, new))
            if self.faults.down:
                self.dropped += 1
                return
            events = [event, json.loads(json.dumps(event))] if self.faults.duplicate else [event]
            if self.faults.reorder:
                self._held.extend(events)
                return
        self._deliver(events)

    def flush(self) -> None:
        """Deliver what a reordering relay held, last first."""
        with self._lock:
            held, self._held = self._held[::-1], []
        if held:
            self._deliver(held)

    def _deliver(self, events: list[dict]) -> None:
        if self.sink is not None:
            self.sink(events)
            self.delivered += len(events)

    def _payload(self, name: str, old: Record | None, new: Record) -> dict:
        sobject = OBJECTS[name]
        if old is None:
            change_type = "CREATE"
        elif new["IsDeleted"] and not old["IsDeleted"]:
            change_type = "DELETE"
        elif old["IsDeleted"] and not new["IsDeleted"]:
            change_type = "UNDELETE"
        else:
            change_type = "UPDATE"
        carried = [f for f in sobject.fields if f.name not in _NOT_CARRIED]
        changed = [f for f in carried if old is None or old.get(f.name) != new.get(f.name)]
        if change_type == "DELETE":
            changed = []
        header: dict = {
            "entityName": name,
            "recordIds": [new["Id"]],
            "changeType": change_type,
            "changedFields": [f.name for f in changed] if change_type == "UPDATE" else [],
            "nulledFields": [f.name for f in changed if new.get(f.name) is None] if change_type == "UPDATE" else [],
            "diffFields": [],
            "changeOrigin": CHANGE_ORIGIN.get(),
            "transactionKey": str(uuid.uuid4()),
            "sequenceNumber": 1,
            "commitTimestamp": int(datetime.now(UTC).timestamp() * 1000),  # commit clock, not SystemModstamp
            "commitNumber": self._commit_number,
            "commitUser": new.get("OwnerId") or "005000000000001AAA",
        }
        values = {f.name: api_value(f, new.get(f.name)) for f in changed if new.get(f.name) is not None}
        if self.faults.overflow:
            return {"ChangeEventHeader": {**header, "recordIds": [], "changeType": "GAP_OVERFLOW", "changedFields": []}}
        if self.faults.gap:
            return {"ChangeEventHeader": {**header, "changeType": f"GAP_{change_type}", "changedFields": []}}
        return {"ChangeEventHeader": header, **values}

    def _envelope(self, payload: dict) -> dict:
        """The EventBridge event Event Relay puts on the partner event source."""
        self._replay_id += 1
        entity = payload["ChangeEventHeader"]["entityName"]
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": f"{entity}ChangeEvent",
            "source": self.source,
            "account": self.aws_account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [],
            "detail": {
                "payload": payload,
                "schemaId": f"{entity.lower()}-change-event-schema",
                "id": str(uuid.uuid4()),
                "replayId": str(self._replay_id),
            },
        }


def shuffled(events: list[dict], seed: int = 0) -> list[dict]:
    """Events in another order (a test's own reordering of a delivered batch)."""
    copy = list(events)
    random.Random(seed).shuffle(copy)
    return copy
