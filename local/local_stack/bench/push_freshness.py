"""Target 7 (issue 13): the push path's freshness and Salesforce calls, on the local stack with push on.

One `SyncSandbox(push=True)`: the emulator's Change Data Capture events go through moto's EventBridge (the
template's partner bus and rule) to the change-events queue, and the SQS triggers run the push function, the
fan-out and the activity log, as `make demo` does.

* Freshness by push: an account of `contacts` contacts, synced by a poll; then `changes` changes of its Name in
  Salesforce, one at a time, each followed by the triggers until the queues are empty (no fetch runs). A change's
  freshness is Salesforce's commit (the record's SystemModstamp) to the moment the version reached the account's
  last contact (the account's `applied_modstamp` write, its `updated_at`): what `SyncLagSeconds` measures.
  The local poller does not wait for Lambda's batching window (`MaximumBatchingWindowInSeconds` of the push
  function's trigger, read from the template: 1 s): the column "with the batching window" adds it, the most it
  can add.
* Freshness by poll alone: the same account changed with the relay down, then a scheduled cycle (fetch and
  triggers) measured. The worst case is a change committed just after a window's end: it waits a whole schedule
  period, then the cycle; so worst = period + the slowest cycle measured, for SyncSchedule (push off) and for
  PollScheduleWithPush (push on, the poll as the safety net).
* Salesforce calls by push per `accounts` changed accounts: that many accounts changed (one event each) while the
  triggers are idle, then the triggers run; the calls are the emulator's request log over that drain (only the
  push function calls Salesforce there). Lower bound: ⌈accounts/200⌉ `queryAll` calls (200 ids a query).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import datetime
from typing import Any, TextIO

from local_stack.bench.report import Results, Table, Verdict
from local_stack.sandbox import SyncSandbox

IDS_PER_QUERY = 200  # services/push_changes.py: one queryAll per 200 ids
PUSH = "PushChangesFunction"
POLL_CYCLES = 3
TARGET_P50, TARGET_P99, POLL_MARGIN = 5.0, 30.0, 60.0


def run(
    results: Results, contacts: int, changes: int, accounts: int, function_log: TextIO, say: Callable[[str], None]
) -> None:
    with _push_sandbox() as sandbox:
        say(f"  an account of {contacts:,} contacts, synced by a poll")
        with redirect_stdout(function_log):  # the functions' logs
            account = _synced_account(sandbox, contacts)
        say(f"  {changes} changes by push")
        with redirect_stdout(function_log):
            lags = [_push_one_change(sandbox, account, n) for n in range(changes)]
        say(f"  {POLL_CYCLES} changes by poll alone")
        with redirect_stdout(function_log):
            cycles = [_poll_one_change(sandbox, account, n) for n in range(POLL_CYCLES)]
        say(f"  {accounts:,} accounts changed, read by push")
        with redirect_stdout(function_log):
            calls = _calls_for_changed_accounts(sandbox, accounts)
        parameters = sandbox.local.resources.parameters  # type: ignore[union-attr]
        window = batching_window(sandbox)
    _report(results, contacts, lags, cycles, parameters, accounts, calls, window)


def batching_window(sandbox: SyncSandbox) -> float:
    """The push function's `MaximumBatchingWindowInSeconds`, as the template gives it."""
    from local_stack.triggers import sqs_event_sources

    local = sandbox.local
    assert local.resources is not None
    (source,) = [s for s in sqs_event_sources(local.template, local.resources) if s.function_logical_id == PUSH]
    return float(source.maximum_batching_window_in_seconds)


@contextmanager
def _push_sandbox() -> Iterator[SyncSandbox]:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # a secret cached for another sandbox of this process (another key pair)
    with SyncSandbox(parameter_overrides={"LogLevel": "ERROR", "LookbackSeconds": 0}, push=True) as sandbox:
        yield sandbox


def _synced_account(sandbox: SyncSandbox, contacts: int) -> str:
    relay = sandbox.relay
    assert relay is not None
    relay.faults.down = True  # the load is the poll's
    account = sandbox.salesforce.create("Account", {"Name": "Pushed 0", "Industry": "Energy"})
    sandbox.salesforce.bulk_create(
        "Contact", [{"LastName": f"C{n:05d}", "AccountId": account} for n in range(contacts)]
    )
    _settle(sandbox, account)
    if not sandbox.run_cycle().drain.empty:
        raise RuntimeError("the initial sync did not drain")
    relay.faults = type(relay.faults)()
    return account


def _push_one_change(sandbox: SyncSandbox, account: str, n: int) -> float:
    sandbox.salesforce.update("Account", account, {"Name": f"Pushed {n + 1}"})
    if not sandbox.drain(timeout=600).empty:
        raise RuntimeError("the triggers did not drain")
    return _lag(sandbox, account)


def _poll_one_change(sandbox: SyncSandbox, account: str, n: int) -> float:
    relay = sandbox.relay
    assert relay is not None
    relay.faults.down = True
    sandbox.salesforce.update("Account", account, {"Name": f"Polled {n + 1}"})
    _settle(sandbox, account)
    cycle = sandbox.run_cycle()
    relay.faults = type(relay.faults)()
    _lag(sandbox, account)  # the version reached every contact
    return cycle.seconds


