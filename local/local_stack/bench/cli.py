"""`make bench [BENCH_ARGS=...]`: run the benchmark, print the tables, write `bench/results.md` and `bench/cost.png`.

Default sizes finish in a few minutes on two cores: 100 and 10,000 changed accounts (Target 1), an initial load of
`--fetch-load ACCOUNTS/CONTACTS` in one run and resumed over runs (Target 1 (b)), the same and a load of
`--fetch-scattered` whose contacts are scattered, at `--fetch-latency-ms` a request, with 1 and `--fetch-lanes` send
lanes (Target 1 (d)), accounts of 1,000 and 10,000
contacts (Targets 2 to 4). `--large` adds an account of 100,000 contacts (Targets 2 and 3, about forty
minutes on the local backend) and measures the sequential loop of Target 4 (b) on all its contacts. `--throttled`
adds Target 6: the fan-out of an account of each `--throttled-contacts` size and an initial load (`--initial-load
ACCOUNTS/CONTACTS`), each without and with DynamoDB throttling (`--throttle-table-writes`,
`--throttle-partition-writes`; `local_stack.dynamodb_throttling`), each run draining at most `--throttle-budget`
seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from local_stack.bench import cold_start, fan_out_costs, fetch_loads, push_freshness, salesforce_calls, throttled
from local_stack.bench.report import Results, plot, render_console, render_markdown

ROOT = Path(__file__).resolve().parents[3]
HEADER = """# Benchmark results

Written by `make bench` (`local/local_stack/bench/`); the method and what the figures mean are in
[docs/decisions.md](../docs/decisions.md) (the entry on the benchmark). Requests are counted by the servers that
answer them: the local stack's moto server and the Salesforce emulator."""


def _sizes(text: str) -> list[int]:
    return sorted({int(part.replace("_", "").replace(",", "")) for part in text.split("/") if part})


def _sizes_in_order(text: str) -> list[int]:
    return [int(part.replace("_", "").replace(",", "")) for part in text.split("/")]


