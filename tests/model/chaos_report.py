"""What `make chaos` prints at the end: per machine, the examples run, the push path's counts, how often two
invocations ran at once and the divergence with its minimal steps.

Each chaos test hands its `ChaosRun` to pytest as a user property of its report (`record_property`): reports are
what pytest-xdist sends from a worker to the controller, so the summary holds every machine, whichever process ran
it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

PROPERTY = "chaos"


@dataclass(frozen=True)
class ChaosRun:
    machine: str  # "<backend>/<family>"
    examples: int  # machine instances Hypothesis ran: every example generated, and each try while shrinking
    budget: int  # `max_examples`: generation stops there, or at the first divergence (then shrunk)
    seconds: float
    pushed: dict[str, int] = field(default_factory=dict)  # what the push rules did (PUSH_EVENTS)
    overlaps: dict[str, int] = field(default_factory=dict)  # two invocations at once (`two_invocations_at_once`)
    divergence: str | None = None  # the failure and its minimal steps

    def to_property(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_property(cls, value: dict[str, Any]) -> ChaosRun:
        return cls(**value)


def runs_in(reports: Iterable[Any]) -> list[ChaosRun]:
    """The runs recorded in these test reports (the call phase's; a report carries its item's user properties)."""
    return sorted(
        (
            ChaosRun.from_property(value)
            for report in reports
            if getattr(report, "when", None) == "call"
            for name, value in getattr(report, "user_properties", ())
            if name == PROPERTY
        ),
        key=lambda run: run.machine,
    )


def summary(runs: list[ChaosRun], seed: object) -> list[str]:
    lines = ["", f"== make chaos: seed {seed} =="]
    for run in runs:
        stopped = "diverged" if run.divergence else "no divergence"
        lines.append(
            f"  {run.machine}: {run.examples} examples run (budget {run.budget}, shrinking included), "
            f"{run.seconds:.0f} s, {stopped}"
        )
    lines.append(f"  examples run in total: {sum(run.examples for run in runs)}")
    pushed = sum((Counter(run.pushed) for run in runs), Counter[str]())
    if pushed:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(pushed.items()))
        lines.append(f"  push path (PUSH_EVENTS): {counts}")
    overlaps = sum((Counter(run.overlaps) for run in runs), Counter[str]())
    if overlaps:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(overlaps.items()))
        lines.append(f"  two invocations at once: {counts}")
    diverged = [run for run in runs if run.divergence]
    lines.append(f"  divergences: {len(diverged)}")
    for run in diverged:
        lines.append(f"--- {run.machine} ---")
        lines.extend(f"  {line}" for line in (run.divergence or "").splitlines() if _tells(line))
    return lines


def _tells(line: str) -> bool:
    """A line of the failure worth printing: a draw is, unless any other value would fail as well."""
    return not (line.startswith("Draw ") and line.endswith("# or any other generated value"))
