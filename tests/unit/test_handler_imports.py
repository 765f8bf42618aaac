"""What each queue consumer loads at a cold start (docs/decisions.md, "Cold start"): not the X-Ray SDK, not
Powertools' batch utility (asyncio and every event class), not simple-salesforce, not another function's service.
`make bench` measures the time; this keeps the decisions from being undone by an import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEVER_IN_A_QUEUE_CONSUMER = ("aws_xray_sdk", "aws_lambda_powertools.utilities.batch", "asyncio", "simple_salesforce")


def modules_loaded_by(function: str) -> set[str]:
    folder = ROOT / "functions" / function
    program = "import json, sys, app; print(json.dumps(sorted(sys.modules)))"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT / "layers" / "account_sync")]),
        "LAMBDA_TASK_ROOT": str(folder),  # Powertools' Tracer would be on, as in Lambda
        "AWS_LAMBDA_FUNCTION_NAME": f"account-sync-unit-{function}",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", program], env=environment, cwd=folder, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("function", ["fan_out", "activity_log"])
def test_a_queue_consumer_loads_neither_the_xray_sdk_nor_the_batch_utility_nor_salesforce(function):
    loaded = modules_loaded_by(function)
    assert sorted(m for m in loaded if m.startswith(NEVER_IN_A_QUEUE_CONSUMER)) == []


def test_the_activity_log_does_not_load_the_fan_out_service():
    assert "account_sync.services.fan_out" not in modules_loaded_by("activity_log")


def test_the_fetch_traces_its_requests():
    assert "aws_xray_sdk.core" in modules_loaded_by("fetch_changes")
