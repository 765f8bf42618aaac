"""Target 6: the fan-out of a large account and an initial load under DynamoDB throttling (issue 11, items 6-7).

Every DynamoDB request of the functions goes through `local_stack.dynamodb_throttling.DynamoThrottle` (token
buckets per table and per partition key, answered as DynamoDB answers them, under the SDK's own retries). What is
measured: the time, the requests DynamoDB refused, the messages the consumers handed back (a short, growing
visibility), whether every contact holds the change, and the dead-letter queues, which must stay empty. The
throttle's rates are the flags' (`--throttle-table-writes`, `--throttle-partition-writes`); moto's own speed is
the ceiling otherwise. The functions' timeouts are lifted as in Targets 2-4 (moto answers in milliseconds of CPU).
The retry visibility keeps its template values (2 s, doubling, at most 120 s): a throttled message waits here as
it would on AWS.

Each run also reports the capacity units the moto server charged for it (`local_stack.dynamodb_capacity`: the
contacts table, its indexes, the other tables), against the lower bound of one write unit per contact that takes
the change, and the peak Python heap of the fan-out's first invocation of an account change (its count and plan,
the one invocation whose reads grow with the account: its key pages). One account per size is loaded and changed
twice, without then with the throttle: moto answers an index query by walking the whole table, so a second account
loaded beside it would double every query's time and the load itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from typing import Any, TextIO

from local_stack.bench.fan_out_costs import MIB, _capacity_cells, _lift_timeouts, _plain
from local_stack.bench.harness import InvocationRecorder, Requests, contact_ids, contacts_holding, load_contacts
from local_stack.bench.harness import sandbox as bench_sandbox
from local_stack.bench.report import Results, Table, Verdict
from local_stack.bench.salesforce_calls import settle
from local_stack.dynamodb_throttling import DynamoThrottle
from local_stack.sqs_poller import DrainResult

COLUMNS = [
    "run",
    "contacts",
    "DynamoDB",
    "seconds",
    "contacts holding the change",
    "contacts a second",
    "refused by DynamoDB (throttled requests + unprocessed items)",
    "messages handed back",
    "dead letters",
    "complete",
]
UNIT_COLUMNS = [
    "run",
    "contacts",
    "DynamoDB",
    "write units, contacts table",
    "write units, its indexes",
    "write units per contact",
    "lower bound per contact",
    "read units, contacts table",
    "read units, its indexes",
    "other tables (read/write units)",
    "peak heap of the plan (MiB)",
]
FAN_OUT = "FanOutFunction"
PROGRESS_EVERY = 60.0  # seconds between progress lines of a drain
DEAD_LETTER_QUEUES = ("AccountChangesDeadLetterQueue", "ActivityDeadLetterQueue")
WORK_QUEUES = ("AccountChangesQueue", "ActivityQueue")


@dataclass
class Measured:
    label: str
    contacts: int
    throttled: bool
    seconds: float
    holding: int
    refused: int
    handed_back: int
    dead_letters: int
    units: Requests  # what the moto server charged during the run (the fetch and every trigger)
    plan_peak_bytes: int | None  # the fan-out's first invocation (an account change: its count and plan)

    @property
    def complete(self) -> bool:
        return self.holding == self.contacts

    @property
    def rate(self) -> float:
        return self.holding / self.seconds if self.seconds else 0.0


def run(
    results: Results,
    sizes: list[int],
    initial_load: tuple[int, int],
    table_writes: float,
    partition_writes: float,
    function_log: TextIO,
    say: Callable[[str], None],
    budget: float = 600.0,
) -> None:
    """`sizes`: accounts whose change is fanned out; `initial_load`: (accounts, contacts each) synced for the first
    time, from Salesforce. Each is run twice, without and with the throttle, for the slow-down; each run drains
    for at most `budget` seconds (a run cut there is reported as such, with its rate over the budget, and its
    queues are purged so that the next run starts clean)."""
    throttle = DynamoThrottle(partition_writes=partition_writes, table_writes=table_writes)
    runs: list[tuple[Measured, Measured]] = []  # the initial load first: the shorter run, measured whatever follows
    accounts, per_account = initial_load
    if accounts:
        pair = []
        for throttled in (False, True):
            say(f"  initial load of {accounts:,} accounts x {per_account} contacts" + ", throttled" * throttled)
            with bench_sandbox() as sandbox:
                _prepare(sandbox)
                pair.append(
                    _initial_load(
                        sandbox, accounts, per_account, throttle if throttled else None, budget, function_log, say
                    )
                )
        runs.append((pair[0], pair[1]))
    for size in sizes:
        with bench_sandbox() as sandbox:
            _prepare(sandbox)
            runs.append(_account_change(sandbox, size, throttle, budget, function_log, say))
    _report(results, runs, table_writes, partition_writes, budget)


def _prepare(sandbox: Any) -> None:
    stack = sandbox.local
    assert stack.runtime is not None and stack.resources is not None
    _lift_timeouts(stack.runtime)
    stack.runtime.add_env({"RETRY_VISIBILITY_BASE_SECONDS": "2"})


def _account_change(
    sandbox: Any, size: int, throttle: DynamoThrottle, budget: float, function_log: TextIO, say: Callable[[str], None]
) -> tuple[Measured, Measured]:
    """One account of `size` contacts, changed twice: without, then with the throttle (each change writes every
    contact: its Industry differs from the one before)."""
    import boto3

    dynamodb = boto3.client("dynamodb")
    resources = sandbox.local.resources
    contacts_table = resources.table_name("ContactsTable")
    account = sandbox.salesforce.create("Account", {"Name": f"Throttled {size}", "Industry": "Energy"})
    settle(sandbox.salesforce, "Account", account)
    with redirect_stdout(function_log):
        sandbox.run_cycle()
    started = time.monotonic()
    stored = _stored_account(dynamodb, resources.table_name("AccountsTable"), account)
    ids = contact_ids(f"T{len(str(size))}", size)
    load_contacts(dynamodb, contacts_table, account, stored["fields"], stored["modstamp"], ids)
    say(f"  {size:,} contacts: the account loaded into the store in {time.monotonic() - started:.0f} s")
    measured = []
    for industry, active in (("Retail", None), ("Media", throttle)):
        say(f"  {size:,} contacts: one change of the account" + ", throttled" * (active is not None))
        sandbox.salesforce.update("Account", account, {"Industry": industry})
        settle(sandbox.salesforce, "Account", account)
        row = _cycle(sandbox, active, budget, function_log, say)
        started = time.monotonic()
        holding = contacts_holding(dynamodb, contacts_table, account, {"Industry": industry})
        say(f"  {size:,} contacts: {holding:,} hold the change (counted in {time.monotonic() - started:.0f} s)")
        label = f"fan-out of one account of {size:,}"
        measured.append(Measured(label, size, active is not None, holding=holding, **row))
        _say_measured(measured[-1], say)
    return measured[0], measured[1]


def _say_measured(row: Measured, say: Callable[[str], None]) -> None:
    """The run's figures as soon as it ends (the tables come at the end of the whole benchmark)."""
    say(
        f"    {row.seconds:.0f} s, {row.holding:,} of {row.contacts:,} hold it, {row.refused:,} refused, "
        f"{row.handed_back:,} handed back, {row.dead_letters} dead letters; write units "
        f"{row.units.units('write', '-contacts'):,.0f} + {row.units.units('write', '/by_account_keys'):,.0f} (index), "
        f"read units {row.units.units('read', '-contacts'):,.0f} + {row.units.units('read', '/by_account_keys'):,.0f}"
        f" (index); plan heap {(row.plan_peak_bytes or 0) / MIB:.2f} MiB"
    )


