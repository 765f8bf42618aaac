"""Target 6: the fan-out of a large account and an initial load under DynamoDB throttling (issue 11, items 6-7).

Every DynamoDB request of the functions goes through `local_stack.dynamodb_throttling.DynamoThrottle` (token
buckets per table and per partition key, answered as DynamoDB answers them, under the SDK's own retries). What is
measured: the time, the requests DynamoDB refused, the messages the consumers handed back (a short, growing
visibility), whether every contact holds the change, and the dead-letter queues, which must stay empty. The
throttle's rates are the flags' (`--throttle-table-writes`, `--throttle-partition-writes`); moto's own speed is
the ceiling otherwise. The functions' timeouts are lifted as in Targets 2-4 (moto answers in milliseconds of CPU).
The retry visibility keeps its template values (2 s, doubling, at most 120 s): a throttled message waits here as
it would on AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from typing import Any, TextIO

from local_stack.bench.fan_out_costs import _lift_timeouts, _plain
from local_stack.bench.harness import contact_ids, contacts_holding, load_contacts
from local_stack.bench.harness import sandbox as bench_sandbox
from local_stack.bench.report import Results, Table, Verdict
from local_stack.bench.salesforce_calls import settle
from local_stack.dynamodb_throttling import DynamoThrottle

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
    for at most `budget` seconds (an account of 100,000 contacts takes the local backend longer than that: its
    rate over the budget is measured, the queues are then purged so that the next run starts clean)."""
    throttle = DynamoThrottle(partition_writes=partition_writes, table_writes=table_writes)
    runs: list[tuple[Measured, Measured]] = []
    if sizes:
        with bench_sandbox() as sandbox:
            _prepare(sandbox)
            for size in sizes:
                runs.append(_account_change(sandbox, size, throttle, budget, function_log, say))
    accounts, per_account = initial_load
    if accounts:
        pair = []
        for throttled in (False, True):
            say(f"  initial load of {accounts:,} accounts x {per_account} contacts" + ", throttled" * throttled)
            with bench_sandbox() as sandbox:
                _prepare(sandbox)
                pair.append(
                    _initial_load(sandbox, accounts, per_account, throttle if throttled else None, budget, function_log)
                )
        runs.append((pair[0], pair[1]))
    _report(results, runs, table_writes, partition_writes, budget)


def _prepare(sandbox: Any) -> None:
    stack = sandbox.local
    assert stack.runtime is not None and stack.resources is not None
    _lift_timeouts(stack.runtime)
    stack.runtime.add_env({"RETRY_VISIBILITY_BASE_SECONDS": "2"})


def _account_change(
    sandbox: Any, size: int, throttle: DynamoThrottle, budget: float, function_log: TextIO, say: Callable[[str], None]
) -> tuple[Measured, Measured]:
    """Two accounts of `size` contacts (one per run), then one change of each: without, then with the throttle."""
    import boto3

    dynamodb = boto3.client("dynamodb")
    resources = sandbox.local.resources
    contacts_table = resources.table_name("ContactsTable")
    accounts = [
        sandbox.salesforce.create("Account", {"Name": f"{name} {size}", "Industry": "Energy"})
        for name in ("Reference", "Throttled")
    ]
    settle(sandbox.salesforce, "Account", accounts[-1])
    with redirect_stdout(function_log):
        sandbox.run_cycle()
    started = time.monotonic()
    for n, account in enumerate(accounts):
        stored = _stored_account(dynamodb, resources.table_name("AccountsTable"), account)
        ids = contact_ids(f"T{n}{len(str(size))}", size)
        load_contacts(dynamodb, contacts_table, account, stored["fields"], stored["modstamp"], ids)
    say(f"  {size:,} contacts: two accounts loaded into the store in {time.monotonic() - started:.0f} s")
    measured = []
    for account, active in zip(accounts, (None, throttle), strict=True):
        say(f"  {size:,} contacts: one change of the account" + ", throttled" * (active is not None))
        sandbox.salesforce.update("Account", account, {"Industry": "Retail"})
        settle(sandbox.salesforce, "Account", account)
        row = _cycle(sandbox, active, budget, function_log)
        holding = contacts_holding(dynamodb, contacts_table, account, {"Industry": "Retail"})
        label = f"fan-out of one account of {size:,}"
        measured.append(Measured(label, size, active is not None, holding=holding, **row))
    return measured[0], measured[1]


def _initial_load(
    sandbox: Any,
    accounts: int,
    per_account: int,
    throttle: DynamoThrottle | None,
    budget: float,
    function_log: TextIO,
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
    row = _cycle(sandbox, throttle, budget, function_log)
    dynamodb = boto3.client("dynamodb")
    contacts_table = sandbox.local.resources.table_name("ContactsTable")
    synced = _synced(dynamodb, contacts_table, set(ids))
    label = f"initial load of {accounts:,} accounts"
    return Measured(label, accounts * per_account, throttle is not None, holding=synced, **row)


def _cycle(sandbox: Any, throttle: DynamoThrottle | None, budget: float, function_log: TextIO) -> dict[str, Any]:
    """One cycle (the fetch, then the triggers for at most `budget` seconds), with the throttle when given; what
    is left queued after the budget is purged."""
    refused_before = throttle.total_throttled if throttle else 0
    started = time.monotonic()
    with throttle.installed() if throttle else nullcontext(), redirect_stdout(function_log):
        cycle = sandbox.run_cycle(timeout=budget)
    seconds = time.monotonic() - started
    resources = sandbox.local.resources
    sqs = sandbox.local.clients.sqs
    dead_letters = sum(_depth(sqs, resources.queue_url(queue)) for queue in DEAD_LETTER_QUEUES)
    if not cycle.drain.empty:
        for queue in WORK_QUEUES:
            sqs.purge_queue(QueueUrl=resources.queue_url(queue))
    return {
        "seconds": seconds,
        "refused": (throttle.total_throttled - refused_before) if throttle else 0,
        "handed_back": cycle.drain.failed,
        "dead_letters": dead_letters,
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
            f"Each run drains for at most {budget:g} s; a run cut there is incomplete by design: its rate is the "
            "contacts holding the change over its time, its queues are then purged. Slow-down: the rate without "
            "the throttle over the rate with it (the same size, the same sandbox or a fresh one alike).",
            "The table's rate is set below what the local backend serves unthrottled (moto answers a contact write "
            "in milliseconds of CPU, one at a time), so that the throttle binds here as DynamoDB's would on AWS.",
        ],
    )
    slowdowns = []
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
    table.notes.append("Slow-down under the throttle: " + (", ".join(slowdowns) or "none measured") + ".")
    results.tables.append(table)
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
