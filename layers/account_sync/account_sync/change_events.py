"""Change Data Capture events as Event Relay delivers them to EventBridge, read as nudges: which records to read again.

Event Relay puts each event on the partner event source as an EventBridge event: `source`
`aws.partner/salesforce.com/<org id>/<channel id>`, `detail-type` the event's name (`AccountChangeEvent`,
`ContactChangeEvent`), `detail` holding the event's `payload` (with its `ChangeEventHeader`) beside the schema id and
the replay id. The rule sends that event unchanged to an SQS queue, so an SQS record's body is the whole EventBridge
event. Only the header is read: the changed fields an event carries are not what gets written (the records are read
again, with their SystemModstamp; docs/decisions.md, "Near-real-time sync").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from account_sync.contracts import MalformedMessage

# The change events the push path reads, and the object each one is about.
ENTITIES = {"AccountChangeEvent": "Account", "ContactChangeEvent": "Contact"}
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CHANGE_TYPES = {"CREATE", "UPDATE", "DELETE", "UNDELETE"}
# Account Sync's API client, sent in `Sforce-Call-Options` on every call: Salesforce puts it in the changeOrigin
# of the changes it makes (Convert Person), so that the push path can tell its own echo.
ACCOUNT_SYNC_CLIENT_ID = "AccountSync"
GAP_PREFIX = "GAP_"
OVERFLOW = "GAP_OVERFLOW"


@dataclass(frozen=True)
class ChangeNudge:
    """What one change event says: these records of this object changed (or may have: a gap); read them again."""

    sobject: str  # Account or Contact
    record_ids: tuple[str, ...]  # the plain record ids named (none for an overflow event)
    change_type: str  # CREATE, UPDATE, DELETE, UNDELETE, GAP_* or GAP_OVERFLOW
    change_origin: str
    commit_timestamp: int | None  # milliseconds; Salesforce's commit clock, never compared with SystemModstamp
    left_to_poll: bool = False  # the event names changes it gives no id for (overflow, wildcard): the poll's

    @property
    def is_gap(self) -> bool:
        return self.change_type.startswith(GAP_PREFIX)

    def from_client(self, client_id: str | None) -> bool:
        """True when the change was made through the API by the client `client_id` (Account Sync's own writes:
        Convert Person sends it in `Sforce-Call-Options`)."""
        return bool(client_id) and f"client={client_id}" in self.change_origin.split(";")


def parse_change_event(body: str) -> ChangeNudge:
    """An SQS body holding an EventBridge event from Event Relay; MalformedMessage naming what is wrong (never a
    field value)."""
    try:
        event: Any = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage("change event: not JSON") from exc
    detail = event.get("detail") if isinstance(event, dict) else None
    payload = detail.get("payload") if isinstance(detail, dict) else None
    header = payload.get("ChangeEventHeader") if isinstance(payload, dict) else None
    if not isinstance(header, dict):
        raise MalformedMessage("change event: no detail.payload.ChangeEventHeader")
    entity = header.get("entityName")
    sobject = ENTITIES.get(f"{entity}ChangeEvent") if isinstance(entity, str) else None
    if sobject is None:
        raise MalformedMessage(f"change event: entityName {str(entity)[:40]!r} is not Account or Contact")
    change_type = header.get("changeType")
    if not isinstance(change_type, str) or not (change_type in _CHANGE_TYPES or change_type.startswith(GAP_PREFIX)):
        raise MalformedMessage("change event: changeType missing or unknown")
    raw_ids = header.get("recordIds")
    if raw_ids is None:
        raw_ids = []
    if not isinstance(raw_ids, list) or not all(isinstance(i, str) for i in raw_ids):
        raise MalformedMessage("change event: recordIds is not a list of strings")
    # An entry that is not a plain record id (an overflow names none; a wildcard names many) cannot be read by id:
    # the poll, which reads every change, covers it.
    ids = tuple(dict.fromkeys(i for i in raw_ids if _RECORD_ID.match(i)))
    origin = header.get("changeOrigin")
    commit = header.get("commitTimestamp")
    return ChangeNudge(
        sobject=sobject,
        record_ids=ids,
        left_to_poll=change_type == OVERFLOW or len(ids) < len(set(raw_ids)) or not raw_ids,
        change_type=change_type,
        change_origin=origin if isinstance(origin, str) else "",
        commit_timestamp=commit if isinstance(commit, int) and not isinstance(commit, bool) else None,
    )