def _pair(text: str) -> tuple[int, int]:
    accounts, _, contacts = text.partition("/")
    try:
        return int(accounts.replace("_", "")), int(contacts.replace("_", "") or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ACCOUNTS/CONTACTS expected, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--large", action="store_true", help="add the 100,000-contact account")
    parser.add_argument("--contacts", type=_sizes, help="account sizes, e.g. 1000/10000")
    parser.add_argument(
        "--overhead-contacts",
        type=_sizes,
        help="Target 4: account sizes timed against the bare loops (default: ≤ 10000)",
    )
    parser.add_argument("--accounts", type=_sizes, default=[100, 10_000], help="changed accounts, e.g. 100/10000")
    parser.add_argument(
        "--fetch-load",
        type=_pair,
        default=(10_000, 100_000),
        help="Target 1 (b): ACCOUNTS/CONTACTS of an initial load by Bulk API 2.0 (default 10000/100000; 0/0: none)",
    )
    parser.add_argument(
        "--fetch-work-seconds",
        type=int,
        default=4,
        help="Target 1 (b): seconds a resumed run works before its stop margin (its Timeout: 30 s more)",
    )
    parser.add_argument(
        "--fetch-scattered",
        type=_pair,
        default=(2_000, 20_000),
        help="Target 1 (d): ACCOUNTS/CONTACTS of an initial load whose contacts are scattered (default 2000/20000)",
    )
    parser.add_argument("--fetch-lanes", type=int, default=8, help="Target 1 (d): the fetch's send lanes (default 8)")
    parser.add_argument(
        "--fetch-latency-ms", type=float, default=10.0, help="Target 1 (d): latency injected per AWS request"
    )
    parser.add_argument("--latency-ms", type=float, default=5.0, help="latency injected for Target 4 (b)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of fresh interpreters for Target 5")
    parser.add_argument("--runtime-python", help="the interpreter of Target 5 (default: this one)")
    parser.add_argument("--only", default="1,2,5,7", help="targets: 1 (Salesforce), 2 (2-4: fan-out), 5, 7 (push)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where results.md and cost.png go")
    parser.add_argument("--throttled", action="store_true", help="add Target 6: the same under DynamoDB throttling")
    parser.add_argument(
        "--throttle-table-writes",
        type=float,
        default=100.0,
        help="Target 6: writes/s per table (default 100: below the ~120-150 the local backend serves, so it binds)",
    )
    parser.add_argument(
        "--throttle-partition-writes", type=float, default=1000.0, help="Target 6: writes/s per partition key"
    )
    parser.add_argument(
        "--throttled-contacts",
        type=_sizes,
        default=[10_000, 100_000],
        help="Target 6: account sizes fanned out under throttling (default 10000/100000)",
    )
    parser.add_argument(
        "--throttle-budget",
        type=float,
        default=2400.0,
        help="Target 6: seconds each run may drain (default 2400: 100,000 throttled contacts at ~50/s measured)",
    )
    parser.add_argument(
        "--initial-load",
        type=_pair,
        default=(1_000, 10),
        help="Target 6: ACCOUNTS/CONTACTS of an initial load (default 1000/10; 0/0: none)",
    )
    parser.add_argument(
        "--push", default="1000/24/1000", type=_sizes_in_order, help="Target 7: CONTACTS/CHANGES/ACCOUNTS (push path)"
    )
    args = parser.parse_args(argv)
    contacts = args.contacts or ([1_000, 10_000, 100_000] if args.large else [1_000, 10_000])
    only = {part.strip() for part in args.only.split(",")} | ({"6"} if args.throttled else set())

    logging.basicConfig(level=logging.ERROR)
    work = args.out / "out"
    work.mkdir(parents=True, exist_ok=True)
    results = Results(arguments=" ".join(sys.argv[1:] if argv is None else argv))
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)

    with (work / "functions.log").open("w") as function_log:
        if "1" in only:
            say("Target 1: Salesforce API calls per cycle")
            with results.group("target 1"):
                salesforce_calls.run(results, args.accounts, function_log, say)
                if args.fetch_load[0]:
                    fetch_loads.run(results, *args.fetch_load, args.fetch_work_seconds, function_log, say)
                if args.fetch_load[0] or args.fetch_scattered[0]:
                    fetch_loads.sends(
                        results,
                        args.fetch_load,
                        args.fetch_scattered,
                        args.fetch_lanes,
                        args.fetch_latency_ms,
                        function_log,
                        say,
                    )
        if "2" in only:
            say("Targets 2-4: the fan-out")
            overhead = args.overhead_contacts or [size for size in contacts if size <= 10_000]
            settings = fan_out_costs.Settings(
                sizes=contacts,
                overhead_sizes=overhead,
                latency_size=max(overhead),
                latency_ms=args.latency_ms,
                sequential_sample=None if args.large else 1000,
            )
            with results.group("targets 2-4"):
                fan_out_costs.FanOutBench(settings, function_log, say).run(results)
        if "6" in only:
            say("Target 6: under DynamoDB throttling")
            with results.group("target 6"):
                throttled.run(
                    results,
                    args.throttled_contacts,
                    args.initial_load,
                    args.throttle_table_writes,
                    args.throttle_partition_writes,
                    function_log,
                    say,
                    budget=args.throttle_budget,
                )
        if "7" in only:
            say("Target 7: the push path")
            with results.group("target 7"):
                push_freshness.run(results, *args.push, function_log=function_log, say=say)
    if "5" in only:
        say("Target 5: cold start")
        with results.group("target 5"):
            cold_start.run(results, args.rounds, work, args.runtime_python)

    print(render_console(results))
    args.out.mkdir(parents=True, exist_ok=True)
    written = args.out / "results.md"
    written.write_text(render_markdown(results, HEADER, written.read_text() if written.exists() else ""))
    plotted = plot(results, args.out / "cost.png")
    say(f"wrote {args.out / 'results.md'}" + (f" and {args.out / 'cost.png'}" if plotted else ""))
    return 0
