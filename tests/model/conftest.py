"""The model-based suite: moto fixtures from the integration suite (tables and queues from template.yaml) for the
DynamoDB back end; Hypothesis profiles; `make chaos` prints its summary at the end of the session."""

from __future__ import annotations

import os

# As the template's Globals set them (the layer's Powertools objects are created at first import).
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "account-sync")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AccountSync")

from tests.integration.conftest import aws, boto3_session, function_env, sam_template, stack_resources

__all__ = ["aws", "boto3_session", "function_env", "sam_template", "stack_resources"]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """After `make chaos`: examples run per machine, the seed, and every divergence with its minimal steps; read from
    the test reports, which pytest-xdist brings back from every worker (`chaos_report`)."""
    from tests.model.chaos_report import runs_in, summary

    runs = runs_in(report for reports in terminalreporter.stats.values() for report in reports)
    if not runs:
        return
    for line in summary(runs, config.getoption("hypothesis_seed", None)):
        terminalreporter.write_line(line)
