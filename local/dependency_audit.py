"""`make lint`'s dependency audit: pip-audit on the pinned requirements, failing on any known vulnerability.

    python local/dependency_audit.py requirements-dev.txt layers/account_sync/requirements.txt ...

pip-audit asks a vulnerability service (PyPI's JSON API by default) about each pinned version. Where that
service cannot be reached, or does not answer for the versions (a registry mirror that serves the package index
but not the per-version JSON API answers "not found" for every package), nothing was audited: this says so
loudly and passes, because the audit could not run, not because a dependency is unsafe. Any vulnerability found
fails, and so does any other error of pip-audit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

NETWORK_FAILURE = re.compile(
    r"ConnectionError|Max retries exceeded|Failed to establish a new connection|Name or service not known|"
    r"Temporary failure in name resolution|timed out|Network is unreachable|Connection refused",
)


def pip_audit() -> str:
    beside = Path(sys.executable).parent / "pip-audit"
    return str(beside) if beside.exists() else (shutil.which("pip-audit") or "pip-audit")


def main(requirements: list[str]) -> int:
    command = [pip_audit(), "--format", "json", "--no-deps", "--disable-pip", "--progress-spinner", "off"]
    for path in requirements:
        command += ["--requirement", path]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603
    try:
        report = json.loads(completed.stdout)
    except ValueError:
        if NETWORK_FAILURE.search(completed.stderr):
            print("pip-audit: SKIPPED, the vulnerability service could not be reached (network failure):")
            print(completed.stderr.strip().splitlines()[-1])
            return 0
        print(completed.stderr, file=sys.stderr)
        return completed.returncode or 1
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    unaudited = [d for d in dependencies if d.get("skip_reason")]
    for dependency in vulnerable:
        for vulnerability in dependency["vulns"]:
            fixed = ", ".join(vulnerability.get("fix_versions", [])) or "no fixed version"
            print(f"{dependency['name']}=={dependency['version']}: {vulnerability['id']} (fixed in {fixed})")
    if unaudited:
        print(
            f"pip-audit: WARNING, {len(unaudited)} of {len(dependencies)} pinned packages were NOT audited: the "
            f"vulnerability service did not answer for them (first: {unaudited[0]['skip_reason']})"
        )
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} pinned package(s) with known vulnerabilities")
        return 1
    print(f"pip-audit: no known vulnerability in the {len(dependencies) - len(unaudited)} packages audited")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
