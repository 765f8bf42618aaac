"""`account-sync`: operate Account Sync, deployed or local.

    account-sync --stack account-sync-prod status          # a deployed stack, with your AWS credentials
    account-sync --local status                            # the stack of `python -m local_stack up`
    account-sync --local dlq list [--queue changes|activities] [--limit 100]
    account-sync --local dlq redrive --queue changes [--id MESSAGE_ID ...] [--dry-run]
    account-sync --local store contact <contact id>        # store account|contacts|state as well
    account-sync --local resync --account ID [--account ID ...] | --since T [--until T] | --all [--drain]
    account-sync --local drift [--repair]                  # compare the next sample of accounts now
    account-sync ... --json                                # one JSON document on stdout, for scripts

Each command prints a summary at the end; long work shows its progress on stderr (a bar on a terminal, plain
lines in a log). Exit status: 0 done, 1 something to look at (dead letters left, ids not found), 2 a usage or
connection error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from account_sync_cli import resync as resyncing
from account_sync_cli import status as status_view
from account_sync_cli import store
from account_sync_cli.dead_letters import DEAD_LETTER_QUEUES, DeadLetters, deployed_dead_letter_queues
from account_sync_cli.deployment import Deployment, DeploymentNotFound


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a positive whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a positive whole number, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="account-sync", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", metavar="NAME", help="a deployed stack, by its CloudFormation name")
    target.add_argument("--local", action="store_true", help="the local stack (python -m local_stack up)")
    parser.add_argument("--region", default=None, help="the deployed stack's region (default: your AWS config)")
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".local-stack"), help="with --local: where `up` keeps stack.json"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("status", help="queue depths, dead letters, the fetch's sync state")

    dlq = commands.add_parser("dlq", help="dead-letter queues: list, redrive").add_subparsers(
        dest="dlq_command", required=True
    )
    listing = dlq.add_parser("list", help="ids, kinds, reasons and receive counts of dead letters (never values)")
    listing.add_argument(
        "--queue", choices=sorted(DEAD_LETTER_QUEUES), default=None, help="one queue (default: every one deployed)"
    )
    listing.add_argument("--limit", type=_positive, default=100, help="most messages listed per queue (100)")
    redrive = dlq.add_parser("redrive", help="move dead letters back to the queue they came from")
    redrive.add_argument("--queue", choices=sorted(DEAD_LETTER_QUEUES), required=True)
    redrive.add_argument("--id", dest="ids", action="append", default=None, help="only this message id (repeatable)")
    redrive.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")

    resync = commands.add_parser("resync", help="read accounts again from Salesforce; write only what differs")
    chosen = resync.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--account", dest="account_ids", action="append", help="an Account id (repeatable)")
    chosen.add_argument("--since", help="every Account changed after this ISO-8601 time (with --until: up to it)")
    chosen.add_argument("--all", dest="everything", action="store_true", help="every Account")
    resync.add_argument("--until", help="with --since: the window's end (default: now)")
    resync.add_argument("--drain", action="store_true", help="invoke the fetch until the resync is done")

    drift = commands.add_parser("drift", help="compare the next sample of accounts with Salesforce now")
    drift.add_argument("--repair", action="store_true", help="resync the drifted accounts at once")

    store.add_queries(commands.add_parser("store", help="read the store: contact, account, contacts, state"), _positive)
    return parser


def deployment_for(args: argparse.Namespace) -> Deployment:
    if args.local:
        return Deployment.from_local(args.state_dir)
    return Deployment.from_stack(args.stack, region=args.region)


class Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, a plain line every `every` items otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None, every: int = 100) -> None:
        self._label = label
        self._stream = stream or sys.stderr
        self._every = every
        self._tty = self._stream.isatty()
        self._shown = 0

    def __call__(self, done: int) -> None:
        if self._tty:
            self._stream.write(f"\r{self._label}: {done}")
            self._stream.flush()
        elif done - self._shown >= self._every:
            self._stream.write(f"{self._label}: {done}\n")
            self._shown = done

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")


def run_status(deployment: Deployment, args: argparse.Namespace) -> tuple[Any, list[str], int]:
    view = status_view.status(deployment)
    return view, status_view.render(view), 0


def run_dlq_list(deployment: Deployment, args: argparse.Namespace) -> tuple[Any, list[str], int]:
    dead_letters = DeadLetters(deployment)
    names = [args.queue] if args.queue else deployed_dead_letter_queues(deployment)
    listed = {name: [letter.as_dict() for letter in dead_letters.listed(name, args.limit)] for name in names}
    lines = []
    for name, letters in listed.items():
        lines.append(f"{name}: {len(letters)} dead letter(s)")
        for letter in letters:
            lines.append(
                f"  {letter['message_id']}  {letter['kind']:<16} group={letter['group'] or '-'}  "
                f"receives={letter['receive_count']}  reason={letter['reason'] or '-'}"
            )
    total = sum(len(letters) for letters in listed.values())
    return {"dead_letters": listed, "total": total}, lines, 1 if total else 0


def run_dlq_redrive(deployment: Deployment, args: argparse.Namespace) -> tuple[Any, list[str], int]:
    progress = Progress(f"redriving {args.queue}")
    summary = DeadLetters(deployment).redrive(
        args.queue, args.ids, dry_run=args.dry_run, progress=progress, use_move_task=not deployment.local
    )
    progress.close()
    if summary.move_task:
        lines = [f"{args.queue}: SQS is moving every dead letter back (task {summary.move_task})"]
    elif args.dry_run:
        lines = [f"{args.queue}: would move {len(summary.would_move)} message(s); nothing moved (dry run)"]
        lines += [f"  {message_id}" for message_id in summary.would_move]
    else:
        lines = [f"{args.queue}: moved {len(summary.moved)} message(s) back to their queue"]
    if summary.not_found:
        lines.append(f"not found: {', '.join(summary.not_found)}")
    return summary.as_dict(), lines, 1 if summary.not_found else 0


def run_resync(deployment: Deployment, args: argparse.Namespace) -> tuple[Any, list[str], int]:
    if args.until and not args.since:
        raise CommandError("--until goes with --since")
    request = resyncing.request_for(args.account_ids, args.since, args.until, args.everything)
    progress = Progress("accounts queued for resync")
    try:
        summary = resyncing.resync(deployment, request, drain=args.drain, progress=progress)
    except resyncing.ResyncFailed as exc:
        raise CommandError(str(exc)) from None
    finally:
        progress.close()
    return summary.as_dict(), resyncing.render(summary), 1 if summary.not_found else 0


def run_drift(deployment: Deployment, args: argparse.Namespace) -> tuple[Any, list[str], int]:
    try:
        found = resyncing.drift(deployment, repair=args.repair)
    except resyncing.ResyncFailed as exc:
        raise CommandError(str(exc)) from None
    unrepaired = found.get("drifted") and not found.get("repaired")
    return found, resyncing.render_drift(found), 1 if unrepaired else 0


def run_store(deployment: Deployment, args: argparse.Namespace) -> tuple[Any, list[str], int]:
    if args.query == "state":
        view = status_view.sync_state(deployment)
    else:
        try:
            view = store.query(deployment, args)
        except store.NotFound as exc:
            raise CommandError(str(exc.args[0])) from None
    text = json.dumps(view, indent=2, ensure_ascii=False, default=str)
    return view, text.splitlines(), 0


class CommandError(RuntimeError):
    pass


COMMANDS: dict[str, Callable[[Deployment, argparse.Namespace], tuple[Any, list[str], int]]] = {
    "status": run_status,
    "dlq list": run_dlq_list,
    "dlq redrive": run_dlq_redrive,
    "store": run_store,
    "resync": run_resync,
    "drift": run_drift,
}


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = stdout or sys.stdout
    command = args.command + (f" {args.dlq_command}" if args.command == "dlq" else "")
    try:
        deployment = deployment_for(args)
        view, lines, status = COMMANDS[command](deployment, args)
    except (DeploymentNotFound, CommandError) as exc:
        print(f"account-sync: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(view, out, indent=2, ensure_ascii=False, default=str)
        out.write("\n")
    else:
        out.write("\n".join(lines) + "\n")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
