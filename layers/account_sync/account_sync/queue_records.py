"""The two queue consumers' batches: each record handled on its own, a partial batch response for the ones that
failed, and what is said of a failure (its reason, never its body).

A failed record is reported in `batchItemFailures`: SQS redelivers it, and after maxReceiveCount the dead-letter
queue keeps it; the rest of the batch is deleted. On a FIFO queue a failure also fails the records of its message
group that follow it in the batch, unprocessed, so that the group's order holds (SQS hands them back in order).
A batch whose every record failed is still a partial response, not a function error: bad data raises the
dead-letter queue's alarm, the Errors alarm is for invocations that fail as a whole (docs/decisions.md).

A poison message fails alone (`PoisonPolicy`, the FIFO consumer). Handed back, its followers would be received
with it every time, their receive counts growing in lockstep, and reach the dead-letter queue with it. So the
consumer moves a message that can never succeed to the dead-letter queue itself, with its reason, and reports it
processed, and its group goes on: at once when it is malformed or the store refused it as invalid, and for an
unknown error (perhaps a bug, perhaps a fault that passes) only at its receive maxReceiveCount - 1, which its
followers, received as often or less, have not passed. A transient error (throttling) hands the rest of the group
back in order, as before. The standard logging queue needs none of this: a failure there blocks nothing, and
SQS's own redrive moves the message after maxReceiveCount.

Throttling is survived, never dead-lettered (`RetryVisibility`, both consumers). A message that failed with a
`TransientError` (DynamoDB throttling beyond the SDK's retries, a 5xx) is handed back with a short visibility that
grows with its receive count (seconds, not the queue's 540 s), and so are the unprocessed followers of its group:
the table gets time to recover, the account's FIFO group waits seconds instead of minutes, and the receives per
minute stay bounded, so that SQS's own redrive (which counts every receive) would need a throttle of about an hour
before it moved anything (docs/decisions.md, "Throttling is survived"; the template's maxReceiveCount is checked
against that reasoning by tests/unit/test_template.py). The poison policy never sets a throttled message aside.

Powertools' batch utility does the same, but importing it loads asyncio and every event class Powertools has:
about a seventh of `import boto3` on every cold start of both consumers (docs/decisions.md, "Cold start").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from account_sync.contracts import MalformedMessage
from account_sync.observability import logger, metrics
from account_sync.ports import PermanentFailure, Throttled, TransientError


@dataclass(frozen=True)
class QueueRecord:
    """What the consumers read of an SQS record of the event."""

    message_id: str
    body: str
    message_group_id: str | None = None
    receive_count: int = 1  # ApproximateReceiveCount: this receive included
    source_arn: str | None = None  # the queue it came from (eventSourceARN)
    receipt_handle: str | None = None  # what ChangeMessageVisibility needs

    @classmethod
    def from_event_record(cls, record: Mapping[str, Any]) -> QueueRecord:
        attributes = record.get("attributes") or {}
        count = str(attributes.get("ApproximateReceiveCount") or "1")
        return cls(
            message_id=record["messageId"],
            body=record.get("body") or "",
            message_group_id=attributes.get("MessageGroupId"),
            receive_count=int(count) if count.isascii() and count.isdigit() else 1,
            source_arn=record.get("eventSourceARN"),
            receipt_handle=record.get("receiptHandle"),
        )


class DeadLetters(Protocol):
    """Where a poison message is set aside: its body intact, its reason, source queue and receive count beside it
    (never a field value)."""

    def set_aside(self, record: QueueRecord, failure: str, reason: str) -> None: ...


class VisibilityChanger(Protocol):
    """Changes the visibility timeout of received messages of the consumer's queue (ChangeMessageVisibility)."""

    def change_visibility(self, records: Sequence[QueueRecord], seconds: int) -> None: ...


@dataclass(frozen=True)
class RetryVisibility:
    """How long a message that failed with a `TransientError` stays invisible before its next receive:
    `base_seconds` x 2^(receive count - 1), at most `max_seconds` (the schedule docs/decisions.md reasons about)."""

    queue: VisibilityChanger
    base_seconds: int = 2
    max_seconds: int = 120

    def seconds(self, receive_count: int) -> int:
        return retry_visibility_seconds(receive_count, self.base_seconds, self.max_seconds)

    def hand_back(self, failing: QueueRecord, records: Sequence[QueueRecord]) -> None:
        """`records` (the failing one and the followers of its group) visible again after `failing`'s delay. A
        failure here leaves them the queue's own visibility timeout: slower, never lost."""
        seconds = self.seconds(failing.receive_count)
        try:
            self.queue.change_visibility(records, seconds)
        except Exception:
            logger.exception("visibility not shortened: the queue's own timeout applies", message_id=failing.message_id)