def _initial_load(
    sandbox: Any,
    accounts: int,
    per_account: int,
    throttle: DynamoThrottle | None,
    budget: float,
    function_log: TextIO,
    say: Callable[[str], None],
) -> Measured:
    import boto3

    ids = sandbox.salesforce.bulk_create(
        "Account", [{"Name": f"Initial {n:06d}", "Industry": "Energy"} for n in range(accounts)]
    )
    created = sandbox.salesforce.bulk_create(
        "Contact",
        [
            {"LastName": f"Person {n}-{k}", "AccountId": account_id}
            for n, account_id in enumerate(ids)
            for k in range(per_account)
        ],
    )
    settle(sandbox.salesforce, "Contact", created[-1])
    row = _cycle(sandbox, throttle, budget, function_log, say)
    dynamodb = boto3.client("dynamodb")
    contacts_table = sandbox.local.resources.table_name("ContactsTable")
    synced = _synced(dynamodb, contacts_table, set(ids))
    label = f"initial load of {accounts:,} accounts"
    measured = Measured(label, accounts * per_account, throttle is not None, holding=synced, **row)
    _say_measured(measured, say)
    return measured


def _cycle(
    sandbox: Any, throttle: DynamoThrottle | None, budget: float, function_log: TextIO, say: Callable[[str], None]
) -> dict[str, Any]:
    """One cycle (the fetch, then the triggers for at most `budget` seconds), with the throttle when given; what
    is left queued after the budget is purged. The capacity units are the moto server's for the whole cycle; the
    fan-out's first invocation alone is traced for memory."""
    stack = sandbox.local
    refused_before = throttle.total_throttled if throttle else 0
    units_before = Requests.snapshot(stack.server)
    started = time.monotonic()
    reported = [started]

    def progress(drained: DrainResult) -> None:
        if time.monotonic() - reported[0] >= PROGRESS_EVERY:
            reported[0] = time.monotonic()
            say(
                f"    {reported[0] - started:.0f} s: {drained.received:,} messages received, "
                f"{drained.failed:,} handed back"
            )

    with (
        InvocationRecorder(stack.runtime, stack.server) as recorder,
        throttle.installed() if throttle else nullcontext(),
        redirect_stdout(function_log),
    ):
        recorder.trace_next_of = FAN_OUT
        cycle = sandbox.run_cycle(progress, timeout=budget)
    seconds = time.monotonic() - started
    units = Requests.snapshot(stack.server) - units_before
    plan = next((i for i in recorder.invocations if i.function == FAN_OUT), None)
    resources = stack.resources
    sqs = stack.clients.sqs
    dead_letters = sum(_depth(sqs, resources.queue_url(queue)) for queue in DEAD_LETTER_QUEUES)
    if not cycle.drain.empty:
        for queue in WORK_QUEUES:
            sqs.purge_queue(QueueUrl=resources.queue_url(queue))
    return {
        "seconds": seconds,
        "refused": (throttle.total_throttled - refused_before) if throttle else 0,
        "handed_back": cycle.drain.failed,
        "dead_letters": dead_letters,
        "units": units,
        "plan_peak_bytes": plan.peak_bytes if plan else None,
    }


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _report(
    results: Results, runs: list[tuple[Measured, Measured]], table_writes: float, partition_writes: float, budget: float
) -> None:
    table = Table(
        f"Target 6: under DynamoDB throttling ({table_writes:g} writes/s per table, {partition_writes:g} per "
        "partition key)",
        COLUMNS,
        notes=[
            "Throttled by local_stack.dynamodb_throttling under the SDK's retries (standard mode, 4 attempts); what "
            "is left reaches the handlers as `Throttled`, and the message is handed back with ChangeMessageVisibility "
            "(2 x 2^(receive - 1) s, at most 120 s). Dead letters: both dead-letter queues after the run (visible "
            "and in flight).",
            f"Each run drains for at most {budget:g} s, chosen so that a run completes: the throttled fan-out of an "
            f"account of N contacts needs at least N / {table_writes:g} s of writes, plus its index queries (moto "
            "walks the table for each). A run cut there is incomplete: its rate is the contacts holding the change "
            "over its time, its queues are then purged. Slow-down: the rate without the throttle over the rate "
            "with it (the same size, the same sandbox or a fresh one alike).",
            f"The table's rate ({table_writes:g} writes/s) is set below what the local backend serves unthrottled "
            "(moto answers a contact write in milliseconds of CPU, one at a time: the unthrottled rows' writes a "
            "second below), so that the throttle binds here as DynamoDB's would on AWS; and above a fifth of it, so "
            "that an account of 100,000 contacts completes in well under an hour.",
        ],
    )
    slowdowns: list[str] = []
    served: list[str] = []
    for reference, throttled in runs:
        for row in (reference, throttled):
            table.add(
                row.label,
                row.contacts,
                "throttled" if row.throttled else "unthrottled",
                row.seconds,
                row.holding,
                row.rate,
                row.refused,
                row.handed_back,
                row.dead_letters,
                row.complete,
            )
        if throttled.rate:
            slowdowns.append(f"{reference.rate / throttled.rate:.2f}x ({throttled.label})")
        writes = reference.units.units("write", "-contacts") + reference.units.units("write", "/by_account_keys")
        if reference.seconds:
            served.append(f"{writes / reference.seconds:.0f} ({reference.label})")
    table.notes.append("Slow-down under the throttle: " + (", ".join(slowdowns) or "none measured") + ".")
    table.notes.append(
        "Write units a second on the contacts table and its index, unthrottled, over the whole run (queries "
        f"included): {', '.join(served) or 'none measured'}; the throttle: {table_writes:g} a second."
    )
    results.tables.append(table)
    results.tables.append(_units_table(runs))
    rows = [row for pair in runs for row in pair]
    throttled_rows = [row for row in rows if row.throttled]
    no_dead_letters = all(row.dead_letters == 0 for row in rows)
    cut = [row for row in throttled_rows if not row.complete]
    results.verdicts += [
        Verdict(
            "6a",
            "Under throttling: no message in a dead-letter queue",
            no_dead_letters if rows else None,
            f"{sum(row.dead_letters for row in rows)} dead letters; "
            f"{sum(row.refused for row in throttled_rows):,} requests refused, "
            f"{sum(row.handed_back for row in throttled_rows):,} messages handed back",
        ),
        Verdict(
            "6b",
            "Under throttling: every contact updated",
            None if cut else all(row.complete for row in throttled_rows) if throttled_rows else None,
            "; ".join(
                f"{row.label}: {row.holding:,} of {row.contacts:,}"
                + (f" in the {budget:g} s budget" if not row.complete else "")
                for row in throttled_rows
            ),
        ),
    ]


