"""Targets 2, 3 and 4: what an account change costs in DynamoDB and SQS requests, the fan-out's memory and time
per invocation as the account grows, and its overhead against bare boto3 loops.

One sandbox holds an account per size, synced once (its contacts then put in the store directly, as a finished
sync leaves them: loading 100,000 contacts through the pipeline would take the local backend an hour). Each
measured change is made in the Salesforce emulator and goes through a whole cycle: the scheduled fetch, then the
SQS triggers until the queues are empty. Requests are counted by the moto server, per invocation.

Runs per account size:
* a change of three synced fields, with tracemalloc on (Target 2 counts, Target 3 memory);
* a change of a field that is not synced (`Description`), and a redelivery of the last version (Target 2: no
  contact may be written);
* for the Target 4 sizes: a change of three synced fields with nothing traced (the fan-out's time), and a bare
  boto3 loop issuing the same minimal requests (GetItem, the COUNT query, the account update, the member query
  pages, the contacts' BatchGetItem reads, one conditional UpdateItem per contact from as many threads as the
  fan-out, writing the item the fan-out's write leaves (the changed fields' outbox entries, `revision` added to on
  the condition that it is still the one read), the applied mark), whose reads also give the lower bound of the
  read units;
* at the Target 4 (b) size: the same change with a latency injected before every AWS request, and a sequential
  loop with the same latency.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from local_stack.bench.harness import (
    Invocation,
    InvocationRecorder,
    Requests,
    client_latency,
    contact_ids,
    contacts_holding,
    load_contacts,
    server_cpu_seconds,
)
from local_stack.bench.harness import sandbox as bench_sandbox
from local_stack.bench.report import Results, Table, Verdict
from local_stack.bench.salesforce_calls import settle

CHANGED_FIELDS = ("Industry", "Rating", "Type")
INDUSTRIES = ["Energy", "Retail", "Banking", "Healthcare", "Manufacturing", "Media", "Technology", "Education"]
RATINGS = ["Hot", "Warm", "Cold"]
TYPES = ["Customer - Direct", "Customer - Channel", "Prospect"]
FAN_OUT = "FanOutFunction"
ACTIVITY_LOG = "ActivityLogFunction"
LAMBDA_FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB; CPU time scales with memory below that
MIB = 1024 * 1024


@dataclass
class Settings:
    sizes: list[int]
    overhead_sizes: list[int]  # Target 4 (a)
    latency_size: int  # Target 4 (b)
    latency_ms: float = 5.0
    realistic_latency_ms: float = 10.0
    sequential_sample: int | None = 2000  # contacts the sequential loop writes at the latency size (None: all)
    overhead_rounds: int = 3  # pairs (fan-out, bare loop) measured at the sizes up to `overhead_rounds_up_to`
    overhead_rounds_up_to: int = 2000
    threshold: int = 5000
    segment_size: int | None = None  # None: the template's FanOutSegmentSize
    write_concurrency: int = 16
    fan_out_memory_mb: int = 1024
    fan_out_timeout_s: int = 90


@dataclass
class VersionRun:
    label: str
    size: int
    invocations: list[Invocation]
    seconds: float

    def of(self, function: str) -> list[Invocation]:
        return [i for i in self.invocations if i.function == function]

    def requests(self, function: str | None = None) -> Requests:
        total = Requests()
        for invocation in self.invocations:
            if function in (None, invocation.function):
                total = total + invocation.requests
        return total

    def fan_out_seconds(self) -> float:
        return sum(i.seconds for i in self.of(FAN_OUT))

    def fan_out_cpu(self) -> tuple[float, float | None]:
        """CPU seconds of the fan-out's invocations: this process's (the functions), the moto server's."""
        invocations = self.of(FAN_OUT)
        server = [i.server_cpu_seconds for i in invocations]
        return sum(i.cpu_seconds for i in invocations), (
            None if any(s is None for s in server) else sum(s or 0.0 for s in server)
        )


@dataclass
class LoopRun:
    seconds: float
    requests: Requests
    contacts: int
    scaled_from: int | None = None
    bound_read_units: float = 0.0  # one pass over the account's keys, one consistent read per contact
    cpu_seconds: float | None = None  # this process's (None: scaled from a sample)
    server_cpu_seconds: float | None = None  # the moto server's process's


@dataclass
class SizeResults:
    size: int
    field_change: VersionRun | None = None
    unsynced_change: VersionRun | None = None
    redelivery: VersionRun | None = None
    timed_change: VersionRun | None = None
    bare: LoopRun | None = None
    latency_change: VersionRun | None = None
    sequential: LoopRun | None = None
    complete: bool | None = None
    overhead_ratios: list[float] = field(default_factory=list)  # every pair's, when several were measured
    overhead_cpu_ratios: list[float | None] = field(default_factory=list)  # the same pairs' CPU ratios, in their order
    overhead_loads: list[float] = field(default_factory=list)  # the machine's load average before each pair
    notes: list[str] = field(default_factory=list)


