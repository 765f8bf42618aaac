"""`python -m local_stack up`: a long-running local stack that behaves like the deployed system.

    python -m local_stack up [--moto-port 4566] [--salesforce-port 8443] [--api-port 3000] [--schedule-seconds 30]
                             [--seed small|none] [--throttle-table-writes N] [--throttle-partition-writes N]
                             [--throttle-table-reads N] [--index-lag-seconds S] [--push]

Starts a `SyncSandbox` (moto server, the template's tables and queues, the Salesforce emulator over HTTPS with its
CA and connected-app key kept in `.local-stack/salesforce/`), writes `.local-stack/stack.json` for `store`,
`token` and `invoke --attach`, optionally loads the small data set of the demo, then runs a sync cycle (the
fetch, then the SQS triggers until the queues are empty) every `--schedule-seconds`, one line per cycle. The
triggers keep draining between cycles, so messages queued by another process (`invoke --attach`) are applied
too. Ctrl-C (or SIGTERM) stops it: the moto process is terminated and the files stay for inspection. The
functions' own output (their CloudWatch logs) goes to `.local-stack/functions.log`. The template's HTTP API is
served on 127.0.0.1:`--api-port` (`local_stack.http_api`: unsigned requests, one local IAM identity).

As harsh as AWS where it matters: a function is killed at its Timeout (nothing it sends after that lands;
`local_stack.lambda_runtime`); `--throttle-*` meter every DynamoDB request of the functions with token buckets
per table and per partition key (units a second), answered as DynamoDB answers them (`ProvisionedThroughput-
ExceededException`, `ThrottlingException`, `UnprocessedItems`; `local_stack.dynamodb_throttling`); and
`--index-lag-seconds` hides a contact that joined an account from the account index for that long.

With `--push` the push path is on (issue 13): the emulator puts a Change Data Capture event for every Account and
Contact change on the partner event bus that moto's CloudFormation made from the template (`EventRelaySourceName`
set to the emulator's Event Relay source), its rule delivers them to the change-events queue, and the push function
runs from that queue between cycles: a change reaches the contacts within seconds, the cycles are the poll.

With `--seed small` the activity threshold is the small data set's (50: one account has exactly 50 contacts,
one has 51) and the fetch's overlap (`LookbackSeconds`) is one schedule period, as in the deployed system (5
minutes, 300 s); `--parameter-overrides` wins over both.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import random
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from local_stack.running import (
    NoRunningStack,
    RunningStack,
    add_state_dir_option,
    describe,
    mark_stopped,
    shown_path,
    write_stack_file,
)

if TYPE_CHECKING:
    from local_stack.http_api import LocalHttpApi
    from local_stack.sandbox import CycleResult, SyncSandbox
    from local_stack.sqs_poller import DrainResult

POLL_SECONDS = 0.5  # between two drains of the triggers, while no message waits
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up",
        help="start a long-running local stack: a sync cycle on a schedule, until Ctrl-C",
        description=__doc__.split("\n\n")[2],
    )
    parser.add_argument("--moto-port", type=int, default=4566, help="the moto server's port (default 4566)")
    parser.add_argument(
        "--salesforce-port", type=int, default=8443, help="the Salesforce emulator's HTTPS port (default 8443)"
    )
    parser.add_argument(
        "--schedule-seconds", type=float, default=30.0, help="seconds between two sync cycles (default 30)"
    )
    parser.add_argument(
        "--api-port", type=int, default=3000, help="the HTTP API's port on 127.0.0.1 (default 3000; 0: none)"
    )
    parser.add_argument(
        "--seed", choices=["small", "none"], default="small", help="load the demo's small data set (default small)"
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        type=_assignment,
        metavar="NAME=VALUE",
        help="template parameter values, as sam's --parameter-overrides",
    )
    for flag, what in (
        ("--throttle-table-writes", "write units a second each table takes (default: not metered)"),
        ("--throttle-partition-writes", "write units a second each partition key takes (default 1000 once metered)"),
        ("--throttle-table-reads", "read units a second each table takes (default: not metered)"),
    ):
        parser.add_argument(flag, type=_positive, default=None, metavar="N", help=what)
    parser.add_argument(
        "--index-lag-seconds",
        type=_positive,
        default=None,
        metavar="S",
        help="the account index shows a contact that joined an account only after S seconds (default: at once)",
    )
    parser.add_argument(
        "--push",
        action="store_true",
        help="the push path on: Change Data Capture events through moto's EventBridge to the push function",
    )
    add_state_dir_option(parser)
    parser.set_defaults(run=run)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number expected, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a positive number expected, not {text!r}")
    return value


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"NAME=VALUE expected, not {text!r}")
    return name, value


def run(args: argparse.Namespace) -> int:
    if args.schedule_seconds <= 0:
        raise SystemExit("error: --schedule-seconds must be positive")
    state_dir: Path = args.state_dir.resolve()
    with contextlib.suppress(NoRunningStack):
        running = RunningStack.connect(state_dir)
        raise SystemExit(
            f"error: a local stack is already running from {running.path} "
            f"(pid {running.description.get('pid')}, {running.endpoint_url})"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    # The fan-out's parallel writes outnumber botocore's pool of 10 connections: a harmless warning each time.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    overrides = _parameter_overrides(args)
    console = Console(sys.stdout)
    log_path = state_dir / "functions.log"
    with log_path.open("a", encoding="utf-8") as function_logs, contextlib.redirect_stdout(function_logs):
        return _serve(args, state_dir, overrides, console, log_path)


def _parameter_overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = {"LookbackSeconds": str(max(1, round(args.schedule_seconds)))}
    if args.seed == "small":
        from local_stack.demo import SCALES

        overrides["ActivityThreshold"] = str(SCALES["small"].threshold)
    overrides.update(dict(args.parameter_overrides))
    return overrides


class Console:
    """The lines a person watching `up` reads; timestamped, flushed at once."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def event(self, text: str) -> None:
        self.say(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {text}")


def _serve(
    args: argparse.Namespace, state_dir: Path, overrides: dict[str, str], console: Console, log_path: Path
) -> int:
    from local_stack.sandbox import SyncSandbox

    for port, option in (
        (args.moto_port, "--moto-port"),
        (args.salesforce_port, "--salesforce-port"),
        (args.api_port, "--api-port"),
    ):
        _check_port_free(port, option)
    sandbox = SyncSandbox(
        parameter_overrides=overrides,
        state_dir=state_dir / "salesforce",
        moto_port=args.moto_port or None,
        salesforce_port=args.salesforce_port,
        push=args.push,
    )
    # Ctrl-C stops `up` even when it inherited an ignored SIGINT (a background job of a non-interactive shell,
    # as CI runs the suite): Python keeps an inherited SIG_IGN, and the Ctrl-C would then be lost.
    previous = {number: signal.signal(number, _interrupt) for number in _STOP_SIGNALS}
    http_api: LocalHttpApi | None = None
    harshness: list[Any] = []
    try:
        try:
            with _signals_ignored(signal.SIGINT):  # a Ctrl-C reaches the moto process too: this process stops it
                sandbox.start()
        except (OSError, RuntimeError, ValueError) as exc:  # a port taken, a bad parameter value...
            raise SystemExit(f"error: cannot start the local stack: {exc}") from None
        stack_file = write_stack_file(state_dir, describe(sandbox, state_dir, overrides))
        harshness = _make_harsh(args)
        _introduce(sandbox, console, stack_file, log_path, args)
        http_api = _start_http_api(sandbox, console, args.api_port)
        if args.seed == "small":
            _seed_small(sandbox, console)
        console.say(f"A sync cycle every {args.schedule_seconds:g} s. Ctrl-C stops.")
        _run_schedule(sandbox, console, args.schedule_seconds)
    except KeyboardInterrupt:
        console.say("")
        console.event("stopping")
    finally:
        with _signals_ignored():  # a second Ctrl-C must not leave the moto process behind
            for injector in harshness:
                injector.uninstall()
            if http_api is not None:
                http_api.stop()
            sandbox.stop()
            mark_stopped(state_dir)
        for number, handler in previous.items():
            signal.signal(number, handler)
    console.event(f"stopped; the files stay in {shown_path(state_dir)}")
    return 0


def _check_port_free(port: int, option: str) -> None:
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no owner
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"error: port {port} is in use; choose another with {option}") from None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_ignored(*signals: int) -> Iterator[None]:
    """SIGINT and SIGTERM (or `signals`) ignored in here.

    Processes started in here inherit an ignored SIGINT (and Python keeps it ignored), so a Ctrl-C in the
    terminal, which reaches the whole process group, stops only this process, which then stops them.
    """
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in signals or _STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _introduce(sandbox: SyncSandbox, console: Console, stack_file: Path, log_path: Path, args: Any) -> None:
    salesforce = sandbox.salesforce
    resources = sandbox.local.resources
    assert resources is not None
    parameters = resources.parameters
    console.event("local stack up")
    console.say(f"  AWS (moto) ........ {sandbox.local.endpoint_url}  (stage {sandbox.local.stage})")
    console.say(f"  Salesforce ........ {salesforce.url}  (CA {shown_path(salesforce.ca_bundle)})")
    console.say(f"  stack file ........ {shown_path(stack_file)}")
    console.say(f"  functions' logs ... {shown_path(log_path)}")
    console.say(
        f"  parameters ........ ActivityThreshold={parameters['ActivityThreshold']} "
        f"LookbackSeconds={parameters['LookbackSeconds']}"
    )
    console.say(f"  harsh as AWS ...... {_harshness_line(args)}")
    if sandbox.relay is not None:
        console.say(f"  push path ......... on: Event Relay -> {parameters['EventRelaySourceName']} -> change-events")
    state = "" if args.state_dir == Path(".local-stack") else f" --state-dir {args.state_dir}"
    console.say(f"  look at it ........ account-sync --local{state} status")
    console.say(f"  change Salesforce . python -m local_stack token{state}  (an access token and a curl example)")


