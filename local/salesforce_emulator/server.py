"""HTTPS transport: a threading ``http.server`` with TLS done per connection, in the worker thread."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .routes import JSON_TYPE, Api, Response

logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: requests.Session reuses its connections
    server_version = "SalesforceEmulator/1.0"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms ACK stalls
    server: TlsServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            response = self.server.api.handle(self.command, self.path, headers, body)
        except Exception:
            logger.exception("emulator failure on %s %s", self.command, self.path)
            error = {"message": "An unexpected error occurred in the emulator.", "errorCode": "UNKNOWN_EXCEPTION"}
            response = Response(500, [error])
        if response is None:  # drop the connection without answering
            self.close_connection = True
            return
        payload = response.payload()
        headers = dict(response.headers)
        content_type = headers.pop("Content-Type", JSON_TYPE)
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api, context: ssl.SSLContext):
        self.api = api
        self.context = context
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """End every open keep-alive connection (after ``shutdown()``, so that nothing is served)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown wakes the handler thread blocked on a read.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a slow or broken client
        # never blocks the accept loop.
        request.settimeout(_Handler.timeout)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            logger.debug("TLS handshake failed with %s: %s", client_address, error)
            return
        with self._connections_lock:
            self._connections.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()


def serve_in_background(server: TlsServer) -> threading.Thread:
    # A short poll interval keeps stop() fast: shutdown() waits for the loop's next poll.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="salesforce-emulator", daemon=True
    )
    thread.start()
    return thread


def tls_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
