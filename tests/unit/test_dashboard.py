"""The operator's dashboard and the freshness alarm name only metrics the code emits, and the lag is measured
from the version's SystemModstamp."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from account_sync.domain.timestamps import lag_seconds

from tests.support.cfn_template import load_template

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "AccountSync"
SOBJECTS = ("Account", "Contact")  # the fetch's f"{sobject}ChangesQueued"


def _emitted_metric_names() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.glob("layers/account_sync/account_sync/**/*.py"), *ROOT.glob("functions/*/app.py")]:
        for name in re.findall(r'add_metric\(\s*name=f?"([^"]+)"', path.read_text(encoding="utf-8")):
            names |= {name.replace("{sobject}", sobject) for sobject in SOBJECTS} if "{sobject}" in name else {name}
    return names


def _dashboard_metrics(body: str) -> list[tuple[str, str]]:
    """(namespace, metric name) of every widget row, with CloudWatch's "." (as the row above) expanded."""
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "0", body))["widgets"]
    found = []
    for widget in widgets:
        previous: list[object] = []
        for row in widget["properties"].get("metrics", []):
            if row[0] == "...":
                continue  # the row above again, with another statistic or dimension value
            names = [previous[i] if item == "." else item for i, item in enumerate(row) if not isinstance(item, dict)]
            found.append((str(names[0]), str(names[1])))
            previous = names
    return found


@pytest.fixture(scope="module")
def resources() -> dict:
    return load_template()["Resources"]


def test_every_dashboard_metric_of_the_namespace_is_emitted_by_the_code(resources):
    body = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    ours = {name for namespace, name in _dashboard_metrics(body) if namespace == NAMESPACE}
    assert "SyncLagSeconds" in ours and "SalesforceApiCalls" in ours and "ActivitySuppressed" in ours
    assert ours <= _emitted_metric_names(), ours - _emitted_metric_names()


def test_the_dashboard_shows_dead_letters_and_throttles(resources):
    body = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    metrics = set(_dashboard_metrics(body))
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in metrics
    assert ("AWS/DynamoDB", "ThrottledRequests") in metrics
    assert (NAMESPACE, "RetriedMessages") in metrics


def test_every_alarm_on_our_namespace_watches_an_emitted_metric(resources):
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    ours = {alarm["MetricName"] for alarm in alarms if alarm.get("Namespace") == NAMESPACE}
    ours |= {  # and those read by an alarm's metric math
        query["MetricStat"]["Metric"]["MetricName"]
        for alarm in alarms
        for query in alarm.get("Metrics", [])
        if "MetricStat" in query and query["MetricStat"]["Metric"]["Namespace"] == NAMESPACE
    }
    assert {"SyncLagSeconds", "SweepLagSeconds"} <= ours
    assert ours <= _emitted_metric_names()


def test_the_freshness_alarm_is_the_p99_over_15_minutes_against_the_objective(resources):
    alarm = resources["FreshnessAlarm"]["Properties"]
    assert (alarm["ExtendedStatistic"], alarm["Period"]) == ("p99", 900)
    assert alarm["Threshold"] == {"Ref": "FreshnessObjectiveSeconds"}
    assert load_template()["Parameters"]["FreshnessObjectiveSeconds"]["Default"] == 900


def test_the_lag_runs_from_the_systemmodstamp_and_is_never_negative():
    stamp = "2026-12-04T10:00:00.000Z"
    assert lag_seconds(stamp, now=datetime(2026, 12, 4, 10, 1, 30, tzinfo=UTC)) == 90.0
    assert lag_seconds(stamp, now=datetime(2026, 12, 4, 9, 59, tzinfo=UTC)) == 0.0
