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
    """After `make chaos`: examples run per machine, the seed, and every divergence with its minimal steps."""
    from tests.model.machine import RUNS
    from tests.model.profiles import chaos_enabled
    from tests.model.push import PUSHED
    from tests.model.test_chaos import DIVERGENCES

    if not chaos_enabled():
        return
    write = terminalreporter.write_line
    write("")
    write(f"== make chaos: seed {config.getoption('hypothesis_seed', None)} ==")
    for name, count in sorted(RUNS.items()):
        write(f"  {name}: {count} examples run (shrinking included)")
    write(f"  examples run in total: {sum(RUNS.values())}")
    if PUSHED:
        write(f"  push path (PUSH_EVENTS): {', '.join(f'{name} {count}' for name, count in sorted(PUSHED.items()))}")
    write(f"  divergences: {len(DIVERGENCES)}")
    for name, text in DIVERGENCES:
        write(f"--- {name} ---")
        for line in text.splitlines():
            if not line.startswith("Draw "):
                write(f"  {line}")
