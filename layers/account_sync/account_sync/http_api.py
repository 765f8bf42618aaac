"""The edge of the HTTP API (API Gateway HTTP API, payload 2.0, IAM authorization): one error shape, one mapping
of the project's errors to HTTP statuses, the caller's identity. Used by the marketing API and Convert Person.

Every error answers `{"error": {"code": "...", "message": "..."}}` (plus `details` where there is something to
add) with a stable `code`; programs branch on the code, people read the message. Log lines name the code, ids and
field names, never a request body: bodies hold names and email addresses.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from account_sync.ports import (
    SalesforceAuthError,
    SalesforceBudgetExhausted,
    SalesforceQueryError,
    SalesforceRejected,
    SalesforceSetupError,
    TransientError,
)
from account_sync.services.refusals import (
    Conflict,
    InvalidRequest,
    NotFound,
    Refused,
    Unprocessable,
    UnsupportedMediaType,
)

SETUP_CODE = "SALESFORCE_EXTERNAL_ID_MISSING"
REFUSAL_STATUS: Mapping[type[Refused], HTTPStatus] = {
    InvalidRequest: HTTPStatus.BAD_REQUEST,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
    Unprocessable: HTTPStatus.UNPROCESSABLE_ENTITY,
    UnsupportedMediaType: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
}


def json_response(status: int, payload: Mapping[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=dict(payload))


def error_response(
    status: int, code: str, message: str, details: Mapping[str, Any] | None = None, retry_after: int | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = dict(details)
    response = json_response(status, {"error": error})
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def request_body(app: APIGatewayHttpResolver) -> str | None:
    """The request's body as text, or a refusal with a code: a Content-Type other than JSON (415
    UNSUPPORTED_MEDIA_TYPE; none at all is taken as JSON), base64 that is not, or bytes that are not UTF-8 (400
    INVALID_BODY_ENCODING). Powertools' `decoded_body` raises there, which answered 500."""
    event = app.current_event
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType("UNSUPPORTED_MEDIA_TYPE", "the body must be JSON (Content-Type: application/json)")
    body = event.body
    if not body or not event.is_base64_encoded:
        return body
    try:
        return base64.b64decode(body.encode(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequest("INVALID_BODY_ENCODING", "the body is not UTF-8 text") from None


@dataclass(frozen=True)
class Caller:
    """Who signed the request (SigV4, checked by API Gateway before the function runs)."""

    account_id: str | None
    user_arn: str | None


def caller(app: APIGatewayHttpResolver) -> Caller:
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    return Caller(account_id=iam.get("accountId"), user_arn=iam.get("userArn"))


def install_error_handlers(app: APIGatewayHttpResolver, logger: Logger) -> None:
    """Map each error of the project to its answer, once for every route."""

    @app.exception_handler(Refused)
    def refused(exc: Refused) -> Response:
        status = next((s for kind, s in REFUSAL_STATUS.items() if isinstance(exc, kind)), HTTPStatus.BAD_REQUEST)
        logger.info("request refused", status=int(status), code=exc.code)
        return error_response(status, exc.code, exc.message, exc.details)

    @app.exception_handler(SalesforceRejected)
    def rejected(exc: SalesforceRejected) -> Response:
        causes = [
            {"record": f.reference_id, "code": f.code, **({"fields": list(f.fields)} if f.fields else {})}
            for f in exc.failures
        ]
        logger.warning("Salesforce refused the request", failures=causes)
        first = exc.failures[0]
        named = f" ({', '.join(first.fields)})" if first.fields else ""
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "SALESFORCE_REJECTED",
            f"Salesforce refused the {first.reference_id or 'request'}: {first.code}{named}. Nothing was created "
            "in Salesforce and nothing was changed in the store.",
            {"failures": causes},
        )

    @app.exception_handler(SalesforceBudgetExhausted)
    def budget(exc: SalesforceBudgetExhausted) -> Response:
        logger.warning("Salesforce API limit reached", reason=str(exc))
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "SALESFORCE_LIMIT_REACHED",
            "the Salesforce org's daily API limit is used up; nothing was created, try again later",
            retry_after=3600,
        )

    @app.exception_handler(SalesforceSetupError)
    def setup(exc: SalesforceSetupError) -> Response:
        problems = [{"object": p.sobject, "field": p.field, "problem": p.problem.value} for p in exc.problems]
        if exc.first_report:  # once per container while the org stays wrong (the converter rechecks it every 5 min)
            logger.error("the Salesforce org is not set up for this request", code=SETUP_CODE, problems=problems)
        else:
            logger.info("request refused", status=int(HTTPStatus.SERVICE_UNAVAILABLE), code=SETUP_CODE)
        fields = sorted({p.field for p in exc.problems})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            SETUP_CODE,
            f"the Salesforce org is not set up for Convert Person: {exc}. It needs {', '.join(fields)} (text, "
            "Unique, External ID) on Account, Contact and Opportunity, visible to the integration user. Nothing "
            "was sent to Salesforce.",
            {"problems": problems},
        )

    @app.exception_handler(SalesforceAuthError)
    def auth(exc: SalesforceAuthError) -> Response:
        logger.error("Salesforce authentication failed", reason=str(exc))
        return error_response(
            HTTPStatus.BAD_GATEWAY,
            "SALESFORCE_AUTH_FAILED",
            "Account Sync could not sign in to Salesforce (see the function's logs); nothing was created",
        )

    @app.exception_handler(SalesforceQueryError)
    def salesforce_error(exc: SalesforceQueryError) -> Response:
        logger.error("Salesforce answered an error", code=exc.code)
        return error_response(
            HTTPStatus.BAD_GATEWAY,
            "SALESFORCE_ERROR",
            f"Salesforce answered {exc.code}; nothing was created or linked",
        )

    @app.exception_handler(TransientError)
    def transient(exc: TransientError) -> Response:
        logger.warning("temporarily unavailable", reason=str(exc))
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            "a service Account Sync depends on did not answer in time; the same request again is safe",
            retry_after=5,
        )

    @app.not_found
    def no_route(exc: NotFoundError) -> Response:
        event = app.current_event
        return error_response(
            HTTPStatus.NOT_FOUND, "ROUTE_NOT_FOUND", f"no route {event.http_method} {event.path} in this API"
        )

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("request failed")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "the request failed; it is in the function's logs"
        )
