"""Target 5: the import time of each handler module against `import boto3`, and each function's package size.

Each import runs in a fresh interpreter, in rounds (boto3, then every handler), so that a change in the
machine's load touches all of them alike; the ratio is taken within each round and the median over the rounds
is reported. The environment is Lambda's as far as the imports can tell (`LAMBDA_TASK_ROOT`, the function's
name, the Powertools variables of the template): Powertools' Tracer is then on and patches the SDKs, as it does
in Lambda. Bytecode comes from a cache warmed by a first, unmeasured round (`PYTHONPYCACHEPREFIX` in
`bench/out/`), for boto3 and the handlers alike. Only the packages a function ships can be imported in its
interpreter (the others installed here are refused by an import hook), as in Lambda.

The interpreter is `make bench`'s Python 3.13 virtual environment (`.venv-runtime`: the Lambda runtime's version,
with only what the layer and the functions ship) when there is one, else the one running the benchmark; the
table says which. Import times differ between the two (3.11 needs typing_extensions where 3.13 does not, and
their import machinery differs), and 3.13 is what Lambda runs.

Package sizes: `.aws-sam/build/<Function>` when `make build` has run (what `sam deploy` uploads: the function's
folder; the layer separately); otherwise the files this virtual environment has installed for the
distributions each artefact's requirements file names, with their dependencies (what pip installs for `sam
build`, but built for this machine instead of arm64), plus the code.
"""

from __future__ import annotations

import io
import os
import re
import statistics
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from local_stack.bench.report import Results, Table, Verdict

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = {
    "FanOutFunction": "fan_out",
    "ActivityLogFunction": "activity_log",
    "FetchChangesFunction": "fetch_changes",
}
TARGETS = {"fan_out": 1.5, "activity_log": 1.5, "fetch_changes": 2.5}
LAYER = ROOT / "layers" / "account_sync"


# In the fresh interpreter: only the packages the function ships can be imported (this virtual environment has
# more, e.g. requests, which X-Ray's patch_all would otherwise import into the fan-out as it never is in Lambda).
_BLOCKER = """
import importlib.abc
class _NotShipped(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not shipped with this function", name=name)
        return None
sys.meta_path.insert(0, _NotShipped())
"""


def _timed_import(statement: str, folder: str | None, blocked: set[str]) -> str:
    path = f"sys.path[:0] = [{folder!r}, {str(LAYER)!r}]\n" if folder else ""
    return (
        f"import sys, time\nBLOCKED = {sorted(blocked)!r}\n{_BLOCKER}{path}"
        f"started = time.perf_counter()\n{statement}\nprint(time.perf_counter() - started)\n"
    )


def not_shipped(requirements: list[Path]) -> set[str]:
    """Top-level modules of the distributions installed here that none of `requirements` brings in."""
    shipped = set()
    for requirement in requirements:
        shipped |= _closure(requirement)
    blocked: set[str] = set()
    for distribution in metadata.distributions():
        name = _canonical(distribution.metadata["Name"] or "")
        if name and name not in shipped:
            blocked |= _top_level_modules(distribution)
    for name in shipped:
        try:
            blocked -= _top_level_modules(metadata.distribution(name))
        except metadata.PackageNotFoundError:
            continue
    # The layer's own package ships (as the layer), although the project's editable install, which brings the
    # operator's command line into .venv, lists it as one of its top-level modules.
    return blocked - {"_distutils_hack", "__editable__", LAYER.name}


def _top_level_modules(distribution: metadata.Distribution) -> set[str]:
    listed = distribution.read_text("top_level.txt")
    if listed:
        return {line.strip() for line in listed.splitlines() if line.strip()}
    names = set()
    for entry in distribution.files or []:
        first = str(entry).split("/", 1)[0]
        if first.endswith((".dist-info", ".egg-info", ".data")) or first in ("..", "__pycache__", "bin"):
            continue
        names.add(first.removesuffix(".py").split(".", 1)[0] if first.endswith(".py") else first.split(".", 1)[0])
    return names


