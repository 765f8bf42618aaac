"""`python -m local_stack late-commit <object> <id> NAME=VALUE ... --seconds-ago 900`: a late-committing transaction
in the running stack's Salesforce emulator, for someone driving the local stack from outside.

The change becomes visible now, stamped `--seconds-ago` in the past (the emulator's `/_emulator/faults/late-commit`
admin route). Later than the fetch's `LookbackSeconds`, the regular windows never see it; the fetch's sweep
(`ReconcileIntervalSeconds`, `ReconcileLookbackSeconds`) brings it:

    python -m local_stack late-commit Account 001... Industry=Retail --seconds-ago 900
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from local_stack.running import NoRunningStack, RunningStack, add_state_dir_option


def add_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "late-commit",
        help="commit a change in the local Salesforce stamped in the past (a transaction that committed late)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("sobject", help="Account or Contact")
    parser.add_argument("record_id")
    parser.add_argument("values", nargs="+", metavar="NAME=VALUE", help="fields to set (VALUE as JSON, else text)")
    parser.add_argument("--seconds-ago", type=float, default=900.0, help="how far back it is stamped (default 900)")
    add_state_dir_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        stack = RunningStack.connect(args.state_dir)
    except NoRunningStack as exc:
        raise SystemExit(f"error: {exc}") from None
    path = Path(stack.salesforce["connection_file"])
    try:
        connection = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read the emulator's connection file {path}: {exc}") from None
    send_late_commit(
        connection["instance_url"],
        connection["ca_bundle"],
        args.sobject,
        args.record_id,
        parse_values(args.values),
        args.seconds_ago,
    )
    print(f"{args.sobject} {args.record_id}: committed now, stamped {args.seconds_ago:g} s ago")
    return 0


def parse_values(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, equals, raw = pair.partition("=")
        if not equals or not name:
            raise SystemExit(f"error: values take NAME=VALUE, not {pair!r}")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


def send_late_commit(
    instance_url: str, ca_bundle: str, sobject: str, record_id: str, values: dict[str, Any], seconds_ago: float
) -> None:
    import requests

    session = requests.Session()
    session.verify = ca_bundle  # the emulator's own CA: verification stays on
    session.trust_env = False
    body = {"sobject": sobject, "id": record_id, "values": values, "seconds_ago": seconds_ago}
    try:
        response = session.post(f"{instance_url}/_emulator/faults/late-commit", json=body, timeout=10)
    except requests.RequestException as exc:
        raise SystemExit(f"error: the emulator at {instance_url} cannot be reached: {exc}") from None
    if response.status_code != 204:
        raise SystemExit(f"error: the emulator refused the late commit ({response.status_code}): {response.text}")
