"""`make demo`'s push section (issue 13): a change arriving by push, and the poll repairing a gap.

The demo's stack runs with the push path on (`SyncSandbox(push=True)`), its relay kept down until this section so
that the data set's load and the two cycles are the poll's alone. Here, on one account of 50 contacts:
1. the account and its contacts are created in Salesforce and synced by a poll (the relay still down);
2. the relay comes up and the account changes in Salesforce: the emulator's Change Data Capture event goes through
   moto's EventBridge (the partner bus and rule of template.yaml) to the change-events queue, the push function
   reads the account again by id, and the SQS triggers bring the change to every contact; no fetch runs;
3. the relay overflows (a `GAP_OVERFLOW` event names no record) while the account changes again: push cannot read
   it, the contacts keep the old value, and the next poll brings the change to every contact.
Each activity names the path that applied it (`sync_path`): `push` for the first change, `fetch` for the second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_stack.demo import Console
    from local_stack.sandbox import SyncSandbox

PUSH_DEMO_CONTACTS = 50


@dataclass(frozen=True)
class PushOutcome:
    """What the section shows, as the demo's checks: (name, passed, detail)."""

    checks: list[tuple[str, bool, str]]


def quiet_relay(sandbox: SyncSandbox) -> None:
    """The relay down until the push section: the load and the demo's cycles stay the poll's alone."""
    if sandbox.relay is not None:
        sandbox.relay.faults.down = True


def show_push_and_gap_repair(sandbox: SyncSandbox, console: Console) -> PushOutcome:
    relay = sandbox.relay
    if relay is None:
        return PushOutcome([("the push path is on", False, "the sandbox was started without push=True")])
    salesforce = sandbox.salesforce
    console.step(f"Push: Change Data Capture through Event Relay, one account of {PUSH_DEMO_CONTACTS} contacts")
    account = salesforce.create("Account", {"Name": "Hooli (pushed)", "Industry": "Energy"})
    contacts = salesforce.bulk_create(
        "Contact", [{"LastName": f"Pushed {n:02d}", "AccountId": account} for n in range(PUSH_DEMO_CONTACTS)]
    )
    synced = sandbox.run_cycle()
    console.line(f"synced by a poll first ({synced.drain.succeeded} messages, {synced.seconds:.1f}s); relay up")
    relay.faults = type(relay.faults)()

    started = time.monotonic()
    calls = salesforce.api_usage[0]
    salesforce.update("Account", account, {"Industry": "Retail"})
    pushed = sandbox.drain()
    seconds = time.monotonic() - started
    by_push = _industries(sandbox, contacts) == {"Retail"}
    paths = _activity_paths(sandbox, contacts, "Retail")
    console.line(
        f"Industry Energy -> Retail in Salesforce: on every contact {seconds:.1f}s later, no fetch run "
        f"({pushed.succeeded} messages, {salesforce.api_usage[0] - calls} Salesforce API call(s) by push); "
        f"activities by {_counted(paths)}"
    )

    relay.faults.overflow = True
    salesforce.update("Account", account, {"Industry": "Banking"})
    sandbox.drain()
    missed = _industries(sandbox, contacts) == {"Retail"}
    console.line("Retail -> Banking while the relay overflows (GAP_OVERFLOW names no record): push cannot read it")
    relay.faults = type(relay.faults)()
    repair = sandbox.run_cycle()
    repaired = _industries(sandbox, contacts) == {"Banking"}
    repaired_paths = _activity_paths(sandbox, contacts, "Banking")
    console.line(f"the next poll repaired it in {repair.seconds:.1f}s: activities by {_counted(repaired_paths)}")
    everyone = f"{PUSH_DEMO_CONTACTS} contacts"
    checks = [
        ("a change arrives by push, no fetch run", by_push and paths == ["push"] * len(contacts), everyone),
        ("an overflow is missed by push", missed, "the contacts kept the value before"),
        ("the poll repairs the gap", repaired and repaired_paths == ["fetch"] * len(contacts), everyone),
    ]
    for name, ok, detail in checks:
        console.line(f"{'✓' if ok else '✗'} {name}: {detail}")
    return PushOutcome(checks)


def _industries(sandbox: SyncSandbox, contacts: list[str]) -> set[Any]:
    from account_sync.adapters.dynamodb_models import ContactItem

    items = ContactItem.batch_get(contacts, consistent_read=True, attributes_to_get=["account_fields"])
    return {item.account_fields.as_dict().get("Industry") for item in items}


def _activity_paths(sandbox: SyncSandbox, contacts: list[str], new_value: str) -> list[str | None]:
    """The path each contact's Industry activity to `new_value` names (a query per contact: no table scan)."""
    from account_sync.adapters.dynamodb_models import ActivityItem

    return [
        activity.sync_path
        for contact in contacts
        for activity in ActivityItem.query(contact, consistent_read=True)
        if activity.attribute_name == "Industry" and activity.new_value == new_value
    ]


def _counted(paths: list[str | None]) -> str:
    return ", ".join(f"{paths.count(p)} {p}" for p in sorted(set(paths), key=str)) or "none"
