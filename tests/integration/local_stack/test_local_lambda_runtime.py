"""The in-process Lambda runtime: cold and warm starts, the context, the environment, errors."""

from __future__ import annotations

import os
import re
import sys
import time
import uuid

import pytest
from local_stack.lambda_runtime import FunctionSpec, LambdaInvocationError, LambdaRuntime

from tests.integration.local_stack.throwaway import write_function

COUNTING = """
import os
import sys

LOADS = 0
LOADS += 1  # runs once per cold start
CALLS = []


def lambda_handler(event, context):
    CALLS.append(event)
    event["mutated"] = True
    return {
        "loads": LOADS,
        "calls": len(CALLS),
        "module": __name__,
        "who": os.environ.get("WHO"),
    }
"""

INSPECTING = """
import os
import sys
import time


def lambda_handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": [first, context.get_remaining_time_in_millis()],
        "env": {name: os.environ.get(name) for name in event["names"]},
        "code_on_path": os.path.dirname(__file__) in sys.path,
    }
"""

FAILING = """
import time


def lambda_handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
        return "late"
    if event.get("set"):
        return {1, 2}
    raise ValueError(f"bad input: {event}")
"""


def spec(code_dir, logical_id, **options) -> FunctionSpec:
    return FunctionSpec(logical_id=logical_id, function_name=f"app-test-{code_dir.name}", code_dir=code_dir, **options)


class TestColdAndWarm:
    def test_the_handler_is_loaded_once_and_reused(self, tmp_path):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "counter", COUNTING), "CounterFunction")])
        first = runtime.invoke("CounterFunction", {"n": 1})
        second = runtime.invoke("counter", {"n": 2})  # by code folder
        third = runtime.invoke("app-test-counter", {"n": 3})  # by function name
        assert (first.cold_start, second.cold_start, third.cold_start) == (True, False, False)
        assert [r.payload["loads"] for r in (first, second, third)] == [1, 1, 1]
        assert third.payload["calls"] == 3
        assert runtime.stats["CounterFunction"].invocations == 3
        assert runtime.stats["CounterFunction"].cold_starts == 1

    def test_functions_whose_files_are_all_app_py_do_not_share_a_module(self, tmp_path):
        runtime = LambdaRuntime(
            [
                spec(write_function(tmp_path, "one", COUNTING), "OneFunction", environment={"WHO": "one"}),
                spec(write_function(tmp_path, "two", COUNTING), "TwoFunction", environment={"WHO": "two"}),
            ]
        )
        one, two = runtime.invoke("OneFunction", {}), runtime.invoke("TwoFunction", {})
        assert one.payload["module"] != two.payload["module"]
        assert (one.payload["calls"], two.payload["calls"]) == (1, 1)
        assert (one.payload["who"], two.payload["who"]) == ("one", "two")
        assert "app" not in sys.modules or not hasattr(sys.modules["app"], "CALLS")

    def test_the_event_is_a_json_copy(self, tmp_path):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "counter", COUNTING), "CounterFunction")])
        event = {"n": 1}
        runtime.invoke("CounterFunction", event)
        assert event == {"n": 1}

    def test_an_unknown_function_is_named_with_the_known_ones(self, tmp_path):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "counter", COUNTING), "CounterFunction")])
        with pytest.raises(KeyError, match="known: CounterFunction"):
            runtime.invoke("nope", {})


