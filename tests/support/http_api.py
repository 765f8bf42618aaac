"""HTTP API (payload 2.0) events for the API's handlers, made from the real-shaped files of `events/`.

    event = http_event("api_local_edit.json", contact_id="003...", body={"field": "Industry", "value": "x"})

The route of the file stays; the path parameters, the body, the query string and headers are the test's.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tests.support.events import load_event


def http_event(
    name: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **path_parameters: str,
) -> dict[str, Any]:
    event = load_event(name)
    template = event["routeKey"].split(" ", 1)[1]
    parameters = {**event.get("pathParameters", {}), **path_parameters}
    path = re.sub(r"\{(\w+)\}", lambda m: parameters[m.group(1)], template)
    event.update(rawPath=path, pathParameters=parameters)
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["requestId"] = uuid.uuid4().hex[:16]
    if body is not None or raw_body is not None:
        event["body"] = raw_body if raw_body is not None else json.dumps(body)
        event["isBase64Encoded"] = False
    if query is not None:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
        if not query:
            event.pop("queryStringParameters")
    if headers:
        event["headers"] = {**event["headers"], **{k.lower(): v for k, v in headers.items()}}
    return event


def response_json(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a handler's response (the API Gateway proxy result)."""
    return payload["statusCode"], json.loads(payload["body"]) if payload.get("body") else {}
