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
from contextlib import redirect_stdout
from typing import Any, TextIO

from local_stack.bench.fan_out_costs import _lift_timeouts, _plain
from local_stack.bench.harness import contact_ids, load_contacts
from local_stack.bench.harness import sandbox as bench_sandbox
from local_stack.bench.report import Results, Table, Verdict
from local_stack.bench.salesforce_calls import settle
from local_stack.dynamodb_throttling import DynamoThrottle

COLUMNS = [
    "run",
    "contacts",
    "seconds",
    "refused by DynamoDB (throttled requests + unprocessed items)",
    "messages handed back",
    "dead letters",
    "every contact holds the change",
]


def run(
    results: Results,
    sizes: list[int],
    initial_load: tuple[int, int],
    table_writes: float,
    partition_writes: float,
    function_log: TextIO,
    say: Callable[[str], None],
) -> None:
    """`sizes`: accounts whose change is fanned out; `initial_load`: (accounts, contacts each) synced for the first
    time, from Salesforce."""
    table = Table(
        f"Target 6: under DynamoDB throttling ({table_writes:g} writes/s per table, {partition_writes:g} per "
        "partition key)",
        COLUMNS,
        notes=[
            "Throttled by local_stack.dynamodb_throttling under the SDK's retries (standard mode, 4 attempts); what "
            "is left reaches the handlers as `Throttled`, and the message is handed back with ChangeMessageVisibility "
            "(2 x 2^(receive - 1) s, at most 120 s). Dead letters: both dead-letter queues after the run.",
        ],
    )
    all_good = True
    with bench_sandbox(ActivityThreshold=max([*sizes, 1])) as sandbox:
        stack = sandbox.local
        assert stack.runtime is not None and stack.resources is not None
        _lift_timeouts(stack.runtime)
        stack.runtime.add_env({"RETRY_VISIBILITY_BASE_SECONDS": "2"})
        import boto3

        dynamodb = boto3.client("dynamodb")
        contacts_table = stack.resources.table_name("ContactsTable")
        throttle = DynamoThrottle(partition_writes=partition_writes, table_writes=table_writes)
        for size in sizes:
            say(f"  {size:,} contacts: one change of the account, throttled")
            account = sandbox.salesforce.create("Account", {"Name": f"Throttled {size}", "Industry": "Energy"})
            settle(sandbox.salesforce, "Account", account)
            with redirect_stdout(function_log):
                sandbox.run_cycle()
            stored = _stored_account(dynamodb, stack.resources.table_name("AccountsTable"), account)
            load_contacts(
                dynamodb, contacts_table, account, stored["fields"], stored["modstamp"], contact_ids("T", size)
            )
            sandbox.salesforce.update("Account", account, {"Industry": "Retail"})
            settle(sandbox.salesforce, "Account", account)
            row = _throttled_cycle(sandbox, throttle, function_log)
            holding = _holding(dynamodb, contacts_table, account, "Retail")
            all_good &= row["dead_letters"] == 0 and holding == size
            table.add(f"fan-out of one account of {size:,}", size, *_cells(row), holding == size)
        accounts, per_account = initial_load
        if accounts:
            say(f"  initial load of {accounts:,} accounts x {per_account} contacts, throttled")
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
            row = _throttled_cycle(sandbox, throttle, function_log)
            synced = sum(_holding(dynamodb, contacts_table, account_id, "Energy") for account_id in ids)
            expected = accounts * per_account
            all_good &= row["dead_letters"] == 0 and synced == expected
            table.add(f"initial load of {accounts:,} accounts", expected, *_cells(row), synced == expected)
    results.tables.append(table)
    results.verdicts.append(
        Verdict(
            "6",
            "Under throttling: every contact updated, no message in a dead-letter queue",
            all_good,
            "complete, no dead letter" if all_good else "incomplete or dead-lettered (see the table)",
        )
    )


def _throttled_cycle(sandbox: Any, throttle: DynamoThrottle, function_log: TextIO) -> dict[str, Any]:
    refused_before = throttle.total_throttled
    started = time.monotonic()
    with throttle.installed(), redirect_stdout(function_log):
        cycle = sandbox.run_cycle()
    resources = sandbox.local.resources
    sqs = sandbox.local.clients.sqs
    dead_letters = 0
    for queue in ("AccountChangesDeadLetterQueue", "ActivityDeadLetterQueue"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=resources.queue_url(queue), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        dead_letters += int(attributes["ApproximateNumberOfMessages"])
    return {
        "seconds": time.monotonic() - started,
        "refused": throttle.total_throttled - refused_before,
        "handed_back": cycle.drain.failed,
        "dead_letters": dead_letters,
    }


def _cells(row: dict[str, Any]) -> list[Any]:
    return [row["seconds"], row["refused"], row["handed_back"], row["dead_letters"]]


def _stored_account(dynamodb: Any, table: str, account_id: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    item = dynamodb.get_item(TableName=table, Key={"account_id": {"S": account_id}}, ConsistentRead=True)["Item"]
    plain = {name: TypeDeserializer().deserialize(value) for name, value in item.items()}
    fields = {name: _plain(value) for name, value in plain.get("fields", {}).items()}
    return {"fields": fields, "modstamp": plain["system_modstamp"]}


def _holding(dynamodb: Any, table: str, account_id: str, industry: str) -> int:
    """Contacts of the account whose Industry is `industry` (moto's index lags not: every member is counted)."""
    total = 0
    # The contacts index holds keys only (it cannot filter on the account fields): the table is scanned instead.
    paginator = dynamodb.get_paginator("scan")
    for page in paginator.paginate(
        TableName=table,
        FilterExpression="account_id = :account AND account_fields.Industry = :industry",
        ExpressionAttributeValues={":account": {"S": account_id}, ":industry": {"S": industry}},
        Select="COUNT",
    ):
        total += page["Count"]
    return total
