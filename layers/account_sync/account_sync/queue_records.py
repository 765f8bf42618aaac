"""What the queue consumers do with a record that fails: say why (its reason, never its body), count it, and let
the exception fail that record alone (a partial batch response: SQS redelivers it, and after maxReceiveCount the
dead-letter queue keeps it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from account_sync.contracts import MalformedMessage
from account_sync.observability import logger, metrics
from account_sync.ports import TransientError


@contextmanager
def failures_reported(record: SQSRecord, message: str, action: str) -> Iterator[None]:
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
