"""The benchmark's output: tables on the console, `bench/results.md` and the plot `bench/cost.png`.

`results.md` holds a section per target group (Target 1, Targets 2-4, 5, 6, 7), each with the run that measured it
(date, arguments, load): a run rewrites the sections of the groups it ran and keeps the others as they were, so
`make bench BENCH_ARGS="--only 7"` adds the push path's figures without erasing the fan-out's.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The order of the sections in results.md; a group not listed goes after them.
GROUPS = ("target 1", "targets 2-4", "target 5", "target 6", "target 7")
_SECTION = re.compile(r"<!-- bench: (?P<group>[^>]+?) -->\n.*?<!-- /bench: (?P=group) -->\n", re.S)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_cell(cell) for cell in cells])


@dataclass
class Verdict:
    target: str
    claim: str
    met: bool | None  # None: not measured in this run
    detail: str


@dataclass
class Results:
    tables: list[Table] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    # for the plot: series name -> [(size, value)], per panel
    points: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    arguments: str = ""
    # group -> (first table, end of its tables, first verdict, end of its verdicts)
    spans: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        """The tables and verdicts added in here are the group's `name` (its section of results.md), timed."""
        tables, verdicts, started = len(self.tables), len(self.verdicts), time.monotonic()
        yield
        self.spans[name] = (tables, len(self.tables), verdicts, len(self.verdicts))
        self.seconds[name] = time.monotonic() - started

    def point(self, panel: str, series: str, x: float, y: float) -> None:
        self.points.setdefault(panel, {}).setdefault(series, []).append((x, y))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def machine() -> dict[str, str]:
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        cpus = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()  # noqa: S607
    except (OSError, subprocess.CalledProcessError):
        cpus = str(os.cpu_count())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": cpus,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load average (1 min) at the end": f"{load:.1f}",
    }


def render_console(results: Results) -> str:
    lines: list[str] = []
    for table in results.tables:
        lines += ["", table.title, *_text_table(table)]
        lines += [f"  note: {note}" for note in table.notes]
    lines += ["", "Targets"]
    for verdict in results.verdicts:
        mark = {True: "met", False: "NOT MET", None: "not measured"}[verdict.met]
        lines.append(f"  {verdict.target:<4} {mark:<13} {verdict.claim}: {verdict.detail}")
    return "\n".join(lines)


def _text_table(table: Table) -> list[str]:
    widths = [len(c) for c in table.columns]
    for row in table.rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=True))
    out = ["  " + line, "  " + "  ".join("-" * w for w in widths)]
    out += ["  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in table.rows]
    return out


def render_markdown(results: Results, header: str, previous: str = "") -> str:
    """results.md: the header, the machine, then a section per target group, those of this run new and those of
    `previous` (the file as it was) that this run did not measure kept as they were."""
    info = machine()
    out = [header, "", "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in info.items() if key not in _PER_RUN]
    sections = {match["group"]: match[0] for match in _SECTION.finditer(previous)}
    spans = results.spans or {"run": (0, len(results.tables), 0, len(results.verdicts))}
    for name, span in spans.items():
        sections[name] = _section(results, name, span, info)
    order = [*GROUPS, *sorted(set(sections) - set(GROUPS))]
    for name in order:
        if name in sections:
            out += ["", sections[name].rstrip("\n")]
    out += ["", "![cost against size](cost.png)", ""]
    return "\n".join(out)


_PER_RUN = ("date", "load average (1 min) at the end")


def _section(results: Results, name: str, span: tuple[int, int, int, int], info: dict[str, str]) -> str:
    first_table, end_table, first_verdict, end_verdict = span
    seconds = results.seconds.get(name)
    run = [
        info["date"],
        f"`{results.arguments or '(defaults)'}`",
        *([f"{seconds:.0f} s"] if seconds is not None else []),
        f"load average {info['load average (1 min) at the end']} at the end",
        f"Python {info['python']}",
    ]
    out = [f"<!-- bench: {name} -->", f"## {name.capitalize()}", "", "Run: " + " · ".join(run), ""]
    out += ["| target | | result |", "|---|---|---|"]
    for verdict in results.verdicts[first_verdict:end_verdict]:
        mark = {True: "met", False: "**not met**", None: "not measured"}[verdict.met]
        out.append(f"| {verdict.target} {verdict.claim} | {mark} | {verdict.detail} |")
    for table in results.tables[first_table:end_table]:
        out += ["", f"### {table.title}", ""]
        out.append("| " + " | ".join(table.columns) + " |")
        out.append("|" + "|".join("---:" if i else "---" for i in range(len(table.columns))) + "|")
        out += ["| " + " | ".join(row) + " |" for row in table.rows]
        if table.notes:
            out.append("")
            out += [f"- {note}" for note in table.notes]
    out.append(f"<!-- /bench: {name} -->")
    return "\n".join(out) + "\n"


def plot(results: Results, path: Path) -> bool:
    """The cost against size, one panel per kind of cost (log-log). False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    panels = [(name, series) for name, series in results.points.items() if series]
    if not panels:
        return False
    columns = 2 if len(panels) > 1 else 1
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.6 * rows), squeeze=False)
    flat = list(axes.flat)
    for axis in flat[len(panels) :]:
        axis.set_visible(False)
    for axis, (name, series) in zip(flat, panels, strict=False):
        xlabel, _, ylabel = name.partition(" | ")
        for label, values in series.items():
            values = sorted(values)
            dashed = "bound" in label or "baseline" in label or "bare" in label
            axis.plot(
                [x for x, _ in values],
                [max(y, 0.5) for _, y in values],
                marker="o" if not dashed else "x",
                linestyle="--" if dashed else "-",
                label=label,
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Account Sync: cost against size (make bench)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