class FanOutBench:
    def __init__(self, settings: Settings, function_log: TextIO, say: Callable[[str], None]) -> None:
        self.settings = settings
        self.function_log = function_log
        self.say = say
        self.accounts: dict[int, str] = {}
        self._versions = itertools.count(1)

    # --- set-up --------------------------------------------------------------------------------------

    def run(self, results: Results) -> list[SizeResults]:
        import boto3

        settings = self.settings
        overrides: dict[str, Any] = {"ActivityThreshold": settings.threshold}
        if settings.segment_size is not None:
            overrides["FanOutSegmentSize"] = settings.segment_size
        measured: list[SizeResults] = []
        with bench_sandbox(**overrides) as sandbox:
            self.sandbox = sandbox
            stack = sandbox.local
            assert stack.runtime is not None and stack.resources is not None
            settings.segment_size = int(stack.resources.parameters["FanOutSegmentSize"])
            # moto answers a DynamoDB request in milliseconds of CPU, one at a time: an invocation takes far longer
            # here than on AWS. Timeouts are judged against an estimate at realistic latency (Target 3), not here.
            _lift_timeouts(stack.runtime)
            self.dynamodb = boto3.client("dynamodb")
            self.sqs = boto3.client("sqs")
            self.contacts_table = stack.resources.table_name("ContactsTable")
            self.accounts_table = stack.resources.table_name("AccountsTable")
            for size in settings.sizes:
                self.accounts[size] = sandbox.salesforce.create(
                    "Account",
                    {"Name": f"Bench {size:,} contacts", "Industry": "Energy", "Rating": "Hot", "Type": TYPES[0]},
                )
            settle(sandbox.salesforce, "Account", self.accounts[settings.sizes[-1]])
            with redirect_stdout(self.function_log):
                sandbox.run_cycle()  # the accounts are synced, the functions warm
            # each account's contacts get a prefix of their own: one by digit count made 1,000 and 5,000 share ids
            for index, (size, account_id) in enumerate(self.accounts.items()):
                started = time.monotonic()
                stored = self._stored_account(account_id)
                load_contacts(
                    self.dynamodb,
                    self.contacts_table,
                    account_id,
                    stored["fields"],
                    stored["system_modstamp"],
                    contact_ids(f"S{index}", size),
                )
                self.say(f"  {size:,} contacts loaded into the store in {time.monotonic() - started:.0f} s")
            with InvocationRecorder(stack.runtime, stack.server) as recorder:
                self.recorder = recorder
                for size in settings.sizes:
                    measured.append(self._measure_size(size))
        _report(results, measured, settings)
        return measured

    def _measure_size(self, size: int) -> SizeResults:
        settings = self.settings
        out = SizeResults(size)
        self.say(f"  {size:,} contacts: a change of {len(CHANGED_FIELDS)} synced fields (memory traced)")
        self.recorder.trace_memory = True
        out.field_change = self.change(size, "synced fields, traced")
        self.recorder.trace_memory = False
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        out.complete = self.contacts_holding_current_values(size) == size
        self.say(f"  {size:,} contacts: a change of an unsynced field, a redelivery")
        out.unsynced_change = self.change(size, "unsynced field", fields={"Description": f"note {uuid.uuid4()}"})
        out.redelivery = self.redeliver(size)
        if size in settings.overhead_sizes:
            # A pair takes seconds at small sizes, where a load spike of the machine moves the ratio by a third:
            # several pairs, one after the other, and the pair of the median ratio is kept.
            rounds = settings.overhead_rounds if size <= settings.overhead_rounds_up_to else 1
            self.say(
                f"  {size:,} contacts: the fan-out's time and a bare boto3 loop" + f" ({rounds} pairs)" * (rounds > 1)
            )
            pairs = []
            for _ in range(rounds):
                out.overhead_loads.append(os.getloadavg()[0])
                timed = self.change(size, "synced fields")
                bare = self.bare_loop(size, threads=settings.write_concurrency)
                pairs.append((timed.fan_out_seconds() / bare.seconds, timed, bare))
                out.overhead_cpu_ratios.append(_cpu_ratio(timed, bare))
            out.overhead_ratios = [ratio for ratio, _, _ in pairs]
            pairs.sort(key=lambda pair: pair[0])
            _, out.timed_change, out.bare = pairs[len(pairs) // 2]
        if size == settings.latency_size:
            latency = settings.latency_ms / 1000
            self.say(f"  {size:,} contacts: {settings.latency_ms:g} ms injected per request, fan-out and sequential")
            out.latency_change = self.change(size, "synced fields, latency", latency=latency)
            out.sequential = self.bare_loop(size, threads=1, latency=latency, sample=settings.sequential_sample)
        return out

    # --- one account change through a whole cycle -------------------------------------------------------

    def change(
        self, size: int, label: str, fields: dict[str, Any] | None = None, latency: float | None = None
    ) -> VersionRun:
        account_id = self.accounts[size]
        emulator = self.sandbox.salesforce
        emulator.update("Account", account_id, fields or self._next_values())
        settle(emulator, "Account", account_id)
        self.recorder.take()
        started = time.perf_counter()
        with client_latency(latency) if latency else nullcontext(), redirect_stdout(self.function_log):
            self.sandbox.run_cycle()
        return VersionRun(label, size, self.recorder.take(), time.perf_counter() - started)

    def redeliver(self, size: int) -> VersionRun:
        """The account's last version queued again, as SQS does after its deduplication window (at least once)."""
        from account_sync.contracts import AccountChangeMessage
        from account_sync.services.fetch_changes import account_version

        record = self.sandbox.salesforce.get("Account", self.accounts[size])
        assert record is not None and self.sandbox.local.resources is not None
        message = AccountChangeMessage(account_version(record, self._synced_fields()))
        self.sqs.send_message(
            QueueUrl=self.sandbox.local.resources.queue_url("AccountChangesQueue"),
            MessageBody=message.to_body(),
            MessageGroupId=message.group_id,
            MessageDeduplicationId=f"redelivered-{uuid.uuid4().hex}",
        )
        self.recorder.take()
        started = time.perf_counter()
        with redirect_stdout(self.function_log):
            self.sandbox.drain()
        return VersionRun("redelivery", size, self.recorder.take(), time.perf_counter() - started)

    def _next_values(self) -> dict[str, str]:
        k = next(self._versions)
        return {"Industry": INDUSTRIES[k % len(INDUSTRIES)], "Rating": RATINGS[k % 3], "Type": TYPES[k % 3]}

    def _synced_fields(self) -> tuple[str, ...]:
        from account_sync.settings import parse_field_list

        assert self.sandbox.local.resources is not None
        value = self.sandbox.local.resources.parameters["SyncedAccountFields"]
        return parse_field_list(value if isinstance(value, str) else ",".join(value))

    def _stored_account(self, account_id: str) -> dict[str, Any]:
        from boto3.dynamodb.types import TypeDeserializer

        item = self.dynamodb.get_item(
            TableName=self.accounts_table, Key={"account_id": {"S": account_id}}, ConsistentRead=True
        )["Item"]
        plain = {name: TypeDeserializer().deserialize(value) for name, value in item.items()}
        plain["fields"] = {name: _plain(value) for name, value in plain.get("fields", {}).items()}
        return plain

    def contacts_holding_current_values(self, size: int) -> int:
        """Contacts of the account whose copy of the changed fields is Salesforce's (read after the cycle)."""
        record = self.sandbox.salesforce.get("Account", self.accounts[size])
        assert record is not None
        values = {name: str(record[name]) for name in CHANGED_FIELDS}
        return contacts_holding(self.dynamodb, self.contacts_table, self.accounts[size], values)

    # --- the baselines --------------------------------------------------------------------------------

    def bare_loop(self, size: int, threads: int, latency: float | None = None, sample: int | None = None) -> LoopRun:
        """The fan-out's DynamoDB requests for one new version of the account, issued with boto3 and nothing
        else: the same reads (the count, and for an account larger than a segment the plan's key pages and a
        range query per segment) and writes (the same item content: outbox entries, `revision` as read), but no
        SQS, no segment messages, no logging, and a diff of raw attribute values only. `sample` writes only that
        many contacts and scales the time of the writes (one after another, they take a time linear in the
        contacts)."""
        import boto3

        account_id = self.accounts[size]
        stored = self._stored_account(account_id)
        stamp = _later(stored["system_modstamp"])
        fields = {**stored["fields"], **self._next_values()}
        client = boto3.client("dynamodb")  # botocore's default pool: 10 connections, as pynamodb's
        map_value = {"M": {name: _attribute(value) for name, value in fields.items()}}
        before = Requests.snapshot(self.sandbox.local.server)
        server_cpu = server_cpu_seconds(self.sandbox.local.server)
        cpu, started = time.process_time(), time.perf_counter()
        with client_latency(latency) if latency else nullcontext():
            key = {"account_id": {"S": account_id}}
            client.get_item(TableName=self.accounts_table, Key=key, ConsistentRead=True)
            limit = max(self.settings.threshold, self.settings.segment_size or 0) + 1
            counted = self._count(client, account_id, limit)
            client.update_item(
                TableName=self.accounts_table,
                Key=key,
                UpdateExpression="SET #fields = :f, system_modstamp = :m",
                ConditionExpression="system_modstamp < :m",
                ExpressionAttributeNames={"#fields": "fields"},
                ExpressionAttributeValues={":f": map_value, ":m": {"S": stamp}},
            )
            # The fan-out's reads: the account's members in one query when it fits in a segment; else its keys
            # (the plan), then one range query per segment; then the contacts themselves, consistently. The
            # lower bound of the reads is one pass over the keys and one consistent read per contact.
            server = self.sandbox.local.server
            segment_size = self.settings.segment_size or counted
            first_pass = Requests.snapshot(server)
            members: list[str] = []
            if counted <= segment_size:
                members = self._range_members(client, account_id, None, None)
                keys_pass = Requests.snapshot(server) - first_pass
            else:
                ranges = self._key_ranges(client, account_id, segment_size)
                keys_pass = Requests.snapshot(server) - first_pass
                for after, through in ranges:
                    members += self._range_members(client, account_id, after, through)
            written = members[:sample] if sample else members

            def write(contact_id: str) -> None:
                client.update_item(
                    **bare_contact_write(
                        self.contacts_table, account_id, contact_id, read.get(contact_id, {}), map_value, stamp
                    )
                )

            writes_started = time.perf_counter()
            reads_started = Requests.snapshot(server)
            read = self._read_contacts(client, written)
            item_reads = Requests.snapshot(server) - reads_started
            if threads > 1:
                with ThreadPoolExecutor(max_workers=threads) as pool:
                    list(pool.map(write, written))
            else:
                for contact_id in written:
                    write(contact_id)
            writes_seconds = time.perf_counter() - writes_started
            client.update_item(
                TableName=self.accounts_table,
                Key=key,
                UpdateExpression="SET applied_modstamp = :m",
                ExpressionAttributeValues={":m": {"S": stamp}},
            )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_after = server_cpu_seconds(self.sandbox.local.server)
        server_cpu = None if server_cpu is None or server_after is None else server_after - server_cpu
        requests = Requests.snapshot(self.sandbox.local.server) - before
        bound = keys_pass.units("read") + item_reads.units("read") * len(members) / max(1, len(written))
        if sample and len(written) < len(members):
            scaled = seconds + writes_seconds * (len(members) / len(written) - 1)  # only the reads and writes scale
            return LoopRun(scaled, requests, len(members), scaled_from=len(written), bound_read_units=bound)
        return LoopRun(
            seconds, requests, len(members), bound_read_units=bound, cpu_seconds=cpu, server_cpu_seconds=server_cpu
        )

    def _read_contacts(self, client: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The contacts' items, 100 keys a BatchGetItem, strongly consistent (as the fan-out reads them), as
        DynamoDB answers them, by contact id."""
        items: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            keys = [{"contact_id": {"S": contact_id}} for contact_id in ids[start : start + 100]]
            pending: dict[str, Any] = {self.contacts_table: {"Keys": keys, "ConsistentRead": True}}
            while pending:
                response = client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self.contacts_table, []):
                    items[item["contact_id"]["S"]] = item
                pending = response.get("UnprocessedKeys") or {}
        return items

    def _count(self, client: Any, account_id: str, limit: int) -> int:
        counted, start = 0, None
        while counted < limit:
            page = client.query(
                TableName=self.contacts_table,
                IndexName="by_account_keys",
                KeyConditionExpression="account_id = :a",
                ExpressionAttributeValues={":a": {"S": account_id}},
                Select="COUNT",
                Limit=limit - counted,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            counted += page["Count"]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return min(counted, limit)

    def _key_ranges(self, client: Any, account_id: str, segment_size: int) -> list[tuple[str | None, str | None]]:
        keys: list[str] = []
        for page in client.get_paginator("query").paginate(
            TableName=self.contacts_table,
            IndexName="by_account_keys",
            KeyConditionExpression="account_id = :a",
            ExpressionAttributeValues={":a": {"S": account_id}},
            ProjectionExpression="contact_id",
        ):
            keys += [item["contact_id"]["S"] for item in page["Items"]]
        throughs = keys[segment_size - 1 :: segment_size]
        if keys and keys[-1] not in throughs[-1:]:
            throughs.append(keys[-1])
        return list(zip([None, *throughs[:-1]], throughs, strict=True))

    def _range_members(self, client: Any, account_id: str, after: str | None, through: str | None) -> list[str]:
        condition, values = "account_id = :a", {":a": {"S": account_id}}
        if after is not None and through is not None:
            condition += " AND contact_id BETWEEN :after AND :through"
            values |= {":after": {"S": after}, ":through": {"S": through}}
        elif through is not None:
            condition += " AND contact_id <= :through"
            values |= {":through": {"S": through}}
        members: list[str] = []
        for page in client.get_paginator("query").paginate(
            TableName=self.contacts_table,
            IndexName="by_account_keys",
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
        ):
            members += [item["contact_id"]["S"] for item in page["Items"] if item["contact_id"]["S"] != after]
        return members


def bare_contact_write(
    table: str, account_id: str, contact_id: str, held: dict[str, Any], fields: dict[str, Any], stamp: str
) -> dict[str, Any]:
    """The bare loop's UpdateItem of one contact (boto3's arguments): the item the fan-out's write leaves, the
    account's `fields` (a wire map) at `stamp` and the outbox entry of each field whose value changes (its change,
    path and value before, from `held`, the item as read), `revision` added to on the condition that it is still
    the one read (docs/data-model.md)."""
    before = held.get("account_fields", {}).get("M", {})
    entry = {"origin": {"S": "account"}, "stamp": {"S": stamp}, "path": {"S": "fetch"}}  # the scheduled fetch's
    outbox = {
        name: {"M": {**entry, "old": before.get(name, {"NULL": True})}}
        for name, value in fields["M"].items()
        if before.get(name) != value
    }
    revision = held.get("revision")
    return {
        "TableName": table,
        "Key": {"contact_id": {"S": contact_id}},
        "UpdateExpression": "SET #f = :f, #m = :m, #p = :p, #s = :s, #d = :d, #u = :u ADD #r :one",
        "ConditionExpression": "#a = :a AND (attribute_not_exists(#m) OR #m < :m) AND "
        + ("#r = :r" if revision else "attribute_not_exists(#r)"),
        "ExpressionAttributeNames": {
            "#f": "account_fields",
            "#m": "account_modstamp",
            "#p": "account_previous_values",
            "#s": "account_fields_source",
            "#d": "account_deleted",
            "#u": "updated_at",
            "#a": "account_id",
            "#r": "revision",
        },
        "ExpressionAttributeValues": {
            ":f": fields,
            ":m": {"S": stamp},
            ":p": {"M": outbox},
            ":s": {"S": "salesforce"},
            ":d": {"BOOL": False},
            ":u": {"S": stamp},
            ":a": {"S": account_id},
            ":one": {"N": "1"},
            **({":r": revision} if revision else {}),
        },
    }


def _lift_timeouts(runtime: Any) -> None:
    """The local runtime reports an invocation longer than its function's Timeout as timed out (and its batch
    comes back). On moto that measures moto; the benchmark judges timeouts on its estimate instead."""
    for logical_id, spec in list(runtime._specs.items()):
        runtime._specs[logical_id] = replace(spec, timeout=3600)


def _later(stamp: str) -> str:
    from account_sync.domain.timestamps import shift

    return shift(stamp, 0.001)


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    return {"S": str(value)}


# --- the tables ----------------------------------------------------------------------------------------


def estimate_seconds(invocation: Invocation, settings: Settings, concurrency: int, cpu_factor: float = 1.0) -> float:
    """An invocation's duration on Lambda at realistic latency: its CPU time scaled to the function's share of a
    vCPU, plus one round trip per request made one after another, plus the contact writes in waves of
    `concurrency` (they run side by side). `cpu_factor` corrects a CPU time measured with tracemalloc on."""
    requests = invocation.requests
    writes = requests.of("UpdateItem", "-contacts")
    sequential = requests.total() - writes
    latency = settings.realistic_latency_ms / 1000
    cpu = invocation.cpu_seconds * cpu_factor * max(1.0, LAMBDA_FULL_VCPU_MB / settings.fan_out_memory_mb)
    return cpu + (sequential + math.ceil(writes / concurrency)) * latency


def _traced_cpu_factor(measured: list[SizeResults]) -> float:
    """Untraced over traced CPU time of the fan-out, at the largest size measured both ways (1.0 if none)."""
    for result in sorted(measured, key=lambda r: -r.size):
        if result.timed_change and result.field_change:
            traced = sum(i.cpu_seconds for i in result.field_change.of(FAN_OUT))
            untraced = sum(i.cpu_seconds for i in result.timed_change.of(FAN_OUT))
            if traced > 0:
                return min(1.0, untraced / traced)
    return 1.0


def _report(results: Results, measured: list[SizeResults], settings: Settings) -> None:
    _report_writes(results, measured, settings)
    _report_capacity(results, measured)
    _report_large_accounts(results, measured, settings)
    _report_overhead(results, measured, settings)


def _report_writes(results: Results, measured: list[SizeResults], settings: Settings) -> None:
    table = Table(
        "Target 2: DynamoDB requests per account change",
        [
            "contacts",
            "change",
            "contact writes",
            "lower bound",
            "account-item writes",
            "COUNT queries",
            "member queries",
            "activities",
            "BatchWriteItem (bound ⌈act/25⌉)",
            "suppression records",
            "SQS sends",
            "all DynamoDB requests",
        ],
        notes=[
            "Counted by the moto server during the fan-out and activity-log invocations of the change (the fetch "
            "of the cycle is left out: 2 GetItem and 4 UpdateItem on the sync state whatever the change).",
            f"Contact writes: conditional UpdateItem on the contacts table. Lower bound: the contacts whose values "
            f"change ({len(CHANGED_FIELDS)} synced fields changed: every contact; an unsynced field or a "
            "redelivered version: none). Account-item writes: the version's conditional writes on its account "
            "item (accept, segment plan and progress, applied mark).",
            f"COUNT queries: the \u201cmore than {settings.threshold:,}?\u201d decision, a Select=COUNT query with "
            f"Limit {max(settings.threshold, settings.segment_size or 0) + 1:,}, paged at 1 MB of index items read "
            "(moto does as DynamoDB): a few pages at most, the same for any account larger than the limit.",
        ],
    )
    all_writes_at_bound = True
    activities_at_bound = True
    count_queries: dict[int, int] = {}
    for result in measured:
        for run, bound in (
            (result.field_change, result.size),
            (result.unsynced_change, 0),
            (result.redelivery, 0),
        ):
            if run is None:
                continue
            fan_out = run.requests(FAN_OUT)
            log = run.requests(ACTIVITY_LOG)
            writes = fan_out.of("UpdateItem", "-contacts")
            activities = log.entries("BatchWriteItem", "-activities")
            batch_writes = log.of("BatchWriteItem", "-activities")
            all_writes_at_bound &= writes == bound
            activities_at_bound &= batch_writes == math.ceil(activities / 25)
            if run is result.field_change:
                count_queries[result.size] = fan_out.of("Query", "by_account_keys#COUNT")
                results.point(
                    "contacts in the account | DynamoDB requests per account change",
                    "contact writes",
                    result.size,
                    writes,
                )
                results.point(
                    "contacts in the account | DynamoDB requests per account change",
                    "lower bound (contacts changed)",
                    result.size,
                    bound,
                )
                results.point(
                    "contacts in the account | DynamoDB requests per account change",
                    "all DynamoDB requests",
                    result.size,
                    fan_out.total("dynamodb") + log.total("dynamodb"),
                )
            table.add(
                result.size,
                run.label.replace(", traced", ""),
                writes,
                bound,
                fan_out.of("UpdateItem", "-accounts") + fan_out.of("PutItem", "-accounts"),
                fan_out.of("Query", "by_account_keys#COUNT"),
                fan_out.of("Query", "by_account_keys"),
                activities,
                f"{batch_writes} ({math.ceil(activities / 25)})",
                fan_out.of("PutItem", "-activities"),
                fan_out.of("SendMessageBatch") + fan_out.of("SendMessage"),
                fan_out.total("dynamodb") + log.total("dynamodb"),
            )
    results.tables.append(table)
    o1 = all(n <= 3 for n in count_queries.values())
    results.verdicts += [
        Verdict(
            "2a",
            "contact writes = contacts whose values change",
            all_writes_at_bound,
            "every change at its bound" if all_writes_at_bound else "above the bound (see the table)",
        ),
        Verdict(
            "2b",
            "activity writes = ⌈activities/25⌉ BatchWriteItem",
            activities_at_bound,
            "at the bound" if activities_at_bound else "above the bound",
        ),
        Verdict(
            "2c",
            "the >threshold decision costs O(1) requests",
            o1,
            ", ".join(
                f"{n} COUNT quer{'y' if n == 1 else 'ies'} at {size:,} contacts" for size, n in count_queries.items()
            ),
        ),
    ]


def phases(run: VersionRun) -> list[tuple[str, Requests]]:
    """A cycle's requests by phase: the fetch, the fan-out's first invocation (the account change: its count and
    plan, and for an account within a segment its contacts too), its later ones (the segments), the activity log."""
    fan_out = run.of(FAN_OUT)
    out = [("fetch", _sum(i.requests for i in run.invocations if i.function not in (FAN_OUT, ACTIVITY_LOG)))]
    out.append(("fan-out: account change", _sum(i.requests for i in fan_out[:1])))
    out.append(("fan-out: segments", _sum(i.requests for i in fan_out[1:])))
    out.append(("activity log", _sum(i.requests for i in run.of(ACTIVITY_LOG))))
    return out


def _sum(requests: Iterable[Requests]) -> Requests:
    total = Requests()
    for one in requests:
        total = total + one
    return total


def _capacity_cells(requests: Requests, contacts_table: str) -> list[Any]:
    """Read and write units on the contacts table, on its indexes, and on each other table (named without the
    stack's prefix)."""
    prefix = contacts_table.removesuffix("contacts")
    indexes, others = [0.0, 0.0], {}
    for kind, counter in enumerate((requests.read_units, requests.write_units)):
        for (_, _, target), units in counter.items():
            if target.startswith(contacts_table + "/"):
                indexes[kind] += units
            elif target != contacts_table:
                others.setdefault(target.removeprefix(prefix), [0.0, 0.0])[kind] += units
    return [
        requests.units("read", contacts_table),
        indexes[0],
        requests.units("write", contacts_table),
        indexes[1],
        ", ".join(f"{name} {r:g}/{w:g}" for name, (r, w) in sorted(others.items())) or "—",
    ]


def _report_capacity(results: Results, measured: list[SizeResults]) -> None:
    contacts_table = next(
        (
            t
            for r in measured
            if r.field_change
            for (_, _, t) in r.field_change.requests().write_units
            if t.endswith("-contacts")
        ),
        "-contacts",
    )
    table = Table(
        "Target 2 (b): DynamoDB capacity units per account change, by phase",
        [
            "contacts",
            "change",
            "phase",
            "read units, contacts table",
            "read units, its indexes",
            "write units, contacts table",
            "write units, its indexes",
            "other tables (read/write units)",
        ],
        notes=[
            "Charged by the moto server per request from the items' sizes, as DynamoDB bills on demand "
            "(`local_stack.dynamodb_capacity`; moto's own ConsumedCapacity is a constant per request): a write "
            "⌈larger image / 1 KB⌉ on the table, at least 1 (a failed condition too), and on an index only when "
            "the write changes its entry; a read ⌈item / 4 KB⌉, a query ⌈items read / 4 KB⌉, halved when "
            "eventually consistent (every query on a global index). Scans are not charged (no function issues one).",
            "Phases: the fetch; the fan-out's first invocation (the account change: its count and plan); its later "
            "invocations (the segments: key queries, BatchGetItem, contact writes); the activity log. The change "
            "of an unsynced field and the redelivery: all phases together.",
        ],
    )
    write_ratios: dict[int, float] = {}
    read_ratios: dict[int, tuple[float, float, str]] = {}
    per_contact_bound: tuple[int, float] | None = None
    for result in sorted(measured, key=lambda r: r.size):
        if result.bare and result.bare.contacts:
            per_contact_bound = (result.size, result.bare.bound_read_units / result.bare.contacts)
    for result in measured:
        run = result.field_change
        if run is None:
            continue
        for phase, requests in phases(run):
            if requests.read_units or requests.write_units:
                table.add(result.size, "synced fields", phase, *_capacity_cells(requests, contacts_table))
        for other in (result.unsynced_change, result.redelivery):
            if other is not None:
                table.add(result.size, other.label, "all", *_capacity_cells(other.requests(), contacts_table))
        fan_out = run.requests(FAN_OUT) + run.requests(ACTIVITY_LOG)
        cells = _capacity_cells(fan_out, contacts_table)
        write_ratios[result.size] = (cells[2] + cells[3]) / max(1, result.size)
        reads = run.requests(FAN_OUT).units("read")
        if result.bare:
            read_ratios[result.size] = (reads, result.bare.bound_read_units, "measured")
        elif per_contact_bound:
            scaled = per_contact_bound[1] * result.size
            read_ratios[result.size] = (reads, scaled, f"scaled from {per_contact_bound[0]:,}")
        results.point(
            "contacts in the account | capacity units per account change",
            "write units (contacts, with indexes)",
            result.size,
            write_ratios[result.size] * result.size,
        )
        results.point(
            "contacts in the account | capacity units per account change",
            "read units (fan-out)",
            result.size,
            reads,
        )
    for size, (reads, bound, how) in sorted(read_ratios.items()):
        table.notes.append(
            f"{size:,} contacts: the fan-out read {reads:g} units; lower bound {bound:g} ({how}: one pass over "
            "the account's keys on `by_account_keys`, eventually consistent, and one strongly consistent read per "
            "contact, charged on the bare loop's requests)"
        )
    results.tables.append(table)
    results.verdicts += [
        Verdict(
            "2d",
            "write units per changed contact (contacts table and its indexes) = 1.0",
            bool(write_ratios) and all(abs(r - 1.0) < 1e-9 for r in write_ratios.values()),
            ", ".join(f"{r:.2f} at {size:,}" for size, r in sorted(write_ratios.items())),
        ),
        Verdict(
            "2e",
            "read units per account change ≤ 1.2 x lower bound",
            (all(reads <= 1.2 * bound for reads, bound, _ in read_ratios.values()) if read_ratios else None),
            ", ".join(
                f"{reads / bound:.2f} at {size:,}" + (" (bound scaled)" if how != "measured" else "")
                for size, (reads, bound, how) in sorted(read_ratios.items())
            )
            or "no bare loop measured",
        ),
    ]


def _report_large_accounts(results: Results, measured: list[SizeResults], settings: Settings) -> None:
    concurrency = _write_concurrency(settings)
    table = Table(
        "Target 3: large accounts, per fan-out invocation",
        [
            "contacts",
            "complete",
            "segments",
            "fan-out invocations",
            "most messages in one",
            "most contact writes in one",
            "peak Python heap, max (MiB)",
            "peak heap per invocation (MiB)",
            "longest on moto (s)",
            "CPU, longest (s)",
            f"estimate at {settings.realistic_latency_ms:g} ms (s)",
            "timeout (s)",
        ],
        notes=[
            "Peak Python heap: tracemalloc's peak during each invocation above the heap at its start (the "
            "invocation's own allocations). Per invocation, in order: the account change (count, plan), then the "
            "batches of segment messages (a FIFO batch holds up to 10 segments of one account).",
            f"Estimate on Lambda: CPU time x {LAMBDA_FULL_VCPU_MB}/{settings.fan_out_memory_mb} (the function's "
            f"{settings.fan_out_memory_mb} MB is {settings.fan_out_memory_mb / LAMBDA_FULL_VCPU_MB:.2f} vCPU) + "
            f"{settings.realistic_latency_ms:g} ms per request made one after another + "
            f"{settings.realistic_latency_ms:g} ms per wave of {concurrency} concurrent contact writes (the writer "
            "threads). CPU from the untraced run of the size; for a size run only with tracemalloc on, its CPU "
            "scaled by untraced/traced CPU at the largest size measured both ways. Longest on moto and CPU: the "
            "untraced run where there is one.",
            "A FIFO batch brings up to 10 messages of one account: up to 10 segments, 10 x FanOutSegmentSize "
            "contact writes, in one invocation.",
            "On moto every request costs milliseconds of CPU in one server process: the local wall time is not what "
            "Lambda would see; the runtime's timeout is lifted for the benchmark and judged on the estimate.",
        ],
    )
    peaks: dict[int, float] = {}
    longest_by_size: dict[int, float] = {}
    cpu_factor = _traced_cpu_factor(measured)
    within = True
    for result in measured:
        run = result.field_change
        if run is None:
            continue
        invocations = run.of(FAN_OUT)
        timed = result.timed_change.of(FAN_OUT) if result.timed_change else invocations
        factor = 1.0 if result.timed_change else cpu_factor
        peak = max((i.peak_bytes or 0) for i in invocations) / MIB
        peaks[result.size] = peak
        estimates = [estimate_seconds(i, settings, concurrency, factor) for i in timed]
        longest_by_size[result.size] = max(estimates)
        longest_estimate = max(estimates)
        within &= longest_estimate < settings.fan_out_timeout_s / 3
        segments = sum(1 for i in invocations for _ in range(i.records)) - 1
        results.point(
            "contacts in the account | seconds or MiB per fan-out invocation",
            "peak Python heap (MiB)",
            result.size,
            peak,
        )
        results.point(
            "contacts in the account | seconds or MiB per fan-out invocation",
            f"longest invocation, estimate at {settings.realistic_latency_ms:g} ms (s)",
            result.size,
            longest_estimate,
        )
        table.add(
            result.size,
            result.complete,
            max(0, segments) if result.size > (settings.segment_size or 0) else 0,
            len(invocations),
            max(i.records for i in invocations),
            max(i.requests.of("UpdateItem", "-contacts") for i in invocations),
            peak,
            " / ".join(f"{(i.peak_bytes or 0) / MIB:.1f}" for i in invocations),
            max(i.seconds for i in timed),
            max(i.cpu_seconds for i in timed),
            longest_estimate,
            settings.fan_out_timeout_s,
        )
    results.tables.append(table)
    large = [size for size in peaks if size >= 10_000]
    if len(large) >= 2:
        flat = max(peaks[s] for s in large) <= 1.25 * min(peaks[s] for s in large)
        detail = ", ".join(f"{peaks[s]:.1f} MiB at {s:,}" for s in sorted(peaks))
        results.verdicts.append(Verdict("3a", "peak memory per invocation flat 10k → 100k", flat, detail))
    else:
        detail = ", ".join(f"{peaks[s]:.1f} MiB at {s:,}" for s in sorted(peaks)) + " (100k: `--large`)"
        results.verdicts.append(Verdict("3a", "peak memory per invocation flat 10k → 100k", None, detail))
    complete = all(r.complete for r in measured if r.complete is not None)
    longest = max(longest_by_size.values(), default=0.0)
    results.verdicts.append(
        Verdict(
            "3b",
            "every contact synced, each invocation well inside its timeout (< 1/3) at realistic latency",
            complete and within,
            f"all contacts hold the new values: {'yes' if complete else 'NO'}; longest estimate "
            f"{longest:.1f} s "
            f"of {settings.fan_out_timeout_s} s",
        ),
    )


def _report_overhead(results: Results, measured: list[SizeResults], settings: Settings) -> None:
    table = Table(
        "Target 4: the fan-out against bare boto3 loops on the same moto server",
        [
            "contacts",
            "run",
            "seconds",
            "ratio",
            "DynamoDB requests",
            "of which Query",
            "SQS requests",
            "moto busy (s)",
            "moto in Query (s)",
            "CPU, functions (s)",
            "CPU, moto (s)",
        ],
        notes=[
            "Fan-out: the sum of its invocations' durations for the version (the account change and its segments; "
            "the fetch, the SQS polling between invocations and the activity log are left out). Bare loop: the "
            "fan-out's DynamoDB requests (the count; for an account larger than a segment, the plan's key pages and "
            "a range query per segment; the contacts' items, 100 keys a BatchGetItem, strongly consistent; the "
            "conditional writes, each leaving the item the fan-out's leaves: the changed fields' outbox entries, "
            "`revision` added to on the condition that it is still the one read) with boto3 from as many threads "
            f"as the fan-out's writers ({settings.write_concurrency}); sequential: one thread. The ratio is what our "
            "code costs above the requests it makes; Target 2 counts the requests.",
            "moto in Query: moto answers a query on an index by sorting the whole table and walking the account's "
            "items (DynamoDB reads only the page): its time grows with the table and the number of queries.",
            f"Latency: {settings.latency_ms:g} ms slept before every AWS request of this process (botocore's "
            "Endpoint._send), as a network round trip would. moto serves requests one at a time: the bare loop "
            "without latency is the local backend's floor.",
            "CPU: the benchmark's process (the fan-out's invocations and their threads, or the loop's) and the moto "
            "server's process (/proc), over the same span as the seconds. The wall time swings with the other work "
            "on the machine's two cores (the same code gave 0.64-2.19 at a load of 9-10); the CPU seconds hardly "
            "move, and say which side the difference is on.",
        ],
    )
    ratios: list[float] = []
    net_ratios: list[float] = []  # without the time moto spent answering Query requests
    cpu_ratios: list[float | None] = []  # CPU of both processes, the fan-out's over the bare loop's
    hidden: float | None = None
    net_hidden: float | None = None
    for result in measured:
        if len(result.overhead_ratios) > 1:
            table.notes.append(
                f"{result.size:,} contacts: {len(result.overhead_ratios)} pairs measured one after the other, ratios "
                + ", ".join(f"{r:.2f}" for r in result.overhead_ratios)
                + " (CPU, functions + moto: "
                + ", ".join(_ratio(r) for r in result.overhead_cpu_ratios)
                + "; load average before each: "
                + ", ".join(f"{load:.1f}" for load in result.overhead_loads)
                + "): the pair of the median is shown."
            )
        if result.timed_change and result.bare:
            fan_out = result.timed_change.fan_out_seconds()
            ratio = fan_out / result.bare.seconds
            ratios.append(ratio)
            requests = result.timed_change.requests(FAN_OUT)
            bare_net = result.bare.seconds - result.bare.requests.busy_in("Query")
            net_ratios.append((fan_out - requests.busy_in("Query")) / bare_net)
            cpu_ratios.append(_cpu_ratio(result.timed_change, result.bare))
            table.add(
                result.size,
                "fan-out",
                fan_out,
                ratio,
                requests.total("dynamodb"),
                requests.of("Query"),
                requests.total("sqs"),
                requests.seconds,
                requests.busy_in("Query"),
                *result.timed_change.fan_out_cpu(),
            )
            table.add(
                result.size,
                "bare loop",
                result.bare.seconds,
                1.0,
                result.bare.requests.total("dynamodb"),
                result.bare.requests.of("Query"),
                0,
                result.bare.requests.seconds,
                result.bare.requests.busy_in("Query"),
                result.bare.cpu_seconds,
                result.bare.server_cpu_seconds,
            )
            results.point("contacts in the account | seconds on the local stack", "fan-out", result.size, fan_out)
            results.point(
                "contacts in the account | seconds on the local stack",
                "bare boto3 loop",
                result.size,
                result.bare.seconds,
            )
        if result.latency_change and result.sequential and result.bare:
            with_latency = result.latency_change.fan_out_seconds()
            hidden = with_latency / result.bare.seconds
            requests = result.latency_change.requests(FAN_OUT)
            net_hidden = (with_latency - requests.busy_in("Query")) / (
                result.bare.seconds - result.bare.requests.busy_in("Query")
            )
            table.add(
                result.size,
                f"fan-out, +{settings.latency_ms:g} ms",
                with_latency,
                hidden,
                requests.total("dynamodb"),
                requests.of("Query"),
                requests.total("sqs"),
                requests.seconds,
                requests.busy_in("Query"),
                *result.latency_change.fan_out_cpu(),
            )
            scaled = (
                f" (x{result.sequential.contacts / result.sequential.scaled_from:.0f} of "
                f"{result.sequential.scaled_from:,} measured)"
                if result.sequential.scaled_from
                else ""
            )
            table.add(
                result.size,
                f"sequential, +{settings.latency_ms:g} ms{scaled}",
                result.sequential.seconds,
                result.sequential.seconds / result.bare.seconds,
                result.sequential.requests.total("dynamodb"),
                result.sequential.requests.of("Query"),
                0,
                result.sequential.requests.seconds,
                result.sequential.requests.busy_in("Query"),
                None if result.sequential.scaled_from else result.sequential.cpu_seconds,
                None if result.sequential.scaled_from else result.sequential.server_cpu_seconds,
            )
    results.tables.append(table)
    if ratios:
        worst = max(ratios)
        results.verdicts.append(
            Verdict(
                "4a",
                "fan-out wall time ≤ 1.2 x bare boto3 loop",
                worst <= 1.2,
                ", ".join(f"{r:.2f}" for r in ratios)
                + " (by size, ascending); without moto's time in Query requests: "
                + ", ".join(f"{r:.2f}" for r in net_ratios)
                + "; CPU of both processes: "
                + ", ".join(_ratio(r) for r in cpu_ratios),
            )
        )
    else:
        results.verdicts.append(Verdict("4a", "fan-out wall time ≤ 1.2 x bare boto3 loop", None, "not run"))
    if hidden is not None:
        results.verdicts.append(
            Verdict(
                "4b",
                f"with {settings.latency_ms:g} ms per request, the fan-out stays near the local floor",
                hidden <= 1.2,
                f"{hidden:.2f} x the bare loop without latency ({net_hidden:.2f} without moto's time in Query "
                "requests)",
            )
        )


def _cpu_ratio(fan_out: VersionRun, bare: LoopRun) -> float | None:
    """The fan-out's CPU seconds (this process's and the moto server's) over the bare loop's: the work both sides
    made the two processes do, which other work on the machine hardly changes (their wall time shares its cores)."""
    functions, server = fan_out.fan_out_cpu()
    if server is None or bare.cpu_seconds is None or bare.server_cpu_seconds is None:
        return None
    return (functions + server) / (bare.cpu_seconds + bare.server_cpu_seconds)


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _write_concurrency(settings: Settings) -> int:
    """How many contact writes run at once: the fan-out's writer threads (botocore never makes a thread wait for
    a connection: past its pool's size it opens a new one, used once)."""
    return settings.write_concurrency


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))
