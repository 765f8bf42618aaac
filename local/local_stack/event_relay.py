"""The last leg of Salesforce Event Relay, locally: the emulator's change events put on the partner event bus of
moto's EventBridge (`PutEvents`), where the template's rule sends them to the change-events queue, and the local
runtime's SQS poller runs the push function from there, as on AWS (issue 13).

On AWS, Event Relay puts each event on the partner event source, which EventBridge hands to the bus associated with
it; moto has no partner's side of that hand-over (its `PutPartnerEvents` puts on the default bus), so the relay puts
on the bus by name, with the envelope's source, detail-type, time and detail: what the rule matches and what the
queue receives are EventBridge's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

PUT_EVENTS_LIMIT = 10  # entries per PutEvents request


class RelayDeliveryFailed(RuntimeError):
    """EventBridge refused some entries: the emulator's change is committed, its event is not on the bus (Event
    Relay would retry; a test must know)."""


def event_bridge_sink(events_client: Any, bus_name: str) -> Callable[[list[dict[str, Any]]], None]:
    """A sink for `SalesforceEmulator.relay_change_events`: each EventBridge event onto the bus `bus_name`."""

    def put(events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), PUT_EVENTS_LIMIT):
            chunk = events[start : start + PUT_EVENTS_LIMIT]
            answer = events_client.put_events(
                Entries=[
                    {
                        "EventBusName": bus_name,
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                        "Resources": event.get("resources") or [],
                    }
                    for event in chunk
                ]
            )
            if answer.get("FailedEntryCount"):
                codes = sorted({e.get("ErrorCode", "?") for e in answer["Entries"] if e.get("ErrorCode")})
                raise RelayDeliveryFailed(f"{answer['FailedEntryCount']} change events refused by EventBridge: {codes}")

    return put
