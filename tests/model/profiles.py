"""Hypothesis settings of the model-based suite: `short` in `make test`, `chaos` in `make chaos`.

The example database is off (nothing written in the repository); a failure prints its minimal steps, and
`make chaos` prints the seed to replay it with (`--hypothesis-seed`)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_COMMON = {
    "database": None,
    "deadline": None,
    "stateful_step_count": 30,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
}

# `make test`: a fixed, quick run. The back ends' budgets: the fakes take ~10 ms an example, moto ~0.3 s.
SHORT_FAKES = settings(max_examples=60, derandomize=True, **_COMMON)
SHORT_DYNAMO = settings(max_examples=8, derandomize=True, **_COMMON)
# A family whose divergence is known (xfail): stop at the first one, without shrinking it.
SHORT_KNOWN = settings(max_examples=100, derandomize=True, phases=[Phase.explicit, Phase.generate], **_COMMON)


def chaos_settings(backend: str) -> settings:
    """`make chaos CHAOS_EXAMPLES=N`: random (the seed is printed), shrunk to the minimal steps."""
    examples = int(os.environ.get("CHAOS_EXAMPLES", "1000"))
    if backend == "dynamo":
        examples = max(1, examples // int(os.environ.get("CHAOS_DYNAMO_DIVISOR", "20")))
    return settings(max_examples=examples, derandomize=False, **_COMMON)


def chaos_enabled() -> bool:
    return bool(os.environ.get("CHAOS_EXAMPLES"))
