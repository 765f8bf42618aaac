"""What the fan-out is built with at cold start."""

from __future__ import annotations

import pytest
from account_sync.adapters.dynamodb_models import ContactItem, dynamodb_client, reset_dynamodb_client
from account_sync.settings import Settings
from account_sync.wiring import build_fan_out


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield
    ContactItem._connection = None
    reset_dynamodb_client()


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