def _lag(sandbox: SyncSandbox, account: str) -> float:
    """Seconds from the account version's commit to its last contact (the write that marked it applied)."""
    from account_sync.adapters.dynamodb_models import AccountItem
    from account_sync.domain.timestamps import normalize_timestamp, parse_timestamp

    stamp = normalize_timestamp(sandbox.salesforce.get("Account", account)["SystemModstamp"])
    item = AccountItem.get(account, consistent_read=True)
    if item.applied_modstamp != stamp or item.updated_at is None:
        raise RuntimeError(f"version {stamp} not applied to every contact (applied: {item.applied_modstamp})")
    return (parse_timestamp(item.updated_at) - parse_timestamp(stamp)).total_seconds()


def _calls_for_changed_accounts(sandbox: SyncSandbox, accounts: int) -> Counter[str]:
    salesforce = sandbox.salesforce
    relay = sandbox.relay
    assert relay is not None
    relay.faults.down = True
    ids = salesforce.bulk_create("Account", [{"Name": f"Bench {i:05d}", "Industry": "Energy"} for i in range(accounts)])
    relay.faults = type(relay.faults)()
    for account_id in ids:  # one commit, one event each
        salesforce.update("Account", account_id, {"Industry": "Retail"})
    before = len(salesforce.request_log)
    if not sandbox.drain(timeout=1800).empty:
        raise RuntimeError("the triggers did not drain")
    return Counter(kind for _, kind in salesforce.request_log[before:])


def _settle(sandbox: SyncSandbox, record_id: str) -> None:
    """Past the record's SystemModstamp (the emulator stamps a burst ahead of the wall clock): a window that
    ends now holds it."""
    record = sandbox.salesforce.get("Account", record_id)
    stamp = datetime.strptime(record["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    ahead = (stamp - sandbox.salesforce.clock.now()).total_seconds()
    if ahead > -0.002:
        time.sleep(ahead + 0.002)


def rate_seconds(expression: str) -> float:
    """`rate(5 minutes)` → 300 (the schedule expressions the template's parameters take)."""
    match = re.fullmatch(r"rate\((\d+) (second|minute|hour|day)s?\)", expression.strip())
    if match is None:
        raise ValueError(f"not a rate expression: {expression!r}")
    return int(match.group(1)) * {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[match.group(2)]


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _report(
    results: Results,
    contacts: int,
    lags: list[float],
    cycles: list[float],
    parameters: Any,
    accounts: int,
    calls: Counter[str],
    window: float,
) -> None:
    p50, p99 = statistics.median(lags), percentile(lags, 0.99)
    table = Table(
        f"Target 7: the push path (Change Data Capture through Event Relay), an account of {contacts:,} contacts",
        ["measure", "measured", "with the batching window", "target"],
        notes=[
            f"Freshness by push over {len(lags)} changes, one at a time: Salesforce's commit (SystemModstamp) to "
            "the write that marked the version applied on the account (every contact holds it). The local poller "
            f"does not wait for Lambda's batching window ({window:g} s on the push trigger): the second column "
            "adds it, the most it can add.",
            f"Poll alone: worst = the schedule period + the slowest of {len(cycles)} measured cycles (fetch and "
            f"triggers for one change of the account): {', '.join(f'{c:.1f}' for c in cycles)} s.",
            f"Salesforce calls by push for {accounts:,} changed accounts (one event each, queued before the "
            f"triggers ran), by kind: {dict(calls)}. Lower bound ⌈{accounts:,}/{IDS_PER_QUERY}⌉ queryAll calls "
            "(the push trigger's BatchSize is 200: a full batch of single-record events is one query).",
        ],
    )
    table.add("freshness p50 (s)", p50, p50 + window, f"≤ {TARGET_P50:g}")
    table.add("freshness p99 (s)", p99, p99 + window, f"≤ {TARGET_P99:g}")
    table.add("freshness max (s)", max(lags), max(lags) + window, "—")
    worst = {}
    for name in ("SyncSchedule", "PollScheduleWithPush"):
        period = rate_seconds(str(parameters[name]))
        worst[name] = period + max(cycles)
        table.add(f"poll alone, worst (s): {name} {parameters[name]}", worst[name], None, f"≤ {period + POLL_MARGIN:g}")
    spent = sum(calls.values())
    queries = calls.get("queryAll", 0) + calls.get("query_more", 0)
    bound = math.ceil(accounts / IDS_PER_QUERY)
    table.add(f"Salesforce calls per {accounts:,} changed accounts", spent, None, f"bound {bound}")
    table.add("  of which queries", queries, None, f"bound {bound}")
    results.tables.append(table)
    met = p50 + window <= TARGET_P50 and p99 + window <= TARGET_P99
    results.verdicts.append(
        Verdict(
            "7",
            f"freshness by push p50 ≤ {TARGET_P50:g} s, p99 ≤ {TARGET_P99:g} s ({contacts:,} contacts)",
            met,
            f"p50 {p50:.1f} s, p99 {p99:.1f} s measured (+{window:g} s batching window)",
        )
    )
    poll_met = worst["SyncSchedule"] <= rate_seconds(str(parameters["SyncSchedule"])) + POLL_MARGIN
    results.verdicts.append(
        Verdict(
            "7", "freshness by poll alone ≤ schedule period + 60 s", poll_met, f"worst {worst['SyncSchedule']:.0f} s"
        )
    )
    results.verdicts.append(
        Verdict(
            "7",
            f"Salesforce calls by push per {accounts:,} changed accounts against ⌈n/200⌉",
            spent <= bound,
            f"{spent} calls ({queries} queries), bound {bound}",
        )
    )
