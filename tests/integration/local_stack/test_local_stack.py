"""LocalStack and `python -m local_stack`: a template's functions run against its resources on a moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from local_stack.__main__ import main
from local_stack.lambda_runtime import LambdaInvocationError
from local_stack.moto_server import fake_aws_env
from local_stack.stack import LocalStack

from tests.integration.local_stack.throwaway import write_app

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def app(tmp_path, monkeypatch) -> Path:
    """The little application of `throwaway.APP_TEMPLATE` on disk, and a host environment without AWS variables."""
    for name in fake_aws_env():
        monkeypatch.delenv(name, raising=False)
    return write_app(tmp_path)


def test_a_scheduled_producer_feeds_an_sqs_consumer_until_the_queues_are_empty(app):
    # given the application on a local stack
    with LocalStack(app, stage="e2e", parameter_overrides={"Greeting": "hi"}) as stack:
        # when the schedule fires and the triggers run until every queue is empty
        produced = stack.run_schedule("ProducerFunction")
        totals = stack.drain()
        # then the consumer wrote the good messages, and the poison one went to the dead-letter queue
        assert produced == {"sent": 3, "function": "app-e2e-producer"}
        assert totals.empty
        assert (totals.succeeded, totals.moved_to_dlq) == (2, 1)
        items = boto3.resource("dynamodb").Table("app-e2e-results").scan()["Items"]
        assert sorted((item["id"], item["greeting"]) for item in items) == [("one", "hi"), ("two", "hi")]
        dlq = stack.resources.queue_url("WorkDeadLetterQueue")
        (dead,) = boto3.client("sqs").receive_message(QueueUrl=dlq)["Messages"]
        assert dead["Body"] == "poison"
        consumer = stack.runtime.stats["ConsumerFunction"]
        assert consumer.cold_starts == 1 and consumer.invocations == 2


def test_the_environment_holds_the_stack_while_it_runs_and_is_restored_after(app, monkeypatch):
    monkeypatch.setenv("GREETING", "host value")
    with LocalStack(app, stage="env", extra_env={"EMULATOR_URL": "http://127.0.0.1:9"}) as stack:
        assert os.environ["AWS_ENDPOINT_URL"] == stack.endpoint_url
        assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
        assert os.environ["RESULTS_TABLE"] == "app-env-results"
        assert os.environ["WORK_QUEUE_URL"] == stack.resources.queue_url("WorkQueue")
        assert os.environ["GREETING"] == "hello"
        assert os.environ["EMULATOR_URL"] == "http://127.0.0.1:9"
        stack.add_env({"LATER": "added"})
        assert os.environ["LATER"] == "added"
    assert os.environ["GREETING"] == "host value"
    for name in ("AWS_ENDPOINT_URL", "RESULTS_TABLE", "EMULATOR_URL", "LATER"):
        assert name not in os.environ


def test_invoke_returns_the_response_or_raises_the_functions_error(app):
    with LocalStack(app, stage="inv") as stack:
        assert stack.invoke("producer", {"bodies": []}) == {"sent": 0, "function": "app-inv-producer"}
        with pytest.raises(LambdaInvocationError, match="KeyError"):
            stack.invoke("app-inv-producer", {"no": "bodies"})
        assert stack.invoke_result("ProducerFunction", {}).error["errorType"] == "KeyError"


def test_the_projects_template_starts_with_one_trigger_per_sqs_event(monkeypatch):
    for name in fake_aws_env():
        monkeypatch.delenv(name, raising=False)
    with LocalStack() as stack:
        assert set(stack.pollers) == {"FanOutFunction.AccountChanges", "ActivityLogFunction.Activities"}
        assert stack.pollers["FanOutFunction.AccountChanges"].fifo
        assert os.environ["CONTACTS_TABLE"] == "account-sync-local-contacts"
        assert "account-sync-local-contacts" in boto3.client("dynamodb").list_tables()["TableNames"]
        assert set(stack.runtime.functions) == {
            "FetchChangesFunction",
            "FanOutFunction",
            "ActivityLogFunction",
            "MarketingApiFunction",
            "ConvertPersonFunction",
        }
        assert stack.schedule("fetch_changes").expression == "rate(5 minutes)"


class TestCommandLine:
    def test_invoke_prints_the_response_as_json(self, app, tmp_path, capsys):
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"bodies": ["x"]}))
        status = main(["invoke", "producer", "-e", str(event), "--template", str(app), "--stage", "cli"])
        assert status == 0
        assert json.loads(capsys.readouterr().out) == {"sent": 1, "function": "app-cli-producer"}

    def test_a_function_error_prints_lambdas_error_payload_and_exits_1(self, app, capsys):
        status = main(["invoke", "ConsumerFunction", "--template", str(app), "--env", "EXTRA=1"])
        assert status == 1
        assert json.loads(capsys.readouterr().out)["errorType"] == "KeyError"

    def test_python_dash_m_local_stack_runs(self, app, tmp_path):
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"bodies": ["a", "b"]}))
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        environment["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "local"), str(PROJECT_ROOT)])
        completed = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "local_stack", "invoke", "producer", "-e", str(event), "--template", str(app)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert json.loads(completed.stdout) == {"sent": 2, "function": "app-local-producer"}
