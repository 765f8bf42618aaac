"""Target 1 (b): an initial load read by Bulk API 2.0 query jobs, in one run and resumed over runs, and a REST
window resumed over runs (issue 11, items 1 and 2).

The org: `accounts` Accounts and `contacts` Contacts, the Contacts created account by account (as a data load
creates them, so that one checkpoint's records hold whole accounts). Each scenario is the scheduled fetch invoked
through the local Lambda runtime until it completes: in one run at the function's own Timeout, or with the
Timeout cut to the stop margin plus a few seconds of work, so that every run stops by the Lambda context's
remaining time and the next resumes its window. Nothing drains the queue: the Salesforce calls and the messages
are all the fetch's. Calls are counted by the emulator's request log, messages by the moto server
(`SendMessageBatch` entries); only the records queued and the checkpoints are the runs' own reports.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from local_stack.bench.harness import Requests
from local_stack.bench.harness import sandbox as bench_sandbox
from local_stack.bench.report import Results, Table, Verdict
from local_stack.bench.salesforce_calls import lower_bound, settle

FETCH = "FetchChangesFunction"
STOP_MARGIN_SECONDS = 30  # the fetch's STOP_MARGIN_MS: a run stops once less than this is left
MAX_RUNS = 200


@dataclass
class Drained:
    """One window read to its end, over one run or several."""

    label: str
    timeout: int
    records: int  # what the org holds for the window
    outcomes: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    queued: int = 0  # records, summed over the runs' reports
    checkpoints: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # the fetch's own thread (the emulator serves from other threads, moto from its process)
    requests: Requests = field(default_factory=Requests)
    killed: int = 0

    @property
    def runs(self) -> int:
        return len(self.outcomes)

    @property
    def calls(self) -> int:
        return sum(self.kinds.values())

    @property
    def per_10k(self) -> float:
        return self.calls / (self.records / 10_000)

    @property
    def completed(self) -> bool:
        return bool(self.outcomes) and self.outcomes[-1] == "completed"


def run(
    results: Results,
    accounts: int,
    contacts: int,
    work_seconds: int,
    function_log: TextIO,
    say: Callable[[str], None],
) -> None:
    records = accounts + contacts
    say(f"  initial load of {accounts:,} accounts and {contacts:,} contacts, in one run")
    with bench_sandbox() as sandbox:
        _load_org(sandbox, accounts, contacts)
        one_run = _drain(sandbox, "initial load, one run", records, None, function_log)
    say(f"    {one_run.runs} run(s), {one_run.calls} calls, {one_run.seconds:.0f} s")
    resumed_timeout = STOP_MARGIN_SECONDS + work_seconds
    say(f"  the same load with a {resumed_timeout} s timeout, then a REST window of {min(accounts, 10_000):,} accounts")
    with bench_sandbox() as sandbox:
        ids = _load_org(sandbox, accounts, contacts)
        resumed = _drain(sandbox, "initial load, resumed", records, resumed_timeout, function_log)
        say(f"    {resumed.runs} runs, {resumed.calls} calls, {resumed.seconds:.0f} s")
        changed = _update_accounts(sandbox, ids[:10_000])
        # REST pages are read faster than a job's (no page of 50,000 to parse): one second of work a run
        window = _drain(sandbox, "REST window, resumed", changed, STOP_MARGIN_SECONDS + 1, function_log)
        say(f"    {window.runs} runs, {window.calls} calls, {window.seconds:.0f} s")
    _report(results, accounts, contacts, one_run, resumed, window)


def _load_org(sandbox: Any, accounts: int, contacts: int) -> list[str]:
    """The org's records, then a wait until the wall clock has passed their stamps; the Account ids."""
    emulator = sandbox.salesforce
    ids = emulator.bulk_create(
        "Account", [{"Name": f"Load {i:07d}", "Industry": "Energy", "Rating": "Hot"} for i in range(accounts)]
    )
    per_account = max(1, contacts // max(1, accounts))
    last = ("Account", ids[-1])
    for first in range(0, contacts, 50_000):  # one transaction per 50,000: the emulator's lock is not held long
        rows = [
            {"LastName": f"C{i:08d}", "Email": f"c{i}@x.example", "AccountId": ids[min(i // per_account, accounts - 1)]}
            for i in range(first, min(first + 50_000, contacts))
        ]
        last = ("Contact", emulator.bulk_create("Contact", rows)[-1])
    settle(emulator, *last)
    return ids


def _update_accounts(sandbox: Any, ids: list[str]) -> int:
    emulator = sandbox.salesforce
    for account_id in ids:
        emulator.update("Account", account_id, {"Industry": "Retail"})
    settle(emulator, "Account", ids[-1])
    return len(ids)


def _drain(sandbox: Any, label: str, records: int, timeout: int | None, function_log: TextIO) -> Drained:
    """Invoke the scheduled fetch until a run completes its windows (at most MAX_RUNS runs)."""
    stack = sandbox.local
    runtime = stack.runtime
    spec = runtime.spec(FETCH)
    if timeout is not None:
        runtime._specs[spec.logical_id] = replace(spec, timeout=timeout)
    drained = Drained(label, timeout or spec.timeout, records)
    target = stack.schedule(FETCH)
    event = target.event(account=stack.resources.account_id)
    while drained.runs < MAX_RUNS and not drained.completed:
        log_before = len(sandbox.salesforce.request_log)
        before = Requests.snapshot(stack.server)
        cpu, wall = time.thread_time(), time.perf_counter()
        with redirect_stdout(function_log):
            result = stack.invoke_result(target.function_logical_id, event)
        drained.seconds += time.perf_counter() - wall
        drained.cpu += time.thread_time() - cpu
        drained.requests = drained.requests + (Requests.snapshot(stack.server) - before)
        drained.kinds.update(kind for _, kind in sandbox.salesforce.request_log[log_before:])
        if result.error is not None:
            drained.killed += result.error.get("errorType") == "Sandbox.Timedout"
            drained.outcomes.append(str(result.error.get("errorType")))
            continue
        report = result.payload
        drained.outcomes.append(str(report["outcome"]))
        drained.queued += sum(report["queued"].values())
        drained.checkpoints += int(report["checkpoints"])
    runtime._specs[spec.logical_id] = spec
    return drained


def _report(
    results: Results, accounts: int, contacts: int, one_run: Drained, resumed: Drained, window: Drained
) -> None:
    bound = lower_bound({"Account": accounts, "Contact": contacts}, cold=True, initial=True)
    table = Table(
        "Target 1 (b): an initial load by Bulk API 2.0, in one run and resumed; a REST window resumed",
        [
            "window",
            "timeout (s)",
            "runs",
            "outcomes",
            "token",
            "describe",
            "job create",
            "job polls",
            "result pages",
            "REST query pages",
            "Salesforce calls",
            "records",
            "calls per 10,000 records",
            "records queued",
            "SendMessageBatch (entries)",
            "checkpoints",
            "fetch seconds",
            "fetch CPU (s)",
            "moto busy (s)",
        ],
        notes=[
            f"The org: {accounts:,} Accounts and {contacts:,} Contacts, created account by account (one checkpoint's "
            "records hold whole accounts, so an account's contacts travel in one message). LookbackSeconds = 0: "
            "no overlap is read again (the tests cover the overlap). Lower bound of the one-run load "
            f"(`salesforce_calls.lower_bound`): {bound} calls (token, the Account describe of the field check, per "
            "object a job create, one poll, ⌈n/50,000⌉ result pages, and the Contact describe that types its CSV).",
            f"Resumed: the function's Timeout cut to {resumed.timeout} s for the load, {window.timeout} s for the "
            f"REST window (the fetch stops once less than "
            f"{STOP_MARGIN_SECONDS} s is left, so each run works a few seconds and stops at a checkpoint); the next "
            "run resumes the window at its checkpoint: the same job, page (by its `Sforce-Locator`) and offset, or "
            "the REST keyset. Each resumed run pays its describe, a poll of the job and the page it stopped in "
            "again (re-read from its locator, the rows before the offset skipped); once the Account window is done, "
            "each run first reads a new Account window (a REST page) before it resumes the Contacts'.",
            "Each record queued once: the runs' records queued add up to the records of the window, and moto "
            "received as many `SendMessageBatch` entries for the resumed load as for the load in one run. The "
            "REST window is `BulkThreshold` accounts at most (10,000: not above it, so REST pages of 2,000).",
            "Fetch CPU: the invoking thread's CPU time (the handler runs in it; the emulator answers from other "
            "threads, moto from its own process). Killed runs (the runtime's kill at the timeout) are counted in "
            "the outcomes as Sandbox.Timedout.",
        ],
    )
    for drained in (one_run, resumed, window):
        outcomes = Counter(drained.outcomes)
        table.add(
            drained.label,
            drained.timeout,
            drained.runs,
            ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items()),
            drained.kinds["token"],
            drained.kinds["describe"],
            drained.kinds["bulk_job_create"],
            drained.kinds["bulk_job"],
            drained.kinds["bulk_results"],
            drained.kinds["queryAll"] + drained.kinds["query_more"],
            drained.calls,
            drained.records,
            drained.per_10k,
            drained.queued,
            f"{drained.requests.of('SendMessageBatch')} ({drained.requests.entries('SendMessageBatch'):,})",
            drained.checkpoints,
            drained.seconds,
            drained.cpu,
            drained.requests.seconds,
        )
    results.tables.append(table)
    # The target is the load's: judged on the run at the function's own Timeout. A resumed run costs a few calls
    # more each (its describes, a new Account window's page, a poll and the page it stopped in), which the runs
    # of a few seconds here multiply; at the real Timeout a run reads hundreds of thousands of records.
    extra = (resumed.calls - one_run.calls) / max(1, resumed.runs - 1)
    load_met = one_run.completed and one_run.calls <= one_run.records / 10_000
    results.verdicts.append(
        Verdict(
            "1b",
            "an initial load: ≤ 1 Salesforce call per 10,000 records (Bulk API 2.0)",
            load_met,
            f"{one_run.per_10k:.2f} at {one_run.records:,} records ({one_run.calls} calls, bound {bound}); "
            f"resumed over {resumed.runs} runs of a few seconds: {resumed.calls} calls, {extra:.1f} more a run",
        )
    )
    once = all(
        d.completed
        and d.runs >= 2
        and d.killed == 0
        and all(o == "paused_before_timeout" for o in d.outcomes[:-1])
        and d.queued == d.records
        for d in (resumed, window)
    ) and resumed.requests.entries("SendMessageBatch") == one_run.requests.entries("SendMessageBatch")
    results.verdicts.append(
        Verdict(
            "1c",
            "a window stopped by its remaining time resumes in the next run, each record queued once",
            once,
            f"load: {resumed.runs} runs, {resumed.queued:,} of {resumed.records:,} queued, "
            f"{resumed.requests.entries('SendMessageBatch'):,} entries (one run: "
            f"{one_run.requests.entries('SendMessageBatch'):,}); REST window: {window.runs} runs, "
            f"{window.queued:,} of {window.records:,}; killed: {resumed.killed + window.killed}",
        )
    )
