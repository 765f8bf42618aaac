"""Fan-out: account-changes FIFO queue -> contact items (and Change Data Value batches for the logging queue)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from account_sync.contracts import parse_change_message
from account_sync.domain.timestamps import lag_seconds
from account_sync.observability import logger, metrics
from account_sync.queue_records import (
    PoisonPolicy,
    QueueRecord,
    RetryVisibility,
    failures_reported,
    partial_batch_response,
)
from account_sync.services.fan_out import FanOut, FanOutBatch, FanOutReport
from account_sync.settings import load_settings
from account_sync.wiring import build_fan_out, build_poison_policy, build_retry_visibility
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext


@functools.cache
def fan_out() -> FanOut:
    return build_fan_out(load_settings())


@functools.cache
def poison_policy() -> PoisonPolicy:
    return build_poison_policy(load_settings())


@functools.cache
def retry_visibility() -> RetryVisibility:
    settings = load_settings()
    return build_retry_visibility(settings, settings.account_changes_queue_url)


def apply_change_record(record: QueueRecord, batch: FanOutBatch | None = None) -> FanOutReport:
    with failures_reported(record, "change message", "change not applied"):
        report = (batch or fan_out().batch()).apply(parse_change_message(record.body))
    logger.info("change applied", message_id=record.message_id, **vars(report))
    _record_metrics(report)
    return report


def _record_metrics(report: FanOutReport) -> None:
    metrics.add_metric(name="ContactsWritten", unit=MetricUnit.Count, value=report.contacts_written)
    metrics.add_metric(name="ActivitiesQueued", unit=MetricUnit.Count, value=report.activities_queued)
    if report.outcome == "stale":
        metrics.add_metric(name="StaleVersions", unit=MetricUnit.Count, value=1)
    if report.outcome == "superseded":  # a local edit (or its segment) behind a newer version or a later edit
        metrics.add_metric(name="SupersededLocalEdits", unit=MetricUnit.Count, value=1)
    if report.suppressed:
        metrics.add_metric(name="ActivitySuppressed", unit=MetricUnit.Count, value=1)
    if report.pending_dropped:
        # the account item's bound on what it keeps for leaving contacts was reached: a contact leaving before those
        # changes' segments reach it would miss their activities (issue 10, 2.1; docs/guarantees.md, "Known limits")
        logger.warning(
            "pending changes dropped from the account item",
            account_id=report.account_id,
            dropped=report.pending_dropped,
        )
        metrics.add_metric(name="PendingChangesDropped", unit=MetricUnit.Count, value=report.pending_dropped)
    if report.completed_version:
        metrics.add_metric(
            name="SyncLagSeconds",
            unit=MetricUnit.Seconds,
            value=lag_seconds(report.completed_version, datetime.now(UTC)),
        )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = fan_out().batch()  # the accounts it reads are its own, forgotten with it
    # FIFO: a failed message fails the rest of its account's messages in this batch, keeping their order; a poison
    # message is set aside in the dead-letter queue instead, so that it fails alone (queue_records.PoisonPolicy); a
    # throttled one comes back within seconds, with its group (queue_records.RetryVisibility).
    return partial_batch_response(
        event,
        functools.partial(apply_change_record, batch=batch),
        fifo=True,
        poison=poison_policy(),
        retry=retry_visibility(),
    )
