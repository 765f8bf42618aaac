"""The two queue consumers' batches: each record handled on its own, a partial batch response for the ones that
failed, and what is said of a failure (its reason, never its body).

A failed record is reported in `batchItemFailures`: SQS redelivers it, and after maxReceiveCount the dead-letter
queue keeps it; the rest of the batch is deleted. On a FIFO queue a failure also fails the records of its message
group that follow it in the batch, unprocessed, so that the group's order holds (SQS hands them back in order).
A batch whose every record failed is still a partial response, not a function error: bad data raises the
dead-letter queue's alarm, the Errors alarm is for invocations that fail as a whole (docs/decisions.md).

Powertools' batch utility does the same, but importing it loads asyncio and every event class Powertools has:
about a seventh of `import boto3` on every cold start of both consumers (docs/decisions.md, "Cold start").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from account_sync.contracts import MalformedMessage
from account_sync.observability import logger, metrics
from account_sync.ports import TransientError


@dataclass(frozen=True)
class QueueRecord:
    """What the consumers read of an SQS record of the event."""

    message_id: str
    body: str
    message_group_id: str | None = None

    @classmethod
    def from_event_record(cls, record: Mapping[str, Any]) -> QueueRecord:
        attributes = record.get("attributes") or {}
        return cls(
            message_id=record["messageId"],
            body=record.get("body") or "",
            message_group_id=attributes.get("MessageGroupId"),
        )


def partial_batch_response(
    event: Mapping[str, Any], handle: Callable[[QueueRecord], object], *, fifo: bool
) -> dict[str, list[dict[str, str]]]:
    """Hand each record of an SQS event to `handle`; the records it raised for (and, on a FIFO queue, the records
    of their groups after them) are the batch item failures. `handle` reports its own failures
    (`failures_reported`). An event without `Records` or a record without `messageId` is not an SQS event: the
    KeyError fails the invocation as a whole."""
    records = [QueueRecord.from_event_record(record) for record in event["Records"]]
    failures: list[str] = []
    failed_groups: set[str | None] = set()
    for record in records:
        if fifo and record.message_group_id in failed_groups:
            failures.append(record.message_id)  # not attempted: an earlier message of its group failed
            continue
        try:
            handle(record)
        except Exception:
            failures.append(record.message_id)
            failed_groups.add(record.message_group_id)
    if failures:
        logger.warning("partial batch", records=len(records), failed=len(failures))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


@contextmanager
def failures_reported(record: QueueRecord, message: str, action: str) -> Iterator[None]:
    """`message` names the record ("change message"), `action` what failed to happen to it ("change not applied")."""
    try:
        yield
    except MalformedMessage as exc:
        logger.error(f"malformed {message}", message_id=record.message_id, reason=str(exc))
        metrics.add_metric(name="MalformedMessages", unit=MetricUnit.Count, value=1)
        raise
    except TransientError as exc:
        # Throttled or unavailable beyond the SDK's retries: SQS brings the message back after its visibility
        # timeout, and the dead-letter queue takes it after maxReceiveCount.
        logger.warning(f"{action}, retried later", message_id=record.message_id, reason=str(exc))
        metrics.add_metric(name="RetriedMessages", unit=MetricUnit.Count, value=1)
        raise
    except Exception:
        logger.exception(f"{message} failed", message_id=record.message_id)
        raise