class TestContextAndEnvironment:
    def test_the_context_is_shaped_like_the_runtimes(self, tmp_path):
        runtime = LambdaRuntime(
            [spec(write_function(tmp_path, "inspect", INSPECTING), "InspectFunction", timeout=7, memory_size=256)]
        )
        result = runtime.invoke("InspectFunction", {"names": []})
        context = result.payload
        assert context["function_name"] == "app-test-inspect"
        assert context["function_version"] == "$LATEST"
        assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:app-test-inspect"
        assert context["memory_limit_in_mb"] == "256"
        assert uuid.UUID(context["aws_request_id"]).version == 4
        assert context["aws_request_id"] == result.request_id
        assert context["log_group_name"] == "/aws/lambda/app-test-inspect"
        assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", context["log_stream_name"])
        first, later = context["remaining"]
        assert 6000 < first <= 7000
        assert later <= first - 40

    def test_the_function_sees_its_environment_only_while_it_runs(self, tmp_path, monkeypatch):
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
        monkeypatch.setenv("SHARED", "from the host")
        code_dir = write_function(tmp_path, "inspect", INSPECTING)
        runtime = LambdaRuntime(
            [spec(code_dir, "InspectFunction", environment={"TABLE": "t1", "SHARED": "template"})],
            extra_env={"EMULATOR_URL": "http://127.0.0.1:1"},
        )
        names = ["TABLE", "SHARED", "EMULATOR_URL", "AWS_LAMBDA_FUNCTION_NAME", "AWS_SAM_LOCAL", "_HANDLER"]
        payload = runtime.invoke("InspectFunction", {"names": names}).payload
        assert payload["env"] == {
            "TABLE": "t1",
            "SHARED": "template",
            "EMULATOR_URL": "http://127.0.0.1:1",
            "AWS_LAMBDA_FUNCTION_NAME": "app-test-inspect",
            "AWS_SAM_LOCAL": "true",
            "_HANDLER": "app.lambda_handler",
        }
        assert payload["code_on_path"]
        assert os.environ["SHARED"] == "from the host"
        assert "TABLE" not in os.environ and "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
        assert str(code_dir) not in sys.path


