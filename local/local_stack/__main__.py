"""`python -m local_stack <command>`: the local stack from the command line.

    python -m local_stack invoke FanOutFunction -e events/account_change.json
    python -m local_stack invoke fan_out -e events/account_change.json --env LOG_LEVEL=DEBUG
    python -m local_stack up                     # a long-running stack: a sync cycle every 30 s (local_stack.up)
    python -m local_stack invoke fetch_changes -e events/fetch_schedule.json --attach
    python -m local_stack token                  # an access token for its Salesforce (local_stack.salesforce_token)
    python -m local_stack late-commit Account <id> Industry=Retail --seconds-ago 900   # (local_stack.salesforce_faults)

`invoke` starts a throwaway stack (moto server, every table and queue of template.yaml, the functions'
environment), invokes one function with the event file and prints its response as JSON on stdout (logs go to
stderr). A function error prints Lambda's error payload and exits with status 1. No Docker involved. With
`--attach` it invokes the function in this process against the stack that `up` runs instead (found through
`.local-stack/stack.json`), so that what it writes stays, and what it queues is applied by that stack's triggers.

Adding a command: write `_add_<name>_command(subparsers)` that registers its parser with
`set_defaults(run=<function taking the parsed args and returning an exit status>)`, and list it in
`COMMANDS` (a command that grows gets a module of its own with an `add_command(subparsers)`, as `up` has).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_stack import salesforce_faults, salesforce_token, up
from local_stack.running import add_state_dir_option

if TYPE_CHECKING:
    from local_stack.lambda_runtime import InvocationResult


def _key_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise SystemExit(f"{option} takes NAME=VALUE, not {pair!r}")
        values[name] = value
    return values


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, default=None, help="template file (default: template.yaml)")
    parser.add_argument("--stage", default="local", help="the Stage parameter (default: local)")
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter values, as sam's --parameter-overrides",
    )
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="NAME=VALUE", help="extra environment for every function"
    )


def _run_invoke(args: argparse.Namespace) -> int:
    event: Any = {}
    if args.event == "-":
        event = json.load(sys.stdin)
    elif args.event:
        try:
            event = json.loads(Path(args.event).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: cannot read the event {args.event}: {exc}") from None
    output = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # the function's logs (stdout on Lambda) go to stderr
        try:
            result = _invoke_attached(args, event) if args.attach else _invoke_throwaway(args, event)
        except KeyError as exc:
            raise SystemExit(f"error: {exc.args[0]}") from None
    json.dump(result.payload, output, indent=2)
    output.write("\n")
    return 0 if result.ok else 1


def _invoke_throwaway(args: argparse.Namespace, event: Any) -> InvocationResult:
    from local_stack.stack import LocalStack

    stack = LocalStack(
        args.template,
        stage=args.stage,
        parameter_overrides=_key_values(args.parameter_overrides, "--parameter-overrides"),
        extra_env=_key_values(args.env, "--env"),
    )
    with stack:
        return stack.invoke_result(args.function, event)


def _invoke_attached(args: argparse.Namespace, event: Any) -> InvocationResult:
    from local_stack.running import NoRunningStack, RunningStack

    try:
        stack = RunningStack.connect(args.state_dir)
    except NoRunningStack as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.parameter_overrides or args.stage != stack.stage:
        raise SystemExit("error: --attach uses the running stack's stage and parameters (see its stack.json)")
    return stack.invoke(args.function, event, extra_env=_key_values(args.env, "--env"), template=args.template)


def _add_invoke_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="invoke one function with an event file on a throwaway local stack",
        description="Invoke one function (logical id, code folder or function name) with an event file.",
    )
    parser.add_argument("function", help="e.g. FanOutFunction, fan_out or account-sync-local-fan-out")
    parser.add_argument("-e", "--event", help="event JSON file (events/*.json), or - for stdin; default {}")
    parser.add_argument(
        "--attach", action="store_true", help="invoke it against the running stack of `up`, not a throwaway one"
    )
    _add_stack_options(parser)
    add_state_dir_option(parser)
    parser.set_defaults(run=_run_invoke)


COMMANDS: list[Callable[[Any], None]] = [
    _add_invoke_command,
    up.add_command,
    salesforce_token.add_command,
    salesforce_faults.add_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
