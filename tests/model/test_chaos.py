"""`make chaos CHAOS_EXAMPLES=N`: the model-based machines, long, random (seeded: the seed is printed), on both back
ends; the healthy machine and every family of issue 10 with its switch on, and the push path's events (issue 13).
Each divergence is shrunk to its minimal steps and printed at the end with the number of examples run (and what
the push rules did). Skipped in `make test`."""

from __future__ import annotations

import pytest
from account_sync.settings import load_settings
from account_sync.wiring import bind_store
from hypothesis.stateful import run_state_machine_as_test

from tests.model.profiles import chaos_enabled, chaos_settings
from tests.model.test_model import KNOWN_DIVERGENCES, machine

pytestmark = pytest.mark.skipif(not chaos_enabled(), reason="make chaos CHAOS_EXAMPLES=N runs it")

DIVERGENCES: list[tuple[str, str]] = []  # (machine, minimal steps and the divergence), printed by conftest.py
FAMILIES = ["healthy", *KNOWN_DIVERGENCES, "all"]


def _switches(family: str) -> dict[str, bool]:
    if family == "healthy":
        return {}
    if family == "all":
        return dict.fromkeys(KNOWN_DIVERGENCES, True)
    return {family: True}


def _run(backend: str, family: str) -> None:
    cls = machine(backend, **_switches(family))
    try:
        run_state_machine_as_test(cls, settings=chaos_settings(backend))
    except Exception as exc:
        steps = "\n".join(getattr(exc, "__notes__", []))
        DIVERGENCES.append((f"{backend}/{family}", f"{exc}\n{steps}"))
        raise


@pytest.mark.parametrize("family", FAMILIES)
def test_chaos_on_the_fakes(family: str) -> None:
    _run("fakes", family)


@pytest.mark.integration
# Shrinking on moto is slow: the families run on the fakes, but the push path's reads and writes on moto too.
@pytest.mark.parametrize("family", ["healthy", "PUSH_EVENTS", "all"])
def test_chaos_on_dynamodb(family: str, function_env: dict[str, str]) -> None:
    bind_store(load_settings())
    _run("dynamo", family)