def _make_harsh(args: argparse.Namespace) -> list[Any]:
    """The DynamoDB injectors the flags ask for, installed in this process (where the functions run)."""
    from local_stack.dynamodb_throttling import IndexLag, throttle_from_options

    injectors: list[Any] = []
    throttle = throttle_from_options(
        args.throttle_partition_writes, args.throttle_table_writes, args.throttle_table_reads
    )
    if throttle is not None:
        injectors.append(throttle)
    if args.index_lag_seconds is not None:
        injectors.append(IndexLag(args.index_lag_seconds))
    for injector in injectors:
        injector.install()
    return injectors


def _harshness_line(args: argparse.Namespace) -> str:
    parts = ["killed at the timeout"]
    if args.throttle_table_writes or args.throttle_partition_writes or args.throttle_table_reads:
        parts.append(
            "DynamoDB throttled (writes/s per table "
            f"{args.throttle_table_writes or '-'}, per partition {args.throttle_partition_writes or 1000:g}, "
            f"reads/s per table {args.throttle_table_reads or '-'})"
        )
    if args.index_lag_seconds:
        parts.append(f"index lag {args.index_lag_seconds:g} s")
    return "; ".join(parts)


def _start_http_api(sandbox: SyncSandbox, console: Console, port: int) -> LocalHttpApi | None:
    """The template's HTTP API on 127.0.0.1 (unsigned requests: see local_stack.http_api)."""
    if not port:
        return None
    from local_stack.http_api import LocalHttpApi, http_routes

    stack = sandbox.local
    assert stack.runtime is not None
    api = LocalHttpApi(stack.runtime, http_routes(stack.template), port=port).start()
    console.say(f"  HTTP API .......... {api.url}  (the template's routes; README: HTTP API)")
    return api


