"""Target 1 (b): an initial load read by Bulk API 2.0 query jobs, in one run and resumed over runs, and a REST
window resumed over runs (issue 11, items 1 and 2); Target 1 (d): the fetch's sends, one lane or several, at a
latency per request.

The org: `accounts` Accounts and `contacts` Contacts, the Contacts created account by account (as a data load
creates them, so that one checkpoint's records hold whole accounts), or scattered (each checkpoint's contacts of
as many accounts as there are: one message each). Each scenario starts with the scheduled fetch, invoked through
the local Lambda runtime, and goes on until a run completes: in one run at the function's own Timeout, or with the
Timeout cut to the stop margin plus a few seconds of work, so that every run stops by the Lambda context's
remaining time; a paused run invokes the fetch again at once (the runtime's queue of asynchronous invocations,
run as Lambda would), and only a chain cut short is followed by the schedule again. Nothing drains the queue: the
Salesforce calls and the messages are all the fetch's. Calls are counted by the emulator's request log, messages by
the moto server (`SendMessageBatch` entries); only the records queued, the checkpoints and how each run continued
are the runs' own reports.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from local_stack.bench.harness import Requests, client_latency
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
    scheduled: int = 0  # runs the schedule started; the others were started at once by the run before
    continued: list[str | None] = field(default_factory=list)  # each run's own word on its next run

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

    @property
    def chained(self) -> bool:
        """Every paused run started the next at once, and only the first waited for the schedule."""
        return self.scheduled == 1 and self.continued == ["started"] * (self.runs - 1) + [None]


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


def _load_org(sandbox: Any, accounts: int, contacts: int, scattered: bool = False) -> list[str]:
    """The org's records, then a wait until the wall clock has passed their stamps; the Account ids. Contacts are
    created account by account, or `scattered`: contact i in account i mod accounts."""
    emulator = sandbox.salesforce
    ids = emulator.bulk_create(
        "Account", [{"Name": f"Load {i:07d}", "Industry": "Energy", "Rating": "Hot"} for i in range(accounts)]
    )
    per_account = max(1, contacts // max(1, accounts))
    last = ("Account", ids[-1])
    for first in range(0, contacts, 50_000):  # one transaction per 50,000: the emulator's lock is not held long
        rows = [
            {
                "LastName": f"C{i:08d}",
                "Email": f"c{i}@x.example",
                "AccountId": ids[i % accounts] if scattered else ids[min(i // per_account, accounts - 1)],
            }
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


def _drain(
    sandbox: Any,
    label: str,
    records: int,
    timeout: int | None,
    function_log: TextIO,
    latency_ms: float | None = None,
) -> Drained:
    """Start the scheduled fetch and run what it invokes at once, until a run completes its windows (at most
    MAX_RUNS runs); the schedule again only when no run is queued. `latency_ms`: before every AWS request."""
    stack = sandbox.local
    runtime = stack.runtime
    spec = runtime.spec(FETCH)
    if timeout is not None:
        runtime._specs[spec.logical_id] = replace(spec, timeout=timeout)
    drained = Drained(label, timeout or spec.timeout, records)
    target = stack.schedule(FETCH)
    event = target.event(account=stack.resources.account_id)
    while drained.runs < MAX_RUNS and not drained.completed:
        latency = client_latency(latency_ms / 1000) if latency_ms else nullcontext()
        log_before = len(sandbox.salesforce.request_log)
        before = Requests.snapshot(stack.server)
        cpu, wall = time.thread_time(), time.perf_counter()
        with redirect_stdout(function_log), latency:
            if runtime.pending_event_invocations:
                (result,) = stack.run_event_invocations(limit=1)
            else:
                drained.scheduled += 1
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
        drained.continued.append(report.get("continued"))
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
            "by the schedule / at once",
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
            f"{STOP_MARGIN_SECONDS} s is left, so each run works a few seconds and stops at a checkpoint); the "
            "paused run invokes the fetch again at once (`by the schedule / at once`: the schedule started the "
            "first run only), and the next run resumes the window at its checkpoint: the same job, page (by its "
            "`Sforce-Locator`) and offset, or the REST keyset. Each resumed run pays its describe, a poll of the "
            "job and the page it stopped in again (re-read from its locator, the rows before the offset skipped); "
            "once the Account window is done, each run first reads a new Account window (a REST page) before it "
            "resumes the Contacts'.",
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
            f"{drained.scheduled} / {drained.runs - drained.scheduled}",
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
        and d.chained
        for d in (resumed, window)
    ) and resumed.requests.entries("SendMessageBatch") == one_run.requests.entries("SendMessageBatch")
    results.verdicts.append(
        Verdict(
            "1c",
            "a window stopped by its remaining time resumes in the next run, started at once, each record queued once",
            once,
            f"load: {resumed.runs} runs ({resumed.scheduled} by the schedule, the others at once), "
            f"{resumed.queued:,} of {resumed.records:,} queued, "
            f"{resumed.requests.entries('SendMessageBatch'):,} entries (one run: "
            f"{one_run.requests.entries('SendMessageBatch'):,}); REST window: {window.runs} runs, "
            f"{window.queued:,} of {window.records:,}; killed: {resumed.killed + window.killed}",
        )
    )


@dataclass
class SendRun:
    org: str  # "grouped" or "scattered"
    lanes: int
    drained: Drained


def sends(
    results: Results,
    grouped: tuple[int, int],
    scattered: tuple[int, int],
    lanes: int,
    latency_ms: float,
    function_log: TextIO,
    say: Callable[[str], None],
) -> None:
    """Target 1 (d): the initial load in one run, at `latency_ms` before every AWS request, with one send lane and
    with `lanes`, for an org whose contacts come account by account and one whose contacts are scattered."""
    runs = []
    for org, (accounts, contacts) in (("grouped", grouped), ("scattered", scattered)):
        if not accounts:
            continue
        for count in sorted({1, lanes}):
            say(f"  {org} load of {accounts:,}/{contacts:,}: {count} send lane(s), {latency_ms:g} ms a request")
            with bench_sandbox(FetchSendLanes=count) as sandbox:
                _load_org(sandbox, accounts, contacts, scattered=org == "scattered")
                label = f"initial load, {org}, {count} lane(s)"
                drained = _drain(sandbox, label, accounts + contacts, None, function_log, latency_ms)
            say(f"    {drained.requests.of('SendMessageBatch')} SendMessageBatch, {drained.seconds:.0f} s")
            runs.append(SendRun(org, count, drained))
    _report_sends(results, runs, lanes, latency_ms)


def _report_sends(results: Results, runs: list[SendRun], lanes: int, latency_ms: float) -> None:
    table = Table(
        f"Target 1 (d): the fetch's sends at {latency_ms:g} ms a request, one lane and {lanes}",
        [
            "org",
            "records",
            "send lanes",
            "runs",
            "SendMessageBatch (entries)",
            "checkpoints",
            "sends' round trips one after another (s)",
            "fetch seconds",
            "fetch CPU, its own thread (s)",
        ],
        notes=[
            f"The initial load in one run at the function's Timeout, {latency_ms:g} ms injected before every AWS "
            "request of the process (botocore's `Endpoint._send`, as Target 4 (b)); Salesforce is not delayed. "
            "Grouped: contacts created account by account (a checkpoint's contacts of an account in one message); "
            "scattered: contact i in account i mod accounts (each a message of its own, as an org whose contacts "
            "come in no order in a Bulk job's results).",
            "Round trips one after another: SendMessageBatch x the latency, what one lane waits. With N lanes each "
            "group's messages go in one lane, the lanes at once; a lane's part-filled last batch adds at most N - 1 "
            "calls per checkpoint. The fetch's CPU is its own thread's: with lanes, the requests are built in the "
            "lanes' threads (not counted here), so compare the one-lane rows.",
        ],
    )
    for run in runs:
        drained = run.drained
        batches = drained.requests.of("SendMessageBatch")
        table.add(
            run.org,
            drained.records,
            run.lanes,
            drained.runs,
            f"{batches} ({drained.requests.entries('SendMessageBatch'):,})",
            drained.checkpoints,
            batches * latency_ms / 1000,
            drained.seconds,
            drained.cpu,
        )
    results.tables.append(table)
    details, met = [], True
    for org in dict.fromkeys(run.org for run in runs):
        one = next((r.drained for r in runs if r.org == org and r.lanes == 1), None)
        many = next((r.drained for r in runs if r.org == org and r.lanes == lanes), None)
        if one is None or many is None or one is many:
            continue
        waited = one.requests.of("SendMessageBatch") * latency_ms / 1000
        saved = one.seconds - many.seconds
        complete = all(d.completed and d.queued == d.records for d in (one, many))
        # at least half of what N lanes could save of one lane's waits: (1 - 1/N) of them
        met = met and complete and saved >= 0.5 * waited * (1 - 1 / lanes)
        details.append(
            f"{org}: {one.seconds:.0f} s with 1 lane, {many.seconds:.0f} s with {lanes} ({waited:.0f} s of waits)"
        )
    results.verdicts.append(
        Verdict(
            "1d",
            f"the fetch's sends side by side: {lanes} lanes save at least half of what they could of one lane's waits",
            met if details else None,
            "; ".join(details) or "not run",
        )
    )
