"""Fetch: on the schedule, read Accounts and Contacts changed in Salesforce and queue them (FIFO, by account).

A run paused by its remaining time invokes this function again at once with `{"continuation": {"chain": n}}`
(`FetchContinuation`), at most `FETCH_CONTINUATION_LIMIT` times in a row. Invoked with `{"resync": ...}` (the
operator's `account-sync resync`), the run also reads Accounts again by id, by window or all of them
(`ResyncRequest`); a request it cannot carry out is answered with `outcome` "invalid_resync" and the reason, and
nothing else is done. Invoked with `{"drift": {"repair": bool}}` (`account-sync drift`), it compares the next sample
of accounts with the store now (services/drift.py), as it does on the schedule every DRIFT_INTERVAL_SECONDS."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from account_sync.adapters.dynamodb import DynamoSyncStateStore
from account_sync.adapters.salesforce import SalesforceRestSource
from account_sync.adapters.sqs import SqsChangePublisher
from account_sync.domain.timestamps import utc_now
from account_sync.observability import logger, metrics
from account_sync.ports import RunContinuation, SalesforceBudgetExhausted
from account_sync.services.drift import DriftConfig
from account_sync.services.fetch_changes import (
    DriftCheck,
    FetchConfig,
    FetchContinuation,
    FetchReport,
    InvalidResync,
    ResyncRequest,
    fetch_changes,
)
from account_sync.settings import Settings, load_settings
from account_sync.tracing import tracer
from account_sync.wiring import (
    build_change_publisher,
    build_run_continuation,
    build_sync_state,
    salesforce_source_factory,
)
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext


@functools.cache
def dependencies() -> tuple[Settings, Callable[[], SalesforceRestSource], SqsChangePublisher, DynamoSyncStateStore]:
    settings = load_settings()
    return (
        settings,
        salesforce_source_factory(settings),
        build_change_publisher(settings, lanes=settings.fetch_send_lanes),
        build_sync_state(settings),
    )


def fetch_config(settings: Settings) -> FetchConfig:
    return FetchConfig(
        synced_fields=settings.synced_account_fields,
        lookback_seconds=settings.lookback_seconds,
        api_budget_share=settings.api_budget_share,
        reconcile_interval_seconds=settings.reconcile_interval_seconds,
        reconcile_lookback_seconds=settings.reconcile_lookback_seconds,
        resync_records_per_run=settings.resync_records_per_run,
        continuation_limit=settings.fetch_continuation_limit,
    )


@functools.cache
def run_continuation(function_name: str) -> RunContinuation:
    return build_run_continuation(function_name)


def drift_check(settings: Settings, asked: dict[str, Any] | None) -> DriftCheck:
    """Every `DRIFT_INTERVAL_SECONDS` on the schedule; now when an operator asks (`{"drift": {"repair": bool}}`)."""
    from account_sync.adapters.dynamodb import DynamoAccountRepository, DynamoContactRepository

    return DriftCheck(
        accounts=DynamoAccountRepository(),
        contacts=DynamoContactRepository(),
        config=DriftConfig(settings.synced_account_fields, accounts_per_run=settings.drift_accounts_per_check),
        interval_seconds=settings.drift_interval_seconds,
        forced=asked is not None,
        repair=bool(asked and asked.get("repair") is True),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, new_source, publisher, state = dependencies()
    resync = None
    drift_event = event.get("drift") if isinstance(event, dict) else None
    if drift_event is not None and not isinstance(drift_event, dict):
        return {"run_id": context.aws_request_id, "outcome": "invalid_drift", "reason": "drift must be an object"}
    if isinstance(event, dict) and "resync" in event:
        try:
            resync = ResyncRequest.from_event(event["resync"])
        except InvalidResync as exc:
            logger.warning("resync request refused", reason=str(exc))
            return {"run_id": context.aws_request_id, "outcome": "invalid_resync", "reason": str(exc)}
    source = new_source()
    try:
        report = fetch_changes(
            source,
            publisher,
            state,
            fetch_config(settings),
            now=utc_now,
            run_id=context.aws_request_id,
            remaining_ms=context.get_remaining_time_in_millis,
            resync=resync,
            drift=drift_check(settings, drift_event),
            continuation=run_continuation(context.function_name),
            chain=FetchContinuation.from_event(event).chain,
        )
    except SalesforceBudgetExhausted as exc:
        # A clean stop: the watermark stays where it was and the next run reads the same window again.
        logger.warning("fetch stopped: Salesforce API budget", reason=str(exc))
        metrics.add_metric(name="ApiBudgetStops", unit=MetricUnit.Count, value=1)
        report = FetchReport(run_id=context.aws_request_id, outcome="stopped_api_budget", api_calls=source.api_calls)
    if report.outcome == "skipped_api_budget":
        logger.warning("fetch skipped: the API budget was spent at the last run's count", run_id=report.run_id)
        metrics.add_metric(name="ApiBudgetSkips", unit=MetricUnit.Count, value=1)
    if report.outcome == "paused_before_timeout":
        logger.info(
            "fetch paused before its timeout; the next run resumes the window",
            windows=report.windows,
            continued=report.continued,
        )
        metrics.add_metric(name="FetchContinuations", unit=MetricUnit.Count, value=int(report.continued == "started"))
    for rejected in report.rejected:
        # larger than the queue takes, or a value DynamoDB cannot store: `reason` says which (never a value)
        logger.error("change not queued: it can never be applied", run_id=report.run_id, **rejected)
    metrics.add_metric(name="RejectedChanges", unit=MetricUnit.Count, value=len(report.rejected))
    for sobject, count in report.queued.items():
        metrics.add_metric(name=f"{sobject}ChangesQueued", unit=MetricUnit.Count, value=count)
    for sobject, count in report.swept.items():
        metrics.add_metric(name=f"{sobject}ChangesSwept", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="FetchCheckpoints", unit=MetricUnit.Count, value=report.checkpoints)
    if report.sweep_lag_seconds is not None:
        metrics.add_metric(name="SweepLagSeconds", unit=MetricUnit.Seconds, value=report.sweep_lag_seconds)
    if report.resync is not None:
        queued = report.resync.get("queued")
        metrics.add_metric(
            name="AccountsResynced", unit=MetricUnit.Count, value=queued if isinstance(queued, int) else 0
        )
    if report.drift is not None:
        drifted = report.drift.get("drifted")
        metrics.add_metric(
            name="DriftedAccounts", unit=MetricUnit.Count, value=len(drifted) if isinstance(drifted, list) else 0
        )
    metrics.add_metric(name="SalesforceApiCalls", unit=MetricUnit.Count, value=report.api_calls)
    logger.info("fetch finished", **asdict(report))
    return asdict(report)
