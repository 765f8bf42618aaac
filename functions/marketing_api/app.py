"""Marketing API: local account-field edits (SPEC R3) and reading the history, behind an IAM-authorized HTTP API.

    POST /contacts/{contact_id}/account-edits          -> 202, the edit queued for the fan-out
    GET  /contacts/{contact_id}/activities             -> the contact's Change Data Value activities, newest first
    GET  /accounts/{account_id}/suppressed-changes     -> the account's changes logged without activities

No simple-salesforce here: this function never talks to Salesforce (Convert Person is its own function).
"""

from __future__ import annotations

import dataclasses
import functools
from http import HTTPStatus
from typing import Any

from account_sync import api_models
from account_sync.http_api import caller, install_error_handlers, json_response, request_body
from account_sync.observability import logger, metrics
from account_sync.services.history import History, HistoryPage
from account_sync.services.local_edit import LocalEdits
from account_sync.settings import load_settings
from account_sync.tracing import tracer
from account_sync.wiring import build_history, build_local_edits
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayHttpResolver()
install_error_handlers(app, logger)


@functools.cache
def local_edits() -> LocalEdits:
    return build_local_edits(load_settings())


@functools.cache
def history() -> History:
    return build_history(load_settings())


@app.post("/contacts/<contact_id>/account-edits")
def edit_account_field(contact_id: str) -> Response:
    contact_id = api_models.record_id(contact_id, "contact_id")
    body = api_models.LocalEditBody.parse(request_body(app))
    key = api_models.idempotency_key(app.current_event.headers.get("idempotency-key"))
    queued = local_edits().request(contact_id, body.field, body.value, idempotency_key=key)
    logger.info(
        "local edit queued",
        edit_id=queued.edit_id,
        contact_id=contact_id,
        account_id=queued.account_id,
        field=queued.field,
        caller_account=caller(app).account_id,
    )
    metrics.add_metric(name="LocalEditsQueued", unit=MetricUnit.Count, value=1)
    return json_response(HTTPStatus.ACCEPTED, {**dataclasses.asdict(queued), "status": "queued"})


@app.get("/contacts/<contact_id>/activities")
def contact_activities(contact_id: str) -> Response:
    contact_id = api_models.record_id(contact_id, "contact_id")
    page = history().contact_activities(contact_id, api_models.page_request(app.current_event.query_string_parameters))
    return _page_response(page)


@app.get("/accounts/<account_id>/suppressed-changes")
def account_suppressed_changes(account_id: str) -> Response:
    account_id = api_models.record_id(account_id, "account_id")
    page = history().account_suppressed_changes(
        account_id, api_models.page_request(app.current_event.query_string_parameters)
    )
    return _page_response(page)


def _page_response(page: HistoryPage) -> Response:
    return json_response(HTTPStatus.OK, {"items": page.items, "next_token": page.next_token})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses hold contact data: not in traces
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