def _units_table(runs: list[tuple[Measured, Measured]]) -> Table:
    table = Table(
        "Target 6 (b): DynamoDB capacity units per run, and the plan's memory",
        UNIT_COLUMNS,
        notes=[
            "Charged by the moto server from the items' sizes, as DynamoDB bills on demand (local_stack."
            "dynamodb_capacity), for the whole run: the fetch and every trigger. What the throttle refused never "
            "reached the server (DynamoDB does not charge a throttled request). Write units per contact: the "
            "contacts table and its indexes over the contacts holding the change; lower bound: one write unit per "
            "contact that takes a change (an item under 1 KB).",
            "An initial load writes each contact as a new item that joins its account: its entry on "
            "`by_account_keys` (keys only) is written with it, the one index write the design keeps (docs/scale.md).",
            "Peak heap of the plan: tracemalloc's peak above the heap at its start during the fan-out's first "
            "invocation of the run (an account change: the bounded COUNT and the plan's key pages, read a 1 MB page "
            "at a time); the other invocations are not traced (tracemalloc slows every allocation).",
        ],
    )
    for reference, throttled in runs:
        for row in (reference, throttled):
            cells = _capacity_cells(row.units, _contacts_table(row.units))
            writes = float(cells[2]) + float(cells[3])
            table.add(
                row.label,
                row.contacts,
                "throttled" if row.throttled else "unthrottled",
                cells[2],
                cells[3],
                writes / row.holding if row.holding else None,
                1.0,
                cells[0],
                cells[1],
                cells[4],
                row.plan_peak_bytes / MIB if row.plan_peak_bytes is not None else None,
            )
    return table


def _contacts_table(units: Requests) -> str:
    """The stack's contacts table, as the server named it (its prefix is the stack's)."""
    targets = {target for (_, _, target) in [*units.write_units, *units.read_units]}
    return next((t for t in sorted(targets) if t.endswith("-contacts")), "-contacts")


def _stored_account(dynamodb: Any, table: str, account_id: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    item = dynamodb.get_item(TableName=table, Key={"account_id": {"S": account_id}}, ConsistentRead=True)["Item"]
    plain = {name: TypeDeserializer().deserialize(value) for name, value in item.items()}
    fields = {name: _plain(value) for name, value in plain.get("fields", {}).items()}
    return {"fields": fields, "modstamp": plain["system_modstamp"]}


def _synced(dynamodb: Any, table: str, accounts: set[str]) -> int:
    """Contacts of `accounts` that hold their account's fields (one scan, after the run)."""
    total = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="account_fields.Industry = :industry",
        ExpressionAttributeValues={":industry": {"S": "Energy"}},
        ProjectionExpression="account_id",
    ):
        total += sum(1 for item in page["Items"] if item.get("account_id", {}).get("S") in accounts)
    return total
