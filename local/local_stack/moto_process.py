"""The child process of `MotoServer(separate_process=True)`: moto's server with the local stack's fixes, and a
count of the requests it serves.

`RequestCounter` wraps moto's WSGI application and counts every request per (service, action, resource), the
way AWS would bill it, at the endpoint itself rather than from what the client code believes it sent:

* the service from the SigV4 credential scope of `Authorization` (`.../us-east-1/dynamodb/aws4_request`);
* the action from `X-Amz-Target` (DynamoDB, JSON-protocol SQS, Secrets Manager: `DynamoDB_20120810.UpdateItem`)
  or else the `Action` parameter of the query string or of a form-encoded body (query-protocol services);
* the resource from a JSON body: the table (and index; `#COUNT` for a `Select=COUNT` query), the queue, or the
  tables of a batch request; with `items`, the entries of a batch request (`BatchWriteItem`, `*MessageBatch`).

`GET /_local/requests` answers the counts as JSON (`{"requests": [{service, action, resource, count, items,
seconds, units}], "connections": N}`, `seconds` being the time moto spent on them, `units` (DynamoDB only) the
capacity units they consumed per table or `table/index`, `[read, write]`, as `local_stack.dynamodb_capacity`
computes them, and `connections` the TCP connections the requests came on: a client that keeps its connections
alive opens few); `POST /_local/requests/reset` sets them to zero. `LOCAL_STACK_MOTO_PROFILE=<file>` samples where
its requests spend their time (`local_stack.moto_profile`).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any
from urllib.parse import parse_qs

from local_stack import dynamodb_capacity, moto_profile
from local_stack.moto_fixes import apply_moto_fixes
from local_stack.moto_server import HOST

COUNTS_PATH = "/_local/requests"
RESET_PATH = "/_local/requests/reset"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_TARGET_SERVICES = {"DynamoDB": "dynamodb", "AmazonSQS": "sqs", "secretsmanager": "secretsmanager"}
_BATCH_ENTRIES = {
    "SendMessageBatch": "Entries",
    "DeleteMessageBatch": "Entries",
    "ChangeMessageVisibilityBatch": "Entries",
}

StartResponse = Callable[..., Any]


class RequestCounter:
    """WSGI middleware counting the requests the wrapped application serves (see the module docstring)."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], list[Any]] = {}  # count, items, seconds, units
        self._connections: set[tuple[str, str]] = set()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in (COUNTS_PATH, RESET_PATH):
            return self._answer(environ, start_response, path)
        key, items, payload = self._classify(environ)
        with self._lock:
            self._connections.add((environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT", "")))
        started = time.perf_counter()
        metering = dynamodb_capacity.metered(key[1], payload) if key[0] == "dynamodb" else nullcontext(None)
        with metering as consumed:
            try:
                return self.app(environ, start_response)
            finally:
                self.record(key, items, time.perf_counter() - started, consumed.units if consumed else None)

    def record(
        self,
        key: tuple[str, str, str],
        items: int,
        seconds: float,
        units: dict[str, list[float]] | None = None,
    ) -> None:
        with self._lock:
            counts = self._counts.setdefault(key, [0, 0, 0.0, {}])
            counts[0] += 1
            counts[1] += items
            counts[2] += seconds
            for target, (read, write) in (units or {}).items():
                total = counts[3].setdefault(target, [0.0, 0.0])
                total[0] += read
                total[1] += write

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "service": s,
                    "action": a,
                    "resource": r,
                    "count": int(c),
                    "items": int(i),
                    "seconds": round(t, 6),
                    **({"units": {target: list(rw) for target, rw in u.items()}} if u else {}),
                }
                for (s, a, r), (c, i, t, u) in sorted(self._counts.items())
            ]

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._connections.clear()

    @staticmethod
    def classify(environ: dict[str, Any]) -> tuple[tuple[str, str, str], int]:
        """(service, action, resource) of a request, and how many entries a batch request carries. The body is
        read once and put back for the application."""
        key, items, _ = RequestCounter._classify(environ)
        return key, items

    @staticmethod
    def _classify(environ: dict[str, Any]) -> tuple[tuple[str, str, str], int, dict[str, Any]]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        scope = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        prefix, _, target_action = target.partition(".")
        service = scope.group(1) if scope else _TARGET_SERVICES.get(prefix.split("_")[0], "unknown")
        body = _read_body(environ)
        action = target_action
        if not action:
            params = parse_qs(environ.get("QUERY_STRING", ""))
            if not params.get("Action") and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
                params = parse_qs(body.decode("utf-8", "replace"))
            action = (
                params.get("Action") or [environ.get("REQUEST_METHOD", "?") + " " + environ.get("PATH_INFO", "")]
            )[0]
        resource, items, payload = "", 0, None
        if body[:1] == b"{":
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                resource, items = _resource(action, payload)
        return (service, action, resource), items, payload if isinstance(payload, dict) else {}

    def _answer(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if path == RESET_PATH and method == "POST":
            self.reset()
            body = b'{"reset": true}'
        elif path == COUNTS_PATH and method == "GET":
            body = json.dumps({"requests": self.snapshot(), "connections": self.connections}).encode()
        else:
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Content-Length", "0")])
            return [b""]
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _resource(action: str, payload: dict[str, Any]) -> tuple[str, int]:
    if isinstance(payload.get("RequestItems"), dict):
        tables = payload["RequestItems"]
        entries = sum(len(v) if isinstance(v, list) else len(v.get("Keys", [])) for v in tables.values())
        return ",".join(sorted(tables)), entries
    if "TableName" in payload:
        resource = str(payload["TableName"])
        if payload.get("IndexName"):
            resource += "/" + str(payload["IndexName"])
        if payload.get("Select") == "COUNT":
            resource += "#COUNT"
        return resource, 0
    if "QueueUrl" in payload:
        entries = payload.get(_BATCH_ENTRIES.get(action, ""), [])
        return str(payload["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1], len(entries) if isinstance(entries, list) else 0
    if "QueueName" in payload:
        return str(payload["QueueName"]), 0
    if "SecretId" in payload:
        return str(payload["SecretId"]), 0
    return "", 0


_keeping_alive = threading.local()  # `on`: this thread's connection stays open after the current response


class _NothingToDrain:
    """The selector werkzeug drains a request's unread input with, on a connection kept open: the next request's
    bytes are not unread input (and the drain waited 10 ms for more on every request)."""

    def register(self, *args: Any) -> None:
        pass

    def select(self, timeout: float | None = None) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class _SelectorsForServing:
    """The `selectors` module as werkzeug's server sees it: `DefaultSelector()` is `_NothingToDrain` on a
    connection kept open."""

    def __getattr__(self, name: str) -> Any:
        import selectors

        return getattr(selectors, name)

    def DefaultSelector(self) -> Any:  # the name of `selectors`' class
        import selectors

        return _NothingToDrain() if getattr(_keeping_alive, "on", False) else selectors.DefaultSelector()


def keep_alive_handler() -> type:
    """moto's request handler, keeping a connection open between requests (HTTP/1.1's default).

    werkzeug's development server closes every connection it answers ("Connection: close"), then reads and drops
    whatever the client sent after the request, since Python's http.server cannot skip a body the application left
    unread. The moto server's application is a `RequestCounter`, which reads every body whole by its
    Content-Length: after a request without a chunked body nothing is left unread, so the connection serves the
    next request. Without this, each request of a demo opened a TCP connection and a server thread of its own,
    and waited 10 ms in the drain (measured: 956 connections for the 956 requests of a push bench run)."""
    import werkzeug.serving
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    werkzeug.serving.selectors = _SelectorsForServing()  # type: ignore[assignment]

    class KeepAliveRequestHandler(MotoRequestHandler):
        # A response is written in two parts (headers, body): without TCP_NODELAY the body waits for the client's
        # acknowledgement of the headers, which a kept-alive connection delays by 40 ms (delayed ACK).
        disable_nagle_algorithm = True

        def handle_one_request(self) -> None:
            _keeping_alive.on = False
            super().handle_one_request()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # werkzeug formats the access line (path, date, colours) before its logger drops it at ERROR
            if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
                super().log_request(code, size)

        def send_header(self, keyword: str, value: str) -> None:
            if (
                keyword.lower() == "connection"
                and value.lower() == "close"
                and "chunked" not in self.headers.get("Transfer-Encoding", "").lower()
            ):
                _keeping_alive.on = not self.close_connection  # the client's choice (its request's Connection)
                return
            super().send_header(keyword, value)

    return KeepAliveRequestHandler


class CountingMotoServer:
    """moto's server (as `moto.server.ThreadedMotoServer` runs it) behind a `RequestCounter`, in a thread."""

    def __init__(self, host: str, port: int, fd: int | None = None) -> None:
        self.host = host
        self.port = port  # 0: a free one, chosen when binding (read it after `start()`)
        self.fd = fd  # a listening socket handed over by the parent process, instead of binding
        self.counter: RequestCounter | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> CountingMotoServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        apply_moto_fixes()
        dynamodb_capacity.install()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
        self.counter = RequestCounter(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self.host, self.port, self.counter, threaded=True, request_handler=keep_alive_handler(), fd=self.fd
        )
        self.port = self._server.port
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        profile = os.environ.get(moto_profile.PROFILE_ENV)
        if profile:
            moto_profile.Sampler(profile, RequestCounter.__call__.__code__).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fd", type=int, default=None, help="serve on this listening socket, inherited")
    args = parser.parse_args(argv)
    # The stack's placeholder resource (template.py's _NOTHING), which moto does not model: not worth a line on stderr.
    warnings.filterwarnings("ignore", "Tried to parse AWS::CloudFormation::WaitConditionHandle")
    CountingMotoServer(args.host, args.port, args.fd).start()
    while True:  # until the parent terminates this process
        time.sleep(3600)


if __name__ == "__main__":
    main()
