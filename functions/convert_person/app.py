"""Convert Person (SPEC R5), behind the IAM-authorized HTTP API:

    POST /people/{person_id}/convert    -> 201, the Account, Contact and Opportunity created in Salesforce

The only function besides the fetch that talks to Salesforce, and the only one that writes there. A narrow,
dangerous tool: "if you are not sure, you should probably not use it". The request must say `"confirm": true`;
nothing converts a person implicitly. The same request again is safe: it never creates a second account.
"""

from __future__ import annotations

import functools
from http import HTTPStatus
from typing import Any

from account_sync import api_models
from account_sync.http_api import caller, install_error_handlers, json_response, request_body
from account_sync.observability import logger, metrics
from account_sync.services.convert_person import PersonConversions
from account_sync.settings import Settings, load_settings
from account_sync.tracing import tracer
from account_sync.wiring import build_person_conversions
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayHttpResolver()
install_error_handlers(app, logger)


@functools.cache
def dependencies() -> tuple[Settings, PersonConversions]:
    settings = load_settings()
    return settings, build_person_conversions(settings)


@app.post("/people/<person_id>/convert")
def convert_person(person_id: str) -> Response:
    person_id = api_models.record_id(person_id, "person_id")
    settings, conversions = dependencies()
    request = api_models.conversion_request(request_body(app), settings.synced_account_fields)
    requester = caller(app)
    result = conversions.convert(person_id, request, requested_by=requester.user_arn)
    done = result.conversion
    logger.info(
        "person converted",
        person_id=person_id,
        account_id=done.account_id,
        contact_id=done.contact_id,
        opportunity_id=done.opportunity_id,
        records_created=result.created,
        caller_account=requester.account_id,
    )
    metrics.add_metric(name="PeopleConverted", unit=MetricUnit.Count, value=1)
    return json_response(
        HTTPStatus.CREATED,
        {
            "person_id": person_id,
            "account_id": done.account_id,
            "contact_id": done.contact_id,
            "opportunity_id": done.opportunity_id,
            "conversion_key": done.conversion_key,
            "converted_at": done.converted_at,
            "created": result.created,
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses hold contact data: not in traces
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
