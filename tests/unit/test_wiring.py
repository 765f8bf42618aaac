"""What the fan-out is built with at cold start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from account_sync.adapters.dynamodb_models import ContactItem, dynamodb_client, reset_dynamodb_client
from account_sync.ports import QueueSendError
from account_sync.settings import Settings, SettingsError
from account_sync.wiring import build_change_publisher, build_fan_out, build_retry_visibility
from botocore.awsrequest import AWSResponse
from moto import mock_aws


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield
    ContactItem._connection = None
    reset_dynamodb_client()


# The least environment Settings takes; a test adds what it is about.
_ENVIRONMENT = {
    "CONTACTS_TABLE": "c",
    "ACCOUNTS_TABLE": "a",
    "ACTIVITIES_TABLE": "act",
    "SYNC_STATE_TABLE": "s",
    "SYNCED_ACCOUNT_FIELDS": "Name",
}


def _settings(**environment: str) -> Settings:
    return Settings.from_environment({**_ENVIRONMENT, **environment})


@pytest.mark.parametrize("writers", [16, 40])
def test_the_contacts_client_pools_a_connection_per_writer_thread(region, writers):
    # given the fan-out's settings with that many concurrent contact writes
    settings = Settings(
        stage="test",
        contacts_table="contacts",
        accounts_table="accounts",
        activities_table="activities",
        sync_state_table="sync-state",
        synced_account_fields=("Name",),
        account_changes_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/changes.fifo",
        activity_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/activities",
        fanout_write_concurrency=writers,
    )
    # when it is built
    build_fan_out(settings)
    # then no writer waits for, or opens and throws away, a connection of its own: neither pynamodb's client
    # (reads) nor the boto3 client the contact writes go through
    client = ContactItem._get_connection().connection.client
    assert client.meta.config.max_pool_connections == writers
    assert dynamodb_client().meta.config.max_pool_connections == writers


def test_a_consumer_hands_messages_back_to_its_own_queue_on_the_settings_schedule():
    settings = _settings(RETRY_VISIBILITY_BASE_SECONDS="3", RETRY_VISIBILITY_MAX_SECONDS="60")
    retry = build_retry_visibility(settings, "https://sqs.example/q", sqs=object())
    assert [retry.seconds(n) for n in (1, 2, 3, 4, 5, 6)] == [3, 6, 12, 24, 48, 60]
    with pytest.raises(SettingsError, match="own queue URL"):
        build_retry_visibility(settings, None)


@pytest.mark.parametrize("lanes", [1, 8, 32])
def test_the_fetchs_sender_has_its_lanes_and_a_connection_for_each(region, lanes):
    # given the fetch's settings with that many send lanes
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/changes.fifo"
    settings = _settings(ACCOUNT_CHANGES_QUEUE_URL=queue_url, FETCH_SEND_LANES=str(lanes))
    # when its publisher is built as the fetch builds it
    publisher = build_change_publisher(settings, lanes=settings.fetch_send_lanes)
    # then the sender sends on that many lanes, and no lane waits for a connection (botocore keeps 10 at least)
    sender = publisher._sender
    assert sender.lanes == lanes
    assert sender._client.meta.config.max_pool_connections == max(10, lanes)
    # and its client skips botocore's parameter validation (the fetch's CPU a message; the sender's requests are
    # strings), which the next test shows SQS makes up for: a body botocore would refuse reaches the wire
    sent: list[bytes] = []

    def intercept(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.body)
        return AWSResponse(request.url, 200, {}, _NoBody())

    sender._client.meta.events.register("before-send.sqs.SendMessageBatch", intercept)
    sender._client.send_message_batch(QueueUrl="https://sqs.example/q.fifo", Entries=[{"Id": "0", "MessageBody": 7}])
    assert b'"MessageBody": 7' in sent[0]


class _NoBody:
    def stream(self, **_: Any) -> Any:
        yield b"{}"


@dataclass(frozen=True)
class _GrouplessMessage:
    """A change message whose group is missing: a request botocore's validation would have refused."""

    group_id: str | None = None
    deduplication_id: str = "d-1"

    def to_body(self) -> str:
        return "{}"


def test_a_malformed_send_from_the_fetchs_unvalidated_client_still_fails_clearly(region):
    # given the fetch's publisher, its client without parameter validation, on a FIFO queue (moto)
    with mock_aws():
        url = boto3.client("sqs").create_queue(QueueName="changes.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        settings = _settings(ACCOUNT_CHANGES_QUEUE_URL=url)
        publisher = build_change_publisher(settings, lanes=2)
        publisher._sender._sleep = lambda _seconds: None
        # when it sends a message without its MessageGroupId
        # then the send fails, naming what SQS refused, and nothing is queued
        with pytest.raises(QueueSendError, match=r"MissingParameter.*MessageGroupId"):
            publisher.publish([_GrouplessMessage()])  # type: ignore[list-item]
        assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=url)
