"""moto in server mode on 127.0.0.1, and the environment that points boto3 and pynamodb at it.

Every client finds the server through the environment alone, with no endpoint in the code:

* boto3 and botocore (>= 1.31) read `AWS_ENDPOINT_URL` when a client is created (`AWS_ENDPOINT_URL_<SERVICE>`
  would win for one service; `fake_aws_env` removes those so that nothing points elsewhere).
* pynamodb 6.1 creates its client with `botocore.session.get_session().create_client("dynamodb", region,
  endpoint_url=Meta.host)`; with `Meta.host` unset that is `endpoint_url=None`, so botocore resolves the
  endpoint from `AWS_ENDPOINT_URL` too (checked by `tests/integration/local_stack/test_local_moto_server.py`).
  No `Meta.host` is needed, and none should be set: the deployed functions must use the real endpoint. Two
  caveats: pynamodb caches its connection on the model class (`Model._connection`) and the client inside it,
  so the environment must be in place before a model's first request (`reset_pynamodb_connections()` drops
  those caches; `LocalStack` and the `aws` test fixture call it);
  and its region comes from `Meta.region` or else `AWS_DEFAULT_REGION`, which the environment sets too.

The credentials are fake and the region is us-east-1: nothing here can reach real AWS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

REGION = "us-east-1"
HOST = "127.0.0.1"

# Variables that would send a client elsewhere, or to a real account's profile.
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_STS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


def fake_aws_env(endpoint_url: str | None = None) -> dict[str, str | None]:
    """The variables to set (a value) and to remove (None) so that boto3 and pynamodb use fake credentials,
    us-east-1 and, when given, the endpoint. Without an endpoint (for `mock_aws`), AWS_ENDPOINT_URL is removed."""
    env: dict[str, str | None] = dict.fromkeys(_UNSET)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def apply_env(env: Mapping[str, str | None], environ: MutableMapping[str, str] | None = None) -> dict[str, str | None]:
    """Apply `fake_aws_env()`-style changes; return the previous values, for `apply_env(previous)` to undo."""
    target = os.environ if environ is None else environ
    previous = {name: target.get(name) for name in env}
    for name, value in env.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return previous


def reset_pynamodb_connections() -> None:
    """Drop the connection (and botocore client) every pynamodb model class has cached, so that its next
    request follows the environment of now: a new moto server's endpoint, or none under `mock_aws`."""
    try:
        from pynamodb.models import Model
    except ImportError:  # pragma: no cover - pynamodb is a project dependency
        return
    pending = list(Model.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        model._connection = None
    try:  # and the store's own boto3 client, when the store is loaded in this process
        from account_sync.adapters.dynamodb_models import reset_dynamodb_client
    except ImportError:
        return
    reset_dynamodb_client()


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """moto's threaded server on 127.0.0.1 (a free port unless one is given), counting the requests it serves
    (`request_counts()`; see `local_stack.moto_process`).

    In this process by default; with `separate_process=True` in a child process, so that the server and the
    code under test do not share one interpreter lock (on two cores, a demo or a benchmark runs about twice as
    fast). Use as a context manager, or `start()` / `stop()`. `apply_env()` points this process's clients at
    it; `env` gives the same variables for a child process.
    """

    def __init__(self, port: int | None = None, host: str = HOST, separate_process: bool = False) -> None:
        self.host = host
        self.port = port
        self.separate_process = separate_process
        self._server: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self._previous_env: dict[str, str | None] | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the moto server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id when it runs in a process of its own (to read its CPU), else None."""
        return self._process.pid if self._process is not None else None

    @property
    def env(self) -> dict[str, str | None]:
        return fake_aws_env(self.endpoint_url)

    def start(self) -> MotoServer:
        """Without a port, the server's socket is bound to a free one and kept: a port found free and bound
        later could be taken in between (by another test worker's server, or a client's outgoing connection)."""
        if not self.separate_process:
            from local_stack.moto_process import CountingMotoServer

            self._server = CountingMotoServer(self.host, self.port or 0).start()
            self.port = self._server.port
            return self
        local_dir = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([local_dir, os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, "-m", "local_stack.moto_process", "--host", self.host]
        if self.port is not None:
            self._process = subprocess.Popen([*command, "--port", str(self.port)], env=env)  # noqa: S603 - ours
        else:
            with socket.create_server((self.host, 0)) as listening:  # the child serves on this very socket
                self.port = int(listening.getsockname()[1])
                fd = listening.fileno()
                self._process = subprocess.Popen([*command, "--fd", str(fd)], env=env, pass_fds=[fd])  # noqa: S603
        self._wait_until_serving()
        return self

    def _wait_until_serving(self, timeout: float = 30.0) -> None:
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"the moto server process exited with {self._process.returncode}")
            try:
                self.request_report()  # an answer, not only a connection: the socket listens before the child
                return
            except (OSError, http.client.HTTPException, RuntimeError):
                time.sleep(0.05)
        raise RuntimeError(f"the moto server did not answer on {self.endpoint_url} within {timeout:.0f} s")

    def apply_env(self) -> None:
        """Point boto3 and pynamodb in this process at the server; `stop()` puts the environment back."""
        previous = apply_env(self.env)
        if self._previous_env is None:
            self._previous_env = previous

    def reset(self) -> None:
        """Forget every resource (moto's reset API), e.g. between two demos on one server."""
        self._local_request("POST", "/moto-api/reset")

    def request_counts(self) -> list[dict[str, Any]]:
        """The requests the server has served since it started (or since `reset_request_counts()`), counted by
        the server itself: `[{service, action, resource, count, items, seconds}]` (see `moto_process`)."""
        return list(self.request_report()["requests"])

    def request_report(self) -> dict[str, Any]:
        """`request_counts()` and `connections`: how many TCP connections those requests came on."""
        from local_stack.moto_process import COUNTS_PATH

        return dict(json.loads(self._local_request("GET", COUNTS_PATH)))

    def reset_request_counts(self) -> None:
        from local_stack.moto_process import RESET_PATH

        self._local_request("POST", RESET_PATH)

    def _local_request(self, method: str, path: str) -> bytes:
        import http.client

        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {response.status}")
            return body
        finally:
            connection.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._previous_env is not None:
            apply_env(self._previous_env)
            self._previous_env = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
