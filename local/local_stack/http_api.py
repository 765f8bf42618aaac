"""The template's HTTP API on a local port: each request becomes the payload-2.0 event API Gateway would send.

    api = LocalHttpApi(stack.runtime, http_routes(stack.template)).start()    # http://127.0.0.1:<port>/
    requests.post(api.url + "contacts/003.../account-edits", json={"field": "Industry", "value": "Retail"})

Routes come from the functions' `HttpApi` events in template.yaml (method and path, `{name}` parameters); a
request that matches none answers API Gateway's own `404 {"message":"Not Found"}`, a function that fails (an
error, not an error *response*) its `500 {"message":"Internal Server Error"}`. The function's response (statusCode,
headers, body, isBase64Encoded, cookies) is written back as it is.

Not like API Gateway: requests are not signed. Every event carries the same IAM identity
(`requestContext.authorizer.iam`, a local developer of account 123456789012), so listen on 127.0.0.1 only.
Invocations are serialised by the runtime, as one concurrent execution per function would be.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local_stack.lambda_runtime import LambdaRuntime
from local_stack.template import FUNCTION, Template, as_template, function_properties

logger = logging.getLogger(__name__)

LOCAL_ACCOUNT = "123456789012"
LOCAL_IDENTITY = {
    "accessKey": "ASIALOCALDEVELOPER00",
    "accountId": LOCAL_ACCOUNT,
    "callerId": "AIDALOCALDEVELOPER00",
    "cognitoIdentity": None,
    "principalOrgId": None,
    "userArn": f"arn:aws:iam::{LOCAL_ACCOUNT}:user/local-developer",
    "userId": "AIDALOCALDEVELOPER00",
}
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class HttpRoute:
    function_logical_id: str
    method: str
    path: str  # /contacts/{contact_id}/account-edits
    pattern: re.Pattern[str]

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method and self.method != "ANY":
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else {name: unquote(value) for name, value in found.groupdict().items()}


def http_routes(template: Template | None = None) -> list[HttpRoute]:
    """Every `HttpApi` event of every function of the template."""
    tpl = as_template(template)
    routes = []
    for logical_id in tpl.logical_ids(FUNCTION):
        for event in (function_properties(tpl, logical_id).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            method, path = str(props.get("Method", "ANY")).upper(), str(props.get("Path", "/"))
            pattern = re.compile(
                "".join(
                    f"(?P<{part[1:-1]}>[^/]+)" if _PARAMETER.fullmatch(part) else re.escape(part)
                    for part in re.split(r"(\{\w+\})", path)
                )
            )
            routes.append(HttpRoute(logical_id, method, path, pattern))
    return routes


def http_event(
    route: HttpRoute,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    path_parameters: Mapping[str, str],
    host: str,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The event of API Gateway's payload format 2.0 for one request."""
    parts = urlsplit(target)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
    }
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered.pop("cookie").split(";") if c.strip()]
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": LOCAL_ACCOUNT,
        "apiId": "local",
        "authorizer": {"iam": dict(LOCAL_IDENTITY)},
        "domainName": host,
        "domainPrefix": host.split(".")[0].split(":")[0],
        "http": {
            "method": method,
            "path": parts.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": lowered.get("user-agent", ""),
        },
        "requestId": base64.b64encode(uuid.uuid4().bytes[:12]).decode(),
        "routeKey": route.route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        try:
            event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["isBase64Encoded"] = False
    return event


class LocalHttpApi:
    def __init__(
        self, runtime: LambdaRuntime, routes: Iterable[HttpRoute], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.runtime = runtime
        self.routes = list(routes)
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalHttpApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api._serve(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("%s - %s", self.address_string(), format % args)

        self._server = ThreadingHTTPServer(self._address, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-http-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalHttpApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the local HTTP API is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}/"

    # --- one request ---

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(request, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "Request Entity Too Large"})
            return
        body = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        for route in self.routes:
            parameters = route.match(request.command, path)
            if parameters is not None:
                break
        else:
            self._answer(request, HTTPStatus.NOT_FOUND, {"message": "Not Found"})
            return
        host = request.headers.get("Host") or f"{self._address[0]}:{self.port}"
        event = http_event(
            route, request.command, request.path, dict(request.headers.items()), body, parameters, host,
            request.client_address[0],
        )  # fmt: skip
        result = self.runtime.invoke(route.function_logical_id, event)
        if result.error is not None:
            logger.warning("%s failed: %s", route.function_logical_id, result.error.get("errorMessage"))
            self._answer(request, HTTPStatus.INTERNAL_SERVER_ERROR, {"message": "Internal Server Error"})
        else:
            self._write(request, result.payload)
        logger.debug(
            "%s %s -> %s in %.0f ms", request.command, path, route.route_key, 1000 * (time.monotonic() - started)
        )

    def _answer(self, request: BaseHTTPRequestHandler, status: int, payload: Mapping[str, Any]) -> None:
        self._write(request, {"statusCode": int(status), "headers": {"Content-Type": "application/json"},
                              "body": json.dumps(payload)})  # fmt: skip

    @staticmethod
    def _write(request: BaseHTTPRequestHandler, response: Any) -> None:
        """A payload-2.0 response; like API Gateway, anything that is not one is a JSON body with status 200."""
        if not isinstance(response, dict) or "statusCode" not in response:
            response = {
                "statusCode": 200,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(response),
            }
        raw = response.get("body") or ""
        data = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode()
        request.send_response(int(response["statusCode"]))
        for name, value in (response.get("headers") or {}).items():
            request.send_header(name, str(value))
        for name, values in (response.get("multiValueHeaders") or {}).items():
            for value in values:
                request.send_header(name, str(value))
        for cookie in response.get("cookies") or []:
            request.send_header("Set-Cookie", cookie)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)