def _environment(folder: str | None, cache: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPYCACHEPREFIX": str(cache),
        "PYTHONDONTWRITEBYTECODE": "",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if folder:
        env.update(
            {
                "LAMBDA_TASK_ROOT": folder,
                "AWS_LAMBDA_FUNCTION_NAME": f"account-sync-bench-{Path(folder).name}",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "POWERTOOLS_SERVICE_NAME": "account-sync",
                "POWERTOOLS_METRICS_NAMESPACE": "AccountSync",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            }
        )
    return env


def _measure(statement: str, folder: str | None, cache: Path, blocked: set[str], python: str) -> float:
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [python, "-c", _timed_import(statement, folder, blocked)],
        env=_environment(folder, cache),
        capture_output=True,
        text=True,
        check=False,
        cwd=folder or str(ROOT),
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing in {folder or 'a fresh interpreter'} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def import_times(rounds: int, cache: Path, python: str) -> dict[str, list[float]]:
    layer = LAYER / "requirements.txt"
    programs: dict[str, tuple[str, str | None, set[str]]] = {"boto3": ("import boto3", None, not_shipped([layer]))}
    for folder in FUNCTIONS.values():
        directory = ROOT / "functions" / folder
        programs[folder] = ("import app", str(directory), not_shipped([layer, directory / "requirements.txt"]))
    for statement, folder, blocked in programs.values():  # warm the bytecode cache
        _measure(statement, folder, cache, blocked, python)
    times: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(rounds):
        for name, (statement, folder, blocked) in programs.items():
            times[name].append(_measure(statement, folder, cache, blocked, python))
    return times


def interpreter_version(python: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def run(results: Results, rounds: int, out_dir: Path, python: str | None = None) -> None:
    python = os.path.abspath(python) if python else sys.executable  # not resolved: a venv's python is a link
    version = interpreter_version(python)
    # One bytecode cache per interpreter version: the caches' file names carry it, but keep them apart anyway.
    times = import_times(rounds, out_dir / f"pycache-{version}", python)
    table = Table(
        "Target 5: cold start: handler import time and package size",
        [
            "module",
            "import, median (ms)",
            "ratio to boto3 (median of rounds)",
            "target",
            "package",
            "unzipped (MiB)",
            "zipped (MiB)",
        ],
        notes=[
            f"Python {version}"
            + (" (`.venv-runtime`, the Lambda runtime's version)" if python != sys.executable else " (this run's)")
            + f". {rounds} rounds of fresh interpreters (boto3, then each handler), bytecode cached; ratio per "
            "round, median over rounds. Lambda-like environment (LAMBDA_TASK_ROOT set): Powertools' Tracer is on in "
            "the fetch, which patches botocore and requests; the fan-out and the activity log do not load the "
            "X-Ray SDK.",
        ],
    )
    boto3_times = times["boto3"]
    table.add("import boto3", statistics.median(boto3_times) * 1000, 1.0, None, None, None, None)
    all_met = True
    sizes = package_sizes()
    for logical_id, folder in FUNCTIONS.items():
        ratios = [t / b for t, b in zip(times[folder], boto3_times, strict=True)]
        ratio = statistics.median(ratios)
        all_met &= ratio <= TARGETS[folder]
        source, unzipped, zipped = sizes[logical_id]
        table.add(
            f"functions/{folder}/app.py",
            statistics.median(times[folder]) * 1000,
            ratio,
            f"≤ {TARGETS[folder]}",
            source,
            unzipped / 2**20,
            zipped / 2**20,
        )
        results.point(
            "function | import time ÷ import boto3",
            folder,
            len(results.points.get("function | import time ÷ import boto3", {})) + 1,
            ratio,
        )
    source, unzipped, zipped = sizes["SharedLayer"]
    table.add("layer (account_sync + dependencies)", None, None, None, source, unzipped / 2**20, zipped / 2**20)
    table.notes.append(
        "Package sizes from "
        + (
            "`.aws-sam/build` (the output of `make build`, arm64)."
            if sizes["SharedLayer"][0] == "built"
            else "this virtual environment (no `.aws-sam/build`: run `make build` for the real artefacts): "
            "the files of "
            "the distributions each requirements file names and their dependencies, as pip installs them for "
            "`sam build`, but built for this machine."
        )
        + " A function's package is its folder; the layer is uploaded once and shared by the three."
    )
    results.tables.append(table)
    detail = ", ".join(
        f"{folder} {statistics.median([t / b for t, b in zip(times[folder], boto3_times, strict=True)]):.2f}"
        for folder in FUNCTIONS.values()
    )
    results.verdicts.append(Verdict("5", "handler import ≤ 1.5 x import boto3 (fetch ≤ 2.5)", all_met, detail))
    # the plot's x axis is categorical here: drop it, the table says it better
    results.points.pop("function | import time ÷ import boto3", None)


def package_sizes() -> dict[str, tuple[str, int, int]]:
    built = ROOT / ".aws-sam" / "build"
    out: dict[str, tuple[str, int, int]] = {}
    if all((built / name).is_dir() for name in [*FUNCTIONS, "SharedLayer"]):
        for name in [*FUNCTIONS, "SharedLayer"]:
            files = [p for p in (built / name).rglob("*") if p.is_file()]
            out[name] = ("built", *_sizes(files, built / name))
        return out
    layer_files = _code_files(LAYER / "account_sync") + _distribution_files(LAYER / "requirements.txt")
    out["SharedLayer"] = ("estimated", *_sizes(layer_files, None))
    for logical_id, folder in FUNCTIONS.items():
        directory = ROOT / "functions" / folder
        files = _code_files(directory) + _distribution_files(directory / "requirements.txt")
        out[logical_id] = ("estimated", *_sizes(files, None))
    return out


def _code_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def _closure(requirements: Path) -> set[str]:
    """The distributions a requirements file names and those they depend on (installed here), canonical names."""
    pending: list[str] = []
    if requirements.is_file():
        for line in requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                pending.append(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0])
    seen: set[str] = set()
    while pending:
        name = _canonical(pending.pop())
        if name in seen:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for requirement in distribution.requires or []:
            if "extra ==" not in requirement:
                pending.append(re.split(r"[<>=!~\[; (]", requirement, maxsplit=1)[0])
    return seen


def _distribution_files(requirements: Path) -> list[Path]:
    files: list[Path] = []
    for name in sorted(_closure(requirements)):
        distribution = metadata.distribution(name)
        for entry in distribution.files or []:
            path = Path(str(distribution.locate_file(entry)))
            if path.is_file() and "__pycache__" not in path.parts and ".dist-info" not in str(entry).split("/")[0]:
                files.append(path)
    return files


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sizes(files: list[Path], base: Path | None) -> tuple[int, int]:
    unzipped = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for index, path in enumerate(files):
            archive.write(path, str(path.relative_to(base)) if base else f"{index}/{path.name}")
    return unzipped, buffer.tell()
