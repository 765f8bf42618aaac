"""`make lint`'s gates that are ours: the template's scanner suppressions, and the dependency audit's verdicts.

Every suppression of a template scanner names its reason in the template, next to the resource; the checks that
may be suppressed at all are listed here, so that suppressing another one is a reviewed change. The dependency
audit fails on a vulnerability and on any pip-audit error, and passes only when the vulnerability service could
not be reached.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import dependency_audit
import pytest

from tests.support.cfn_template import TEMPLATE_PATH, load_template

# The checks the template may suppress, each for a reason given where it is suppressed. Suppressing another one
# is a change of the security posture: add it here, deliberately.
ALLOWED_CHECKOV_SKIPS = {
    "CKV_AWS_27",  # SQS encryption: SSE-SQS is on, the check only knows KMS keys
    "CKV_AWS_115",  # reserved concurrency: throttles an SQS consumer into its dead-letter queue
    "CKV_AWS_116",  # a function DLQ: only for asynchronous invocations
    "CKV_AWS_117",  # VPC: public AWS endpoints and Salesforce over HTTPS only
    "CKV_AWS_119",  # DynamoDB CMK: the AWS managed key
    "CKV_AWS_158",  # log group KMS: logs hold no secret or personal data
    "CKV_AWS_173",  # environment KMS: the environment holds no secret
}
ALLOWED_CFN_LINT_IGNORES = {
    "WS1004",  # log group retention: the group is bound by LoggingConfig
    "ES6000",  # a dead-letter queue's own redrive policy
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_every_checkov_suppression_is_allowed_and_gives_its_reason(template):
    suppressed = set()
    for logical_id, resource in template["Resources"].items():
        for entry in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(entry.get("comment", "").split()) >= 8, f"{logical_id}: {entry['id']} needs its reason"
            suppressed.add(entry["id"])
    assert suppressed <= ALLOWED_CHECKOV_SKIPS
    assert {"CKV_AWS_27", "CKV_AWS_119"} <= suppressed  # the queues and tables are there, encrypted as said


def test_every_cfn_lint_suppression_is_allowed_and_gives_its_reason(template):
    ignored = {
        rule
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
    }
    assert ignored <= ALLOWED_CFN_LINT_IGNORES
    lines = TEMPLATE_PATH.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.fullmatch(r"\s+- (WS|ES|W|E)\d{4}", line):  # a list item of ignore_checks: a comment says why
            rule = line.strip()[2:]
            assert lines[number - 1].strip().startswith("#"), f"line {number + 1}: {rule} has no reason above it"
            assert f"# {rule}:" in "\n".join(lines[max(0, number - 4) : number]), f"line {number + 1}: {rule}"


def test_cfn_lint_with_the_serverless_rules_finds_nothing():
    api = pytest.importorskip("cfnlint.api")
    pytest.importorskip("cfn_lint_serverless")
    config = api.ManualArgs(regions=["us-east-1"], append_rules=["cfn_lint_serverless.rules"])
    assert [str(match) for match in api.lint_file(TEMPLATE_PATH, config=config)] == []


# --- the dependency audit --------------------------------------------------------------------------------


def audit_with(monkeypatch, stdout: str = "", stderr: str = "", returncode: int = 0) -> int:
    def run(command, **kwargs):
        assert "--no-deps" in command and command.count("--requirement") == 2
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    monkeypatch.setattr(dependency_audit.subprocess, "run", run)
    return dependency_audit.main(["requirements-dev.txt", "layers/account_sync/requirements.txt"])


def test_a_known_vulnerability_fails_the_audit(monkeypatch, capsys):
    report = {
        "dependencies": [
            {"name": "requests", "version": "2.0.0", "vulns": [{"id": "GHSA-x", "fix_versions": ["2.32.0"]}]},
            {"name": "boto3", "version": "1.44.8", "vulns": []},
        ]
    }
    assert audit_with(monkeypatch, json.dumps(report), returncode=1) == 1
    assert "requests==2.0.0: GHSA-x (fixed in 2.32.0)" in capsys.readouterr().out


def test_a_clean_audit_passes(monkeypatch):
    report = {"dependencies": [{"name": "boto3", "version": "1.44.8", "vulns": []}]}
    assert audit_with(monkeypatch, json.dumps(report)) == 0


def test_an_unreachable_vulnerability_service_passes_and_says_so(monkeypatch, capsys):
    stderr = "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded"
    assert audit_with(monkeypatch, "", stderr, returncode=1) == 0
    assert "SKIPPED, the vulnerability service could not be reached" in capsys.readouterr().out


def test_versions_the_service_did_not_answer_for_pass_with_a_warning(monkeypatch, capsys):
    report = {
        "dependencies": [{"name": "boto3", "skip_reason": "Dependency not found on PyPI and could not be audited"}]
    }
    assert audit_with(monkeypatch, json.dumps(report)) == 0
    assert "1 of 1 pinned packages were NOT audited" in capsys.readouterr().out


def test_any_other_pip_audit_error_fails(monkeypatch):
    assert audit_with(monkeypatch, "", "error: invalid requirement: 'boto3=='", returncode=1) == 1