def retry_visibility_seconds(receive_count: int, base_seconds: int, max_seconds: int) -> int:
    """base x 2^(n - 1), capped; n is the receive that just failed (1 for the first)."""
    exponent = min(max(receive_count, 1) - 1, 30)  # 2^30 s is far beyond any cap SQS allows (12 h)
    return int(min(max_seconds, base_seconds * 2**exponent))


@dataclass(frozen=True)
class PoisonPolicy:
    """How a FIFO consumer lets a poison message fail alone; `max_receive_count` is the source queue's
    RedrivePolicy's (the template gives both to the function). An unknown error is set aside at its receive
    `unknown_error_receives` (at most maxReceiveCount - 1, so that its followers never reach SQS's redrive with
    it); a throttled or otherwise transient one never is."""

    dead_letters: DeadLetters
    max_receive_count: int
    unknown_error_receives: int = 4

    def verdict(self, record: QueueRecord, exc: Exception) -> tuple[str, str] | None:
        """(failure, reason) when the record is to be set aside now; None to hand it back to SQS."""
        if isinstance(exc, MalformedMessage):
            return "malformed", str(exc)
        if isinstance(exc, PermanentFailure):
            return "refused", str(exc)
        if isinstance(exc, TransientError):
            return None  # throttling passes: never a dead letter of this consumer's making
        if record.receive_count >= min(self.unknown_error_receives, self.max_receive_count - 1):
            # the exception's text may quote data (a bug's message): its type alone is said
            return "failed", f"{type(exc).__name__} on each of {record.receive_count} receives"
        return None


def partial_batch_response(
    event: Mapping[str, Any],
    handle: Callable[[QueueRecord], object],
    *,
    fifo: bool,
    poison: PoisonPolicy | None = None,
    retry: RetryVisibility | None = None,
) -> dict[str, list[dict[str, str]]]:
    """Hand each record of an SQS event to `handle`; the records it raised for (and, on a FIFO queue, the records
    of their groups after them) are the batch item failures, except those `poison` sets aside in the dead-letter
    queue (reported processed: their group goes on). A record that failed with a `TransientError` is handed back
    with `retry`'s short visibility, with its group's followers. `handle` reports its own failures
    (`failures_reported`). An event without `Records` or a record without `messageId` is not an SQS event: the
    KeyError fails the invocation as a whole."""
    records = [QueueRecord.from_event_record(record) for record in event["Records"]]
    failures: list[str] = []
    failed_groups: dict[str | None, list[QueueRecord]] = {}  # a failed group: its records handed back
    transient: list[QueueRecord] = []  # the records that failed with a TransientError, first of their group
    for record in records:
        if fifo and record.message_group_id in failed_groups:
            failures.append(record.message_id)  # not attempted: an earlier message of its group failed
            failed_groups[record.message_group_id].append(record)
            continue
        try:
            handle(record)
        except Exception as exc:
            if poison is not None and _set_aside(poison, record, exc):
                continue
            failures.append(record.message_id)
            if fifo:
                failed_groups[record.message_group_id] = [record]
            if isinstance(exc, TransientError):
                transient.append(record)
    if failures:
        logger.warning("partial batch", records=len(records), failed=len(failures), transient=len(transient))
    if retry is not None:
        for record in transient:
            retry.hand_back(record, failed_groups.get(record.message_group_id, [record]) if fifo else [record])
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _set_aside(poison: PoisonPolicy, record: QueueRecord, exc: Exception) -> bool:
    verdict = poison.verdict(record, exc)
    if verdict is None:
        return False
    failure, reason = verdict
    try:
        poison.dead_letters.set_aside(record, failure, reason)
    except Exception:
        # SQS's own redrive still catches it after maxReceiveCount; its group waits for it meanwhile
        logger.exception("poison message not set aside: handed back", message_id=record.message_id)
        return False
    logger.error(
        "message set aside in the dead-letter queue",
        message_id=record.message_id,
        message_group_id=record.message_group_id,
        failure=failure,
        reason=reason,
        receive_count=record.receive_count,
    )
    metrics.add_metric(name="PoisonMessagesSetAside", unit=MetricUnit.Count, value=1)
    return True


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
        # Throttled or unavailable beyond the SDK's retries: handed back with a short, growing visibility
        # (`RetryVisibility`); never set aside as poison.
        logger.warning(
            f"{action}, retried later",
            message_id=record.message_id,
            reason=str(exc),
            receive_count=record.receive_count,
        )
        metrics.add_metric(name="RetriedMessages", unit=MetricUnit.Count, value=1)
        if isinstance(exc, Throttled):
            metrics.add_metric(name="ThrottledMessages", unit=MetricUnit.Count, value=1)
        raise
    except PermanentFailure as exc:
        logger.error(f"{action}: refused as invalid", message_id=record.message_id, reason=str(exc))
        raise
    except Exception:
        logger.exception(f"{message} failed", message_id=record.message_id)
        raise