def _seed_small(sandbox: SyncSandbox, console: Console) -> None:
    from local_stack.demo import SCALES, Story, load_salesforce

    story = Story()
    accounts, contacts = load_salesforce(sandbox, SCALES["small"], random.Random(7), story)
    threshold = SCALES["small"].threshold
    console.event(f"Salesforce seeded: {accounts} accounts, {contacts} contacts")
    console.say(f"  {story.at_threshold}: exactly {threshold} contacts (activities logged)")
    console.say(f"  {story.above_threshold}: {threshold + 1} contacts (activities suppressed)")


def _run_schedule(sandbox: SyncSandbox, console: Console, period: float) -> None:
    """A cycle now and then every `period` seconds; the triggers drain the queues in between."""
    number = 0
    next_cycle = time.monotonic()
    while True:
        if time.monotonic() >= next_cycle:
            number += 1
            _cycle(sandbox, console, number)
            next_cycle = max(next_cycle + period, time.monotonic())
            continue
        for result in sandbox.local.run_event_invocations(limit=1):  # a paused fetch's next run, at once
            outcome = result.payload.get("outcome") if result.ok else result.error
            console.event(f"the fetch continued at once: {outcome}")
        between = sandbox.local.drain(until_empty=False, timeout=max(0.1, next_cycle - time.monotonic()))
        if between.received:
            console.event(f"between cycles: {_applied(between)}")
        else:
            time.sleep(min(POLL_SECONDS, max(0.0, next_cycle - time.monotonic())))


def _cycle(sandbox: SyncSandbox, console: Console, number: int) -> CycleResult | None:
    from local_stack.lambda_runtime import LambdaInvocationError

    activities_before = _activity_count(sandbox)
    try:
        cycle = sandbox.run_cycle()
    except LambdaInvocationError as exc:  # the next schedule tries again, as EventBridge would
        console.event(f"cycle {number}: the fetch failed: {exc}")
        return None
    queued = cycle.fetch.get("queued") or {}
    outcome = cycle.fetch.get("outcome", "completed")
    console.event(
        f"cycle {number}: queued {queued.get('Account', 0)} accounts, {queued.get('Contact', 0)} contacts"
        f"{'' if outcome == 'completed' else f' ({outcome})'}; {_applied(cycle.drain)}; "
        f"activities +{_activity_count(sandbox) - activities_before}; "
        f"{cycle.salesforce_calls} Salesforce API calls; {cycle.seconds:.1f}s"
    )
    return cycle


def _applied(drained: DrainResult) -> str:
    return (
        f"applied {drained.succeeded} messages in {drained.invocations} invocations "
        f"({drained.failed} retried, {drained.moved_to_dlq} to a DLQ)"
    )


def _activity_count(sandbox: SyncSandbox) -> int:
    """Items in the activities table (moto counts them live; DynamoDB would every few hours)."""
    import boto3

    resources = sandbox.local.resources
    assert resources is not None
    table = boto3.client("dynamodb").describe_table(TableName=resources.table_name("ActivitiesTable"))
    return int(table["Table"].get("ItemCount", 0))