class TestErrors:
    def test_a_raised_exception_is_lambdas_error_payload_and_the_environment_stays_warm(self, tmp_path):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "failing", FAILING), "FailingFunction")])
        failed = runtime.invoke("FailingFunction", {"x": 1})
        assert not failed.ok
        assert failed.error["errorType"] == "ValueError"
        assert failed.error["errorMessage"] == "bad input: {'x': 1}"
        assert failed.error["requestId"] == failed.request_id
        assert failed.error["stackTrace"]
        with pytest.raises(LambdaInvocationError, match="FailingFunction: ValueError: bad input"):
            failed.raise_for_error()
        assert not runtime.invoke("FailingFunction", {}).cold_start
        assert runtime.stats["FailingFunction"].errors == 2

    def test_a_response_lambda_cannot_serialise_is_a_marshal_error(self, tmp_path):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "failing", FAILING), "FailingFunction")])
        assert runtime.invoke("FailingFunction", {"set": True}).error["errorType"] == "Runtime.MarshalError"

    def test_a_failed_import_is_reported_and_retried_cold(self, tmp_path):
        code_dir = write_function(tmp_path, "broken", "import not_a_module_anywhere\n")
        runtime = LambdaRuntime([spec(code_dir, "BrokenFunction")])
        failed = runtime.invoke("BrokenFunction", {})
        assert failed.error["errorType"] == "Runtime.ImportModuleError"
        assert "not_a_module_anywhere" in failed.error["errorMessage"]
        write_function(tmp_path, "broken", COUNTING)
        fixed = runtime.invoke("BrokenFunction", {})
        assert fixed.ok and fixed.cold_start

    def test_a_missing_handler_is_reported(self, tmp_path):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "counter", COUNTING), "F", handler="app.nope")])
        assert runtime.invoke("F", {}).error["errorType"] == "Runtime.HandlerNotFound"

    def test_running_past_the_timeout_is_a_timeout_and_the_next_start_is_cold(self, tmp_path):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "failing", FAILING), "SlowFunction", timeout=1)])
        late = runtime.invoke("SlowFunction", {"sleep": 1.05})
        assert late.error["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in late.error["errorMessage"]
        assert runtime.stats["SlowFunction"].timeouts == 1
        assert runtime.invoke("SlowFunction", {"set": True}).cold_start


# --- Lambda's kill at the timeout ----------------------------------------------------------------------

LATE_WRITER = """
import time
from concurrent.futures import ThreadPoolExecutor

import boto3

EXECUTOR = ThreadPoolExecutor(max_workers=2)  # kept across warm starts, as the fan-out's writers are


def put(queue_url, body):
    boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)


def lambda_handler(event, context):
    put(event["queue_url"], "before the deadline")
    EXECUTOR.submit(lambda: (time.sleep(event["sleep"]), put(event["queue_url"], "from a writer thread, late")))
    time.sleep(event["sleep"])
    try:
        put(event["queue_url"], "from the handler, late")
    except Exception:
        pass  # Lambda's kill is no exception a handler could catch
    return {"finished": True}
"""


class TestKillAtTimeout:
    """Lambda kills an invocation at its timeout: nothing after that point lands (PRODUCTION.md)."""

    def _bodies(self, sqs, url):
        time.sleep(0.8)  # the late attempts (0.2 s past the timeout) have been made by now
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return sorted(message["Body"] for message in messages)

    def test_a_handler_past_its_timeout_writes_nothing_more_from_any_of_its_threads(self, tmp_path, aws):
        # given a function with a 2 s timeout that writes, then writes again at 2.2 s from itself and a thread (2 s:
        # its cold start and first write fit inside the timeout on a loaded machine too)
        sqs = aws.client("sqs")
        url = sqs.create_queue(QueueName="late-writes")["QueueUrl"]
        runtime = LambdaRuntime([spec(write_function(tmp_path, "late", LATE_WRITER), "LateFunction", timeout=2)])
        # when it is invoked
        result = runtime.invoke("LateFunction", {"queue_url": url, "sleep": 2.2})
        # then the invocation timed out, and only the write before the deadline landed
        assert result.error["errorType"] == "Sandbox.Timedout"
        assert self._bodies(sqs, url) == ["before the deadline"]
        # and the next invocation starts cold, with threads of its own, and writes as usual
        fresh = runtime.invoke("LateFunction", {"queue_url": url, "sleep": 0.0})
        assert fresh.ok and fresh.cold_start
        assert self._bodies(sqs, url) == [
            "before the deadline",
            "from a writer thread, late",
            "from the handler, late",
        ]

    def test_without_the_kill_a_late_handler_finishes_its_writes(self, tmp_path, aws):
        sqs = aws.client("sqs")
        url = sqs.create_queue(QueueName="late-writes")["QueueUrl"]
        runtime = LambdaRuntime(
            [spec(write_function(tmp_path, "late", LATE_WRITER), "LateFunction", timeout=2)], kill_at_timeout=False
        )
        result = runtime.invoke("LateFunction", {"queue_url": url, "sleep": 2.2})
        assert result.error["errorType"] == "Sandbox.Timedout"
        assert len(self._bodies(sqs, url)) == 3


# --- asynchronous invocations (InvocationType=Event) -----------------------------------------------------

CHAINING = """
import json
import time

import boto3

RUNS = []


def lambda_handler(event, context):
    RUNS.append(event["left"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event["left"]:
        answer = boto3.client("lambda").invoke(
            FunctionName=context.invoked_function_arn if event.get("by_arn") else context.function_name,
            InvocationType="Event",
            Payload=json.dumps({"left": event["left"] - 1, "by_arn": not event.get("by_arn")}),
        )
        assert answer["StatusCode"] == 202
    return {"runs": list(RUNS)}
"""


class TestEventInvocations:
    """A function invoking itself asynchronously (the fetch's next run): queued, run in order, one at a time."""

    def test_an_asynchronous_invocation_is_queued_and_run_in_order_with_those_it_queues(self, tmp_path, aws):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "chain", CHAINING), "ChainFunction")])
        # when the function runs and asks for its next run, by name or by ARN, three times in a chain
        first = runtime.invoke("ChainFunction", {"left": 3})
        # then nothing ran yet beyond the first, the next one is queued
        assert first.payload == {"runs": [3]} and runtime.pending_event_invocations == 1
        # and running the queue runs the chain to its end, one after the other, in order
        results = runtime.run_event_invocations()
        assert [r.payload for r in results] == [{"runs": [3, 2]}, {"runs": [3, 2, 1]}, {"runs": [3, 2, 1, 0]}]
        assert runtime.pending_event_invocations == 0 and all(not r.cold_start for r in results)

    def test_a_limit_runs_that_many_and_leaves_the_rest_queued(self, tmp_path, aws):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "chain", CHAINING), "ChainFunction")])
        runtime.invoke("ChainFunction", {"left": 5})
        assert len(runtime.run_event_invocations(limit=2)) == 2 and runtime.pending_event_invocations == 1

    def test_an_invocation_after_the_timeout_is_never_queued(self, tmp_path, aws):
        runtime = LambdaRuntime([spec(write_function(tmp_path, "chain", CHAINING), "ChainFunction", timeout=2)])
        result = runtime.invoke("ChainFunction", {"left": 1, "sleep": 2.2})
        assert result.error["errorType"] == "Sandbox.Timedout" and runtime.pending_event_invocations == 0

    def test_a_function_the_runtime_does_not_hold_is_invoked_on_aws(self, aws):
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError) as refused:
            aws.client("lambda").invoke(FunctionName="not-here", InvocationType="Event", Payload=b"{}")
        assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
