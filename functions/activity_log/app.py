"""Logging: activity queue -> Change Data Value activities (one per contact per changed field)."""

from __future__ import annotations

import functools
from typing import Any

from account_sync.adapters.dynamodb import DynamoActivityStore
from account_sync.contracts import parse_activity_batch
from account_sync.domain.timestamps import utc_now
from account_sync.observability import logger, metrics
from account_sync.queue_records import QueueRecord, RetryVisibility, failures_reported, partial_batch_response
from account_sync.services.activity_log import write_activities
from account_sync.settings import load_settings
from account_sync.wiring import build_activity_store, build_retry_visibility
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext


@functools.cache
def activity_store() -> DynamoActivityStore:
    return build_activity_store(load_settings())


@functools.cache
def retry_visibility() -> RetryVisibility:
    settings = load_settings()
    return build_retry_visibility(settings, settings.activity_queue_url)


def write_batch_record(record: QueueRecord) -> int:
    with failures_reported(record, "activity batch", "activities not written"):
        batch = parse_activity_batch(record.body)
        written = write_activities(batch, activity_store(), utc_now)
    logger.info(
        "activities written",
        message_id=record.message_id,
        account_id=batch.account_id,
        system_modstamp=batch.system_modstamp,
        activities=written,
    )
    metrics.add_metric(name="ActivitiesWritten", unit=MetricUnit.Count, value=written)
    return written


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # a batch whose activities were throttled (UnprocessedItems) comes back within seconds, not 360 s
    return partial_batch_response(event, write_batch_record, fifo=False, retry=retry_visibility())
