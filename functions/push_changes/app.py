"""Push: Change Data Capture events (Event Relay -> EventBridge -> SQS) -> the records read again -> account-changes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from account_sync.adapters.dynamodb import DynamoSyncStateStore
from account_sync.adapters.salesforce import SalesforceRestSource
from account_sync.adapters.sqs import SqsChangePublisher
from account_sync.change_events import ACCOUNT_SYNC_CLIENT_ID, ChangeNudge, parse_change_event
from account_sync.domain.timestamps import utc_now
from account_sync.observability import logger, metrics
from account_sync.queue_records import QueueRecord, failures_reported
from account_sync.services.push_changes import PushConfig, PushReport, push_changes
from account_sync.settings import Settings, load_settings
from account_sync.wiring import build_change_publisher, build_sync_state, salesforce_source_factory
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext


@functools.cache
def dependencies() -> tuple[Settings, Callable[[], SalesforceRestSource], SqsChangePublisher, DynamoSyncStateStore]:
    settings = load_settings()
    return (
        settings,
        salesforce_source_factory(settings),
        build_change_publisher(settings),
        build_sync_state(settings),
    )


def parse_records(event: dict[str, Any]) -> tuple[list[ChangeNudge], list[str]]:
    """The nudges of the batch, and the message ids of the records that are not CDC events (reported failed:
    after 5 receives they wait in the dead-letter queue, alarmed; the poll covers their records meanwhile)."""
    nudges: list[ChangeNudge] = []
    malformed: list[str] = []
    for raw in event["Records"]:
        record = QueueRecord.from_event_record(raw)
        try:
            with failures_reported(record, "change event", "change event not read"):
                nudges.append(parse_change_event(record.body))
        except Exception:
            malformed.append(record.message_id)
    return nudges, malformed


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, new_source, publisher, state = dependencies()
    nudges, failed = parse_records(event)
    source = new_source()
    config = PushConfig(settings.synced_account_fields, settings.api_budget_share, ACCOUNT_SYNC_CLIENT_ID)
    try:
        report = push_changes(nudges, source, publisher, state, config, now=utc_now)
    except Exception:
        # Salesforce or SQS unavailable beyond the retries: every event is handed back to SQS, read again later.
        logger.exception("push batch not read: handed back", events=len(nudges))
        metrics.add_metric(name="RetriedMessages", unit=MetricUnit.Count, value=len(nudges))
        failed = [record["messageId"] for record in event["Records"]]
        report = PushReport(outcome="retried", events=len(nudges), api_calls=source.api_calls)
    _record(report)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _record(report: PushReport) -> None:
    if report.outcome in ("skipped_api_budget", "stopped_api_budget"):
        logger.warning("push batch left to the poll: the Salesforce API budget is spent", outcome=report.outcome)
        metrics.add_metric(name="PushBatchesLeftToPoll", unit=MetricUnit.Count, value=1)
    for rejected in report.rejected:
        logger.error("change not queued: it can never be applied", **rejected)
    metrics.add_metric(name="RejectedChanges", unit=MetricUnit.Count, value=len(report.rejected))
    metrics.add_metric(name="PushEventsLeftToPoll", unit=MetricUnit.Count, value=report.left_to_poll)
    metrics.add_metric(name="PushGapEvents", unit=MetricUnit.Count, value=report.gap_events)
    metrics.add_metric(name="PushOwnOriginEvents", unit=MetricUnit.Count, value=report.own_origin)
    for sobject, count in report.queued.items():
        metrics.add_metric(name=f"{sobject}ChangesPushed", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="SalesforceApiCalls", unit=MetricUnit.Count, value=report.api_calls)
    logger.info("push batch finished", **asdict(report))
