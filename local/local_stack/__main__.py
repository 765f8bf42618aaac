"""`python -m local_stack <command>`: the local stack from the command line.

    python -m local_stack invoke FanOutFunction -e events/account_change.json
    python -m local_stack invoke fan_out -e events/account_change.json --env LOG_LEVEL=DEBUG

`invoke` starts a throwaway stack (moto server, every table and queue of template.yaml, the functions'
environment), invokes one function with the event file and prints its response as JSON on stdout (logs go to
stderr). A function error prints Lambda's error payload and exits with status 1. No Docker involved.

Adding a command: write `_add_<name>_command(subparsers)` that registers its parser with
`set_defaults(run=<function taking the parsed args and returning an exit status>)`, and list it in
`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


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
    from local_stack.stack import LocalStack

    event: Any = {}
    if args.event == "-":
        event = json.load(sys.stdin)
    elif args.event:
        try:
            event = json.loads(Path(args.event).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: cannot read the event {args.event}: {exc}") from None
    stack = LocalStack(
        args.template,
        stage=args.stage,
        parameter_overrides=_key_values(args.parameter_overrides, "--parameter-overrides"),
        extra_env=_key_values(args.env, "--env"),
    )
    output = sys.stdout
    with contextlib.redirect_stdout(sys.stderr), stack:  # the function's logs (stdout on Lambda) go to stderr
        try:
            result = stack.invoke_result(args.function, event)
        except KeyError as exc:
            raise SystemExit(f"error: {exc.args[0]}") from None
    json.dump(result.payload, output, indent=2)
    output.write("\n")
    return 0 if result.ok else 1


def _add_invoke_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="invoke one function with an event file on a throwaway local stack",
        description="Invoke one function (logical id, code folder or function name) with an event file.",
    )
    parser.add_argument("function", help="e.g. FanOutFunction, fan_out or account-sync-local-fan-out")
    parser.add_argument("-e", "--event", help="event JSON file (events/*.json), or - for stdin; default {}")
    _add_stack_options(parser)
    parser.set_defaults(run=_run_invoke)


COMMANDS: list[Callable[[Any], None]] = [_add_invoke_command]


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
