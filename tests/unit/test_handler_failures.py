"""How the SQS-triggered handlers answer when every message of a batch fails: a partial batch response.

Powertools raises by default when all records of a batch fail, which turns one poison message alone in its
batch into a function error: the Errors alarm fires for bad data, which the dead-letter queue's alarm is for
(docs/decisions.md). The handlers answer with the failures instead. No AWS call happens here but the fan-out's
setting the malformed message aside in its dead-letter queue (on moto).
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from local_stack.lambda_runtime import FunctionSpec, LambdaRuntime
from moto import mock_aws

from tests.support.events import load_event

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "account-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "AccountSync",
    "CONTACTS_TABLE": "account-sync-unit-contacts",
    "ACCOUNTS_TABLE": "account-sync-unit-accounts",
    "ACTIVITIES_TABLE": "account-sync-unit-activities",
    "SYNC_STATE_TABLE": "account-sync-unit-sync-state",
    "SYNCED_ACCOUNT_FIELDS": "Name,Industry",
    "ACCOUNT_CHANGES_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/account-sync-unit-account-changes.fifo",
    "ACTIVITY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/account-sync-unit-activities",
    "ACCOUNT_CHANGES_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/account-sync-unit-changes-dlq.fifo",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@pytest.fixture
def runtime() -> LambdaRuntime:
    specs = [
        FunctionSpec(
            logical_id=logical_id,
            function_name=f"account-sync-unit-{folder}",
            code_dir=ROOT / "functions" / folder,
            timeout=60,
            environment=ENVIRONMENT,
            layer_dirs=(ROOT / "layers" / "account_sync",),
        )
        for logical_id, folder in (("FanOutFunction", "fan_out"), ("ActivityLogFunction", "activity_log"))
    ]
    return LambdaRuntime(specs)


def only_the_malformed_record(name: str, body: str) -> dict:
    event = load_event(name)
    event["Records"] = event["Records"][-1:]
    event["Records"][0]["body"] = body
    return event


def test_a_fan_out_batch_of_one_malformed_message_is_set_aside_not_a_function_error(runtime, monkeypatch):
    # the FIFO consumer moves a malformed message to its dead-letter queue itself (issue 10, 2.5): it is then
    # processed, and its group goes on
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, ENVIRONMENT[name])
    event = only_the_malformed_record("fan_out_malformed.json", "not json")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="account-sync-unit-changes-dlq.fifo", Attributes={"FifoQueue": "true"})
        result = runtime.invoke("fan_out", event)
        (set_aside,) = sqs.receive_message(QueueUrl=dlq["QueueUrl"], MessageAttributeNames=["All"])["Messages"]
    assert result.error is None
    assert result.payload == {"batchItemFailures": []}
    assert set_aside["Body"] == "not json"
    assert set_aside["MessageAttributes"]["failure"]["StringValue"] == "malformed"


def test_a_fan_out_batch_of_one_malformed_message_whose_dlq_is_unreachable_is_a_partial_response(runtime):
    # no network here: the dead-letter queue cannot be reached, the message is handed back (SQS's redrive remains)
    event = only_the_malformed_record("fan_out_malformed.json", "not json")
    result = runtime.invoke("fan_out", event)
    assert result.error is None
    assert result.payload == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_an_activity_batch_of_one_malformed_message_is_a_partial_response_not_a_function_error(runtime):
    event = only_the_malformed_record("activity_log_batch.json", json.dumps({"type": "nothing we know"}))
    result = runtime.invoke("activity_log", event)
    assert result.error is None
    assert result.payload == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_a_push_batch_reports_its_malformed_event_and_reads_nothing_for_an_overflow():
    # the push function (issue 13): a body that is not a CDC event fails alone; an overflow names nothing to read,
    # so no Salesforce or AWS call is made (none could be: no network here)
    spec = FunctionSpec(
        logical_id="PushChangesFunction",
        function_name="account-sync-unit-push_changes",
        code_dir=ROOT / "functions" / "push_changes",
        timeout=60,
        environment={
            **ENVIRONMENT,
            "SALESFORCE_SECRET_NAME": "account-sync/salesforce",
            "SALESFORCE_TOKEN_URL": "https://login.salesforce.com/services/oauth2/token",
        },
        layer_dirs=(ROOT / "layers" / "account_sync",),
    )
    event = load_event("push_change_events.json")
    event["Records"] = [*event["Records"][-1:], {**event["Records"][0], "messageId": "bad-1", "body": "not json"}]
    result = LambdaRuntime([spec]).invoke("push_changes", event)
    assert result.error is None
    assert result.payload == {"batchItemFailures": [{"itemIdentifier": "bad-1"}]}
