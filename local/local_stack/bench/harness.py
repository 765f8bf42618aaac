"""What every benchmark needs: requests counted at the endpoints, invocations recorded, latency injected, and an
account's contacts loaded straight into the store.

Requests are counted by the servers that answer them, never by the code under test: the moto server's
`RequestCounter` (per service, action and resource) and the Salesforce emulator's `request_log`.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_stack.moto_server import MotoServer

_TICKS = os.sysconf("SC_CLK_TCK")

RequestKey = tuple[str, str, str]  # (service, action, resource)
UnitKey = tuple[str, str, str]  # (action, resource, target): the target a table or `table/index`


@dataclass
class Requests:
    """Requests counted by the moto server between two snapshots (`count` per key, and batch entries)."""

    count: Counter[RequestKey] = field(default_factory=Counter)
    items: Counter[RequestKey] = field(default_factory=Counter)
    seconds: float = 0.0  # time the server spent answering them
    connections: int = 0  # TCP connections they came on
    busy: dict[RequestKey, float] = field(default_factory=dict)  # server time per key
    read_units: Counter[UnitKey] = field(default_factory=Counter)  # DynamoDB capacity units (dynamodb_capacity)
    write_units: Counter[UnitKey] = field(default_factory=Counter)

    @classmethod
    def snapshot(cls, server: MotoServer) -> Requests:
        report = server.request_report()
        snap = cls(connections=int(report["connections"]))
        for row in report["requests"]:
            key = (row["service"], row["action"], row["resource"])
            snap.count[key] = row["count"]
            snap.items[key] = row["items"]
            snap.seconds += row["seconds"]
            snap.busy[key] = row["seconds"]
            for target, (read, write) in row.get("units", {}).items():
                snap.read_units[(row["action"], row["resource"], target)] += read
                snap.write_units[(row["action"], row["resource"], target)] += write
        return snap

    def __sub__(self, earlier: Requests) -> Requests:
        return Requests(
            self.count - earlier.count,
            self.items - earlier.items,
            self.seconds - earlier.seconds,
            self.connections - earlier.connections,
            {key: t - earlier.busy.get(key, 0.0) for key, t in self.busy.items()},
            self.read_units - earlier.read_units,
            self.write_units - earlier.write_units,
        )

    def __add__(self, other: Requests) -> Requests:
        return Requests(
            self.count + other.count,
            self.items + other.items,
            self.seconds + other.seconds,
            self.connections + other.connections,
            {key: self.busy.get(key, 0.0) + other.busy.get(key, 0.0) for key in {*self.busy, *other.busy}},
            self.read_units + other.read_units,
            self.write_units + other.write_units,
        )

    def total(self, service: str | None = None) -> int:
        return sum(n for (s, _, _), n in self.count.items() if service in (None, s))

    def of(self, action: str, resource: str | None = None, service: str | None = None) -> int:
        """Requests of one action, on one resource (a name, or its suffix such as `-contacts`) or any."""
        return sum(
            n
            for (s, a, r), n in self.count.items()
            if a == action and service in (None, s) and (resource is None or r == resource or r.endswith(resource))
        )

    def busy_in(self, action: str) -> float:
        """Seconds the server spent on one action (summed over concurrent requests)."""
        return sum(t for (_, a, _), t in self.busy.items() if a == action)

    def units(self, kind: str, target: str | None = None, action: str | None = None) -> float:
        """Capacity units (`kind` "read" or "write") on one target (a table or `table/index`, or its suffix such
        as `-contacts` or `/by_account_keys`) or all, of one action or all."""
        counter = self.read_units if kind == "read" else self.write_units
        return sum(
            n
            for (a, _, t), n in counter.items()
            if action in (None, a) and (target is None or t == target or t.endswith(target))
        )

    def entries(self, action: str, resource: str | None = None) -> int:
        return sum(
            n
            for (_, a, r), n in self.items.items()
            if a == action and (resource is None or r == resource or r.endswith(resource))
        )


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (`/proc/<pid>/stat`, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def server_cpu_seconds(server: MotoServer) -> float | None:
    """The moto server's CPU seconds so far; None when it runs in this process (its CPU is this process's)."""
    return process_cpu_seconds(server.pid) if server.pid is not None else None


@dataclass
class Invocation:
    """One function invocation on the local stack, as the benchmark saw it. `cpu_seconds`: this process's (the
    function, its threads); `server_cpu_seconds`: the moto server's process's meanwhile (None: not measured)."""

    function: str
    records: int
    seconds: float
    cpu_seconds: float
    requests: Requests
    peak_bytes: int | None
    ok: bool
    server_cpu_seconds: float | None = None


class InvocationRecorder:
    """Wraps the local stack's `LambdaRuntime.invoke`: for each invocation its wall and CPU time, the requests the
    moto server answered meanwhile (the triggers run one invocation at a time), and, while `trace_memory` is on,
    the peak of the Python heap above where it stood when the invocation began (tracemalloc). `trace_next_of`
    names a function whose next invocation alone is traced: tracemalloc slows every allocation of the process,
    so a timed run traces only the invocation it wants the memory of (the fan-out's plan)."""

    def __init__(self, runtime: Any, server: MotoServer) -> None:
        self._runtime = runtime
        self._server = server
        self._original = runtime.invoke
        self.invocations: list[Invocation] = []
        self.trace_memory = False
        self.trace_next_of: str | None = None

    def __enter__(self) -> InvocationRecorder:
        self._runtime.invoke = self._invoke
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._runtime.invoke = self._original
        if tracemalloc.is_tracing():
            tracemalloc.stop()

    def take(self) -> list[Invocation]:
        taken, self.invocations = self.invocations, []
        return taken

    def _invoke(self, name: str, event: Any) -> Any:
        function = self._runtime.spec(name).logical_id
        tracing = self.trace_memory or function == self.trace_next_of
        if tracing and function == self.trace_next_of:
            self.trace_next_of = None
        if tracing and not tracemalloc.is_tracing():
            tracemalloc.start()
        elif not tracing and tracemalloc.is_tracing():
            tracemalloc.stop()  # it slows every allocation of the process (the timed runs, the bare loops)
        before = Requests.snapshot(self._server)
        base = 0
        if tracing:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        server_cpu = server_cpu_seconds(self._server)
        cpu, wall = time.process_time(), time.perf_counter()
        result = self._original(name, event)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_after = server_cpu_seconds(self._server)
        peak = tracemalloc.get_traced_memory()[1] - base if tracing else None
        if tracing and not self.trace_memory:
            tracemalloc.stop()
        self.invocations.append(
            Invocation(
                function=function,
                records=len(event.get("Records", [])) if isinstance(event, dict) else 0,
                seconds=wall,
                cpu_seconds=cpu,
                requests=Requests.snapshot(self._server) - before,
                peak_bytes=peak,
                ok=result.ok,
                server_cpu_seconds=None if server_cpu is None or server_after is None else server_after - server_cpu,
            )
        )
        return result


@contextmanager
def client_latency(seconds: float) -> Iterator[None]:
    """Every AWS request of this process waits `seconds` before it is sent, as a network round trip would: the
    simulated latency of Target 4 (b). botocore's `Endpoint._send` is the one place every client's requests go
    through, whenever the client was created."""
    from botocore.endpoint import Endpoint

    original = Endpoint._send

    def delayed(self: Any, request: Any) -> Any:
        time.sleep(seconds)
        return original(self, request)

    Endpoint._send = delayed  # type: ignore[method-assign]
    try:
        yield
    finally:
        Endpoint._send = original  # type: ignore[method-assign]


def contact_ids(prefix: str, count: int) -> list[str]:
    """Salesforce-shaped Contact ids (18 characters), in the order the `by_account` index sorts them."""
    return [f"003{prefix:0<5.5}{n:010d}" for n in range(count)]


def load_contacts(
    dynamodb: Any,
    table: str,
    account_id: str,
    fields: Mapping[str, Any],
    account_modstamp: str,
    ids: Sequence[str],
    threads: int = 4,
) -> None:
    """Put contacts of `account_id` in the store as a finished sync leaves them (BatchWriteItem, 25 a request):
    the benchmark's setup, not a measured step."""
    from account_sync.adapters.dynamodb_models import ContactItem

    stamp = "2026-01-01T00:00:00.000Z"
    batches = [ids[start : start + 25] for start in range(0, len(ids), 25)]

    def put(batch: Sequence[str]) -> None:
        requests = [
            {
                "PutRequest": {
                    "Item": ContactItem(
                        contact_id,
                        account_id=account_id,
                        first_name="Ada",
                        last_name=f"Contact {contact_id[-6:]}",
                        email=f"{contact_id.lower()}@example.com",
                        contact_modstamp=stamp,
                        account_fields=dict(fields),
                        account_modstamp=account_modstamp,
                        account_fields_source="salesforce",
                        account_deleted=False,
                        is_deleted=False,
                        updated_at=stamp,
                    ).serialize()
                }
            }
            for contact_id in batch
        ]
        pending = {table: requests}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, batches))


