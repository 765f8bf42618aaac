"""Two corrections to moto 5.2.5's EventBridge, for a partner event bus (the push path's, issue 13), applied
in-process (server mode and `mock_aws` alike, from `moto_fixes.apply_moto_fixes`).

* moto's `AWS::Events::EventBus` has no physical id, so `!Ref PushEventBus` (the rule's `EventBusName`) resolves to
  moto's Python object instead of the bus's name, as CloudFormation gives it: the rule's creation fails.
* moto reads a bus name out of an ARN or a name by keeping what follows the last `/`. A partner bus is named
  after its partner event source, `aws.partner/salesforce.com/<org id>/<channel id>`, so a rule put on it, or an
  event put on it, lands on a bus named `<channel id>`, which does not exist. Here an ARN gives what follows
  `:event-bus/`, and a name stays whole, as EventBridge reads them.

Everything else the push path needs moto has: `CreatePartnerEventSource` (what Salesforce does when an Event Relay
is configured), a bus associated with that source, a rule with an event pattern, its SQS target, and `PutEvents`
delivering to it (`tests/integration/local_stack/test_local_push.py`).
"""

from __future__ import annotations

from typing import Any

_MARK = "_account_sync_partner_bus_fix"


def fix_partner_event_buses() -> None:
    """Patch moto's EventBridge once per process (cheap to call again)."""
    from moto.events.models import EventBus, EventsBackend

    if getattr(EventsBackend, _MARK, False):
        return
    EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]

    def bus_name(self: Any, event_bus_arn: str | None) -> str:
        if event_bus_arn is None:
            return "default"
        if event_bus_arn.startswith("arn:"):
            return event_bus_arn.split(":event-bus/", 1)[-1]
        return event_bus_arn

    EventsBackend._normalize_event_bus_arn = bus_name  # type: ignore[method-assign]
    setattr(EventsBackend, _MARK, True)
