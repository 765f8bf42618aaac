"""The operator's synchronous invocations of the fetch wait for a run in progress instead of failing at once.

With `ReservedConcurrentExecutions` 1, Lambda refuses a synchronous invocation while the fetch runs (the
schedule's run, or a chain of paused runs starting the next at once during an initial load).
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from account_sync_cli.deployment import Deployment
from account_sync_cli.resync import BUSY_ATTEMPTS, BUSY_WAIT_SECONDS, ResyncFailed, invoke_fetch
from botocore.response import StreamingBody
from botocore.stub import Stubber


def stubbed(busy_answers: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Deployment, Stubber]:
    client = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x").client(
        "lambda"
    )
    stubber = Stubber(client)
    for _ in range(busy_answers):
        stubber.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
    body = json.dumps({"outcome": "completed"}).encode()
    stubber.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))})
    deployment = Deployment("account-sync-test", {"FetchChangesFunction": "account-sync-test-fetch-changes"})
    monkeypatch.setattr(Deployment, "client", lambda self, service: client)
    return deployment, stubber


def test_a_busy_fetch_is_waited_for_and_then_invoked(monkeypatch):
    deployment, stubber = stubbed(busy_answers=3, monkeypatch=monkeypatch)
    waits: list[float] = []
    with stubber:
        report = invoke_fetch(deployment, {"drift": {}}, sleep=waits.append)
    assert report == {"outcome": "completed"} and waits == [BUSY_WAIT_SECONDS] * 3


def test_a_fetch_busy_for_longer_than_a_run_is_a_clear_failure(monkeypatch):
    deployment, stubber = stubbed(busy_answers=BUSY_ATTEMPTS, monkeypatch=monkeypatch)
    waits: list[float] = []
    with stubber, pytest.raises(ResyncFailed, match="busy with another run"):
        invoke_fetch(deployment, {}, sleep=waits.append)
    # a run lasts at most the fetch's Timeout (240 s): the command waited at least that long
    assert sum(waits) >= 240
