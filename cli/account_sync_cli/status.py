"""`account-sync status`: how far behind the sync is, at a glance: the queues' depths (dead letters first) and
the sync state the fetch keeps (its watermark, its last run, its lease)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from account_sync_cli.dead_letters import DEAD_LETTER_QUEUES, deployed_dead_letter_queues
from account_sync_cli.deployment import Deployment

_DEPTHS = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


def status(deployment: Deployment) -> dict[str, Any]:
    sqs = deployment.client("sqs")
    queues = {}
    for logical_id in queues_of(deployment):
        attributes = sqs.get_queue_attributes(
            QueueUrl=deployment.ref(logical_id), AttributeNames=list(_DEPTHS.values())
        )["Attributes"]
        queues[logical_id] = {name: int(attributes.get(attribute, 0)) for name, attribute in _DEPTHS.items()}
    state = sync_state(deployment)
    return {
        "deployment": deployment.name,
        "queues": queues,
        "dead_letters": sum(
            queue["visible"] + queue["in_flight"] for name, queue in queues.items() if "DeadLetter" in name
        ),
        "resync": resync_progress(state),
        "synced_fields": (state.get("fields#account") or {}).get("synced_fields"),
        "sync_state": state,
    }


def queues_of(deployment: Deployment) -> list[str]:
    """The deployment's queues, by logical id: each queue a dead-letter queue serves, then the dead-letter queues
    (one table, `DEAD_LETTER_QUEUES`; the push path's only where it is deployed)."""
    pairs = [DEAD_LETTER_QUEUES[name] for name in deployed_dead_letter_queues(deployment)]
    return [source for _, source in pairs] + [dead_letters for dead_letters, _ in pairs]


def resync_progress(state: dict[str, Any]) -> dict[str, Any] | None:
    """A resync of a window or of everything in progress (`Account.resync`): its window and how far it read (the
    SystemModstamp of the last Account queued, by REST; by a Bulk API job, its record offset); None when none."""
    item = state.get("watermark#Account.resync") or {}
    if not item.get("window_start"):
        return None
    position = item.get("position") or {}
    return {
        "window": [item["window_start"], item.get("window_end")],
        "read_up_to": position.get("after_stamp"),
        "bulk_job": position.get("job"),
        "bulk_offset": position.get("offset"),
        "updated_at": item.get("updated_at"),
    }


def sync_state(deployment: Deployment) -> dict[str, Any]:
    """Every item of the sync-state table (a handful: the watermarks, the lease, the last run), as plain JSON."""
    dynamodb = deployment.client("dynamodb")
    deserialize = TypeDeserializer().deserialize
    items: dict[str, Any] = {}
    pages = dynamodb.get_paginator("scan").paginate(TableName=deployment.ref("SyncStateTable"))
    for page in pages:
        for raw in page.get("Items", []):
            item = {name: _plain(deserialize(value)) for name, value in raw.items()}
            items[str(item.get("state_id", len(items)))] = item
    return dict(sorted(items.items()))


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals and sets as JSON numbers and lists."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render(view: dict[str, Any]) -> list[str]:
    lines = [
        f"Account Sync, {view['deployment']}",
        "",
        f"{'queue':<32} {'visible':>8} {'in flight':>10} {'delayed':>8}",
    ]
    for name, depths in view["queues"].items():
        lines.append(f"{name:<32} {depths['visible']:>8} {depths['in_flight']:>10} {depths['delayed']:>8}")
    lines.append("")
    lines.append(
        f"dead letters: {view['dead_letters']}" + ("  (see: account-sync dlq list)" if view["dead_letters"] else "")
    )
    resync = view.get("resync")
    if resync:
        how_far = resync["read_up_to"] or (f"Bulk job record {resync['bulk_offset']}" if resync["bulk_job"] else "-")
        lines.append(
            f"resync in progress: Accounts of ({resync['window'][0]}, {resync['window'][1]}], read up to {how_far}"
        )
    else:
        lines.append("resync: none in progress")
    if view.get("synced_fields"):
        lines.append(f"synced fields: {', '.join(view['synced_fields'])}")
    for state_id, item in view["sync_state"].items():
        shown = ", ".join(f"{k}={v}" for k, v in item.items() if k != "state_id")
        lines.append(f"sync state {state_id}: {shown}")
    return lines