def contacts_holding(dynamodb: Any, table: str, account_id: str, values: Mapping[str, str]) -> int:
    """Contacts of the account whose copy of the account fields holds `values`. The account index holds keys only
    (a filter on the account fields would see none of them): the table is scanned, after the measured run."""
    names = {f"#f{n}": name for n, name in enumerate(values)}
    condition = " AND ".join(["account_id = :account", *(f"account_fields.#f{n} = :v{n}" for n in range(len(values)))])
    total = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={
            ":account": {"S": account_id},
            **{f":v{n}": {"S": value} for n, value in enumerate(values.values())},
        },
        Select="COUNT",
    ):
        total += page["Count"]
    return total


def sandbox(**parameter_overrides: Any) -> Any:
    """A `SyncSandbox` (not started) with the benchmark's parameters. Powertools' parameter cache lives in the
    shared layer, which every sandbox of this process shares: a secret cached for an earlier sandbox (another
    key pair) must not be reused."""
    from aws_lambda_powertools.utilities import parameters

    from local_stack.sandbox import SyncSandbox

    parameters.clear_caches()
    return SyncSandbox(parameter_overrides={"LogLevel": "ERROR", "LookbackSeconds": 0, **parameter_overrides})


class Stopwatch:
    """Elapsed seconds since it was made, for progress lines."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.monotonic() - self.started
