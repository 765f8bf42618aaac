"""`make chaos CHAOS_EXAMPLES=N`: the model-based machines, long, random (seeded: the seed is printed), on both back
ends; the healthy machine and every family of issue 10 with its switch on, and the push path's events (issue 13).
Each divergence is shrunk to its minimal steps and printed at the end with the number of examples run (and what
the push rules did). Skipped in `make test`."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
from account_sync.settings import load_settings
from account_sync.wiring import bind_store
from hypothesis.stateful import run_state_machine_as_test

from tests.model.chaos_report import PROPERTY, ChaosRun
from tests.model.machine import OVERLAPS, RUNS
from tests.model.profiles import chaos_enabled, chaos_settings
from tests.model.push import PUSHED
from tests.model.test_model import KNOWN_DIVERGENCES, machine

pytestmark = pytest.mark.skipif(not chaos_enabled(), reason="make chaos CHAOS_EXAMPLES=N runs it")

FAMILIES = ["healthy", *KNOWN_DIVERGENCES, "all"]


def _switches(family: str) -> dict[str, bool]:
    if family == "healthy":
        return {}
    if family == "all":
        return dict.fromkeys(KNOWN_DIVERGENCES, True)
    return {family: True}


def _run(backend: str, family: str, record_property: Callable[[str, object], None]) -> None:
    """One machine, long; its `ChaosRun` goes with the test's report (conftest.py prints them all at the end)."""
    cls = machine(backend, **_switches(family))
    settings = chaos_settings(backend)
    runs_before, pushed_before, started = RUNS[cls.__name__], Counter(PUSHED), time.perf_counter()
    overlaps_before = Counter(OVERLAPS)
    divergence = None
    try:
        run_state_machine_as_test(cls, settings=settings)
    except Exception as exc:
        steps = "\n".join(getattr(exc, "__notes__", []))
        divergence = f"{type(exc).__name__}: {exc}\n{steps}"
        raise
    finally:
        run = ChaosRun(
            machine=f"{backend}/{family}",
            examples=RUNS[cls.__name__] - runs_before,
            budget=settings.max_examples,
            seconds=round(time.perf_counter() - started, 1),
            pushed=dict(Counter(PUSHED) - pushed_before),
            overlaps=dict(Counter(OVERLAPS) - overlaps_before),
            divergence=divergence,
        )
        record_property(PROPERTY, run.to_property())


@pytest.mark.parametrize("family", FAMILIES)
def test_chaos_on_the_fakes(family: str, record_property: Callable[[str, object], None]) -> None:
    _run("fakes", family, record_property)


@pytest.mark.integration
# Shrinking on moto is slow: the families run on the fakes, but the push path's reads and writes on moto too.
@pytest.mark.parametrize("family", ["healthy", "PUSH_EVENTS", "all"])
def test_chaos_on_dynamodb(
    family: str, function_env: dict[str, str], record_property: Callable[[str, object], None]
) -> None:
    bind_store(load_settings())
    _run("dynamo", family, record_property)
