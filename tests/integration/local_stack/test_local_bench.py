"""The benchmark's own arithmetic: lower bounds, the request differences it reads from the moto server, and the
estimate it judges timeouts by (its figures are in bench/results.md, never asserted by a test)."""

from __future__ import annotations

import itertools
import os
import time
import tracemalloc
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from local_stack.bench import fetch_loads
from local_stack.bench.fan_out_costs import Settings, estimate_seconds
from local_stack.bench.fetch_loads import Drained
from local_stack.bench.harness import Invocation, Requests, contact_ids
from local_stack.bench.report import Results, Table, Verdict, render_console, render_markdown
from local_stack.bench.salesforce_calls import lower_bound


def test_the_salesforce_bound_is_a_page_per_2000_records_of_each_object_plus_describe_and_a_cold_token():
    assert lower_bound({"Account": 100, "Contact": 0}, cold=True) == 1 + 1 + 1 + 1
    assert lower_bound({"Account": 10_000, "Contact": 0}, cold=False) == 5 + 1 + 1
    assert lower_bound({"Account": 2001, "Contact": 4000}, cold=False) == 2 + 2 + 1


def test_the_salesforce_bound_of_an_initial_load_or_a_large_window_is_a_bulk_job_per_object():
    assert lower_bound({"Account": 100, "Contact": 0}, cold=True, initial=True) == 3 + (3 + 1) + 1 + 1
    assert lower_bound({"Account": 120_000, "Contact": 0}, cold=False) == (1 + 2 + 3) + 1 + 1


def test_request_snapshots_subtract_and_add_per_key():
    key = ("dynamodb", "UpdateItem", "account-sync-local-contacts")
    before = Requests(Counter({key: 3}), Counter(), 1.0, 2, {key: 1.0})
    after = Requests(
        Counter({key: 10, ("sqs", "SendMessageBatch", "q"): 1}),
        Counter({("sqs", "SendMessageBatch", "q"): 7}),
        3.0,
        5,
        {key: 2.5},
    )
    delta = after - before
    assert delta.of("UpdateItem", "-contacts") == 7 and delta.entries("SendMessageBatch") == 7
    assert (delta.total("dynamodb"), delta.total(), delta.connections) == (7, 8, 3)
    assert delta.busy_in("UpdateItem") == 1.5
    assert (delta + delta).of("UpdateItem") == 14


def test_the_estimate_adds_scaled_cpu_sequential_round_trips_and_waves_of_concurrent_writes():
    key = ("dynamodb", "UpdateItem", "x-contacts")
    requests = Requests(Counter({key: 160, ("dynamodb", "Query", "x-contacts/by_account_keys"): 4}))
    invocation = Invocation("FanOutFunction", 1, 5.0, cpu_seconds=1.024, requests=requests, peak_bytes=None, ok=True)
    settings = Settings(sizes=[], overhead_sizes=[], latency_size=0, realistic_latency_ms=10, fan_out_memory_mb=1024)
    # 1.024 s x 1769/1024 of CPU + (4 sequential + 160/16 waves) x 10 ms
    assert abs(estimate_seconds(invocation, settings, concurrency=16) - (1.769 + 0.14)) < 1e-9


def test_contact_ids_sort_as_created_and_look_like_salesforce_ids():
    ids = contact_ids("S5", 12)
    assert ids == sorted(ids) and {len(i) for i in ids} == {18} and all(i.startswith("003") for i in ids)


def test_the_report_shows_each_table_and_verdict():
    results = Results(tables=[Table("T", ["a", "b"], [["1", "2"]], ["a note"])])
    results.verdicts.append(Verdict("1", "claim", False, "why"))
    assert "NOT MET" in render_console(results) and "a note" in render_console(results)
    markdown = render_markdown(results, "# header")
    assert "| a | b |" in markdown and "**not met**" in markdown and "nproc" in markdown


def test_a_run_rewrites_the_sections_of_its_groups_and_keeps_the_others_as_they_were():
    first = Results(arguments="--only 1,7")
    with first.group("target 7"):
        first.verdicts.append(Verdict("7", "push freshness", False, "p50 6 s"))
    with first.group("target 1"):
        first.tables.append(Table("Target 1: calls", ["calls"], [["3"]]))
        first.verdicts.append(Verdict("1", "calls at the bound", True, "3 of 3"))
    second = Results(arguments="--only 7")
    with second.group("target 7"):
        second.verdicts.append(Verdict("7", "push freshness", True, "p50 4 s"))

    markdown = render_markdown(second, "# header", render_markdown(first, "# header"))

    assert "p50 4 s" in markdown and "p50 6 s" not in markdown
    assert "| 3 |" in markdown and "3 of 3" in markdown and "`--only 1,7`" in markdown  # Target 1 as first measured
    assert markdown.index("## Target 1") < markdown.index("## Target 7")  # the groups' own order, not the runs'
    assert markdown.count("<!-- bench: target 7 -->") == 1 and markdown.count("![cost against size]") == 1


def test_capacity_units_subtract_per_target_and_split_into_the_contacts_table_its_indexes_and_the_rest():
    from local_stack.bench.fan_out_costs import _capacity_cells

    contacts, index = "stack-contacts", "stack-contacts/by_account_keys"
    before = Requests(read_units=Counter({("Query", index, index): 1.0}))
    after = Requests(
        read_units=Counter(
            {
                ("Query", index, index): 3.5,
                ("BatchGetItem", contacts, contacts): 500.0,
                ("GetItem", "a", "stack-accounts"): 1,
            }
        ),
        write_units=Counter({("UpdateItem", contacts, contacts): 500.0, ("UpdateItem", "s", "stack-sync-state"): 2}),
    )
    delta = after - before
    assert delta.units("read", index) == 2.5 and delta.units("read", "-contacts") == 500.0
    assert delta.units("read", action="Query") == 2.5 and delta.units("write") == 502.0
    assert _capacity_cells(delta, contacts) == [500.0, 2.5, 500.0, 0.0, "accounts 1/0, sync-state 0/2"]


class _Runtime:
    """A runtime whose invocations each allocate `allocate` bytes and keep them until the call returns."""

    def __init__(self, allocate: int) -> None:
        self.allocate = allocate

    def spec(self, name: str) -> Any:
        return SimpleNamespace(logical_id=name)

    def invoke(self, name: str, event: Any) -> Any:
        held = bytearray(self.allocate)
        return SimpleNamespace(ok=bool(held) or True)


class _Server:
    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid  # None: in the benchmark's process, as `MotoServer()` without a process of its own

    def request_report(self) -> dict[str, Any]:
        return {"connections": 0, "requests": []}


class _BurningRuntime(_Runtime):
    """A runtime whose invocations each spend `seconds` of CPU."""

    def __init__(self, seconds: float) -> None:
        super().__init__(allocate=0)
        self.seconds = seconds

    def invoke(self, name: str, event: Any) -> Any:
        started = time.process_time()
        while time.process_time() - started < self.seconds:
            pass
        return SimpleNamespace(ok=True)


def test_the_recorder_counts_the_servers_cpu_when_it_runs_in_a_process_of_its_own():
    from local_stack.bench.harness import InvocationRecorder

    # given a server whose process is this one (its CPU is then the invocation's), and one in no process of its own
    runtime = _BurningRuntime(seconds=0.3)
    with InvocationRecorder(runtime, _Server(pid=os.getpid())) as recorder:  # type: ignore[arg-type]
        runtime.invoke("FanOutFunction", {"Records": []})
    with InvocationRecorder(runtime, _Server()) as in_process:  # type: ignore[arg-type]
        runtime.invoke("FanOutFunction", {"Records": []})
    # then the server's CPU is measured over the invocation alone, and not at all for a server in this process
    [invocation] = recorder.invocations
    assert invocation.server_cpu_seconds == pytest.approx(invocation.cpu_seconds, abs=0.05)
    assert in_process.invocations[0].server_cpu_seconds is None


def test_the_recorder_traces_the_memory_of_the_next_invocation_of_one_function_only():
    from local_stack.bench.harness import InvocationRecorder

    runtime = _Runtime(allocate=3 * 1024 * 1024)
    with InvocationRecorder(runtime, _Server()) as recorder:  # type: ignore[arg-type]
        recorder.trace_next_of = "FanOutFunction"
        for name in ("FetchChangesFunction", "FanOutFunction", "FanOutFunction"):
            runtime.invoke(name, {"Records": []})
        assert not tracemalloc.is_tracing()  # nothing else of the run pays for it
    peaks = [invocation.peak_bytes for invocation in recorder.invocations]
    assert peaks[0] is None and peaks[2] is None
    assert peaks[1] is not None and 3 * 1024 * 1024 <= peaks[1] < 4 * 1024 * 1024


def test_a_sandbox_drain_stops_within_its_timeout_whatever_its_steps_take():
    """Each step of the drain is given what is left of the timeout, not the whole of it again."""
    from local_stack.sandbox import SyncSandbox
    from local_stack.sqs_poller import DrainResult

    given: list[float] = []

    class Stack:
        def drain(self, max_rounds: int, timeout: float) -> DrainResult:
            given.append(timeout)
            time.sleep(min(timeout, 0.15))  # a step uses what it is given, up to a round's work
            return DrainResult(received=1)

    sandbox = SyncSandbox(stack=Stack())  # type: ignore[arg-type]
    started = time.monotonic()
    drained = sandbox.drain(timeout=0.4)
    assert not drained.empty and time.monotonic() - started < 0.4 + 0.1
    assert len(given) >= 3 and all(later < earlier for earlier, later in itertools.pairwise(given))


def _drained(
    label: str, records: int, outcomes: list[str], calls: int, queued: int, entries: int, scheduled: int = 1
) -> Drained:
    """Runs as the bench records them: the first by the schedule, each paused one starting the next at once
    (`scheduled` > 1: the runs after the first `scheduled` - 1 were the schedule's instead)."""
    continued: list[str | None] = ["started"] * (len(outcomes) - 1) + [None]
    for index in range(1, scheduled):
        continued[-1 - index] = "failed: throttled"
    drained = Drained(label, 34, records, outcomes=outcomes, queued=queued, scheduled=scheduled, continued=continued)
    drained.kinds["bulk_results"] = calls
    drained.requests.items[("sqs", "SendMessageBatch", "q.fifo")] = entries
    drained.requests.count[("sqs", "SendMessageBatch", "q.fifo")] = -(-entries // 10)
    return drained


@pytest.mark.parametrize(
    ("resumed_queued", "resumed_entries", "resumed_outcomes", "met", "scheduled"),
    [
        (110_000, 20_000, ["paused_before_timeout", "completed"], True, 1),
        (110_000, 20_000, ["paused_before_timeout"] * 2 + ["completed"], False, 2),  # one waited for the schedule
        (112_000, 20_000, ["paused_before_timeout", "completed"], False, 1),  # a checkpoint's records queued twice
        (110_000, 20_200, ["paused_before_timeout", "completed"], False, 1),  # messages sent twice
        (110_000, 20_000, ["completed"], False, 1),  # never stopped: nothing was resumed
        (110_000, 20_000, ["Sandbox.Timedout", "completed"], False, 1),  # killed instead of stopping
    ],
)
def test_the_fetch_load_verdicts_hold_only_for_every_record_queued_once_over_resumed_runs(
    resumed_queued, resumed_entries, resumed_outcomes, met, scheduled
):
    one_run = _drained("one run", 110_000, ["completed"], 10, 110_000, 20_000)
    resumed = _drained("resumed", 110_000, resumed_outcomes, 25, resumed_queued, resumed_entries, scheduled)
    window = _drained("window", 10_000, ["paused_before_timeout", "completed"], 7, 10_000, 10_000)
    results = Results()
    fetch_loads._report(results, 10_000, 100_000, one_run, resumed, window)
    verdicts = {verdict.target: verdict.met for verdict in results.verdicts}
    assert verdicts == {"1b": True, "1c": met}
    assert one_run.per_10k == 10 / 11


def test_the_bare_loops_write_leaves_the_item_the_fan_outs_write_leaves(function_env: dict[str, str]) -> None:
    """Target 4 compares our code with the requests it must make: the bare loop's write must carry what the
    fan-out's does (the outbox entries, the revision as read), or the ratio charges the guarantees to our code."""
    import boto3
    from account_sync.adapters.dynamodb import DynamoContactRepository
    from account_sync.adapters.dynamodb_models import ContactItem
    from account_sync.domain.changes import AccountChange
    from account_sync.domain.fields import diff_fields
    from account_sync.domain.records import AccountVersion, SyncPath
    from account_sync.settings import load_settings
    from account_sync.wiring import bind_store
    from local_stack.bench.fan_out_costs import _attribute, bare_contact_write

    bind_store(load_settings())
    client = boto3.client("dynamodb")
    table = ContactItem.Meta.table_name
    held = {"Name": "Acme", "Industry": "Energy", "Rating": "Hot"}
    for contact_id, revision in (("003F1", 4), ("003B1", 4), ("003F2", None), ("003B2", None)):
        ContactItem(
            contact_id,
            account_id="001A",
            account_fields=dict(held),
            account_modstamp="2026-12-05T10:00:00.000Z",
            account_previous_values={},
            revision=revision,
        ).save()
    # when the same version is written by the fan-out's adapter (as read) and by the bare loop
    stamp = "2026-12-05T10:00:01.000Z"
    fields = {"Name": "Acme", "Industry": "Retail", "Rating": "Warm"}
    change = AccountChange.of_version(AccountVersion("001A", stamp, False, fields), path=SyncPath.FETCH)
    contacts = DynamoContactRepository()
    wire = {"M": {name: _attribute(value) for name, value in fields.items()}}
    for fan_out, bare in (("003F1", "003B1"), ("003F2", "003B2")):
        read = contacts.contact(fan_out)
        assert read is not None
        assert contacts.write_change(fan_out, change, diff_fields(read.account_fields, fields, list(fields)), {}, read)
        item = client.get_item(TableName=table, Key={"contact_id": {"S": bare}}, ConsistentRead=True)["Item"]
        client.update_item(**bare_contact_write(table, "001A", bare, item, wire, stamp))
        # then both items hold the same attributes and values, but their keys and when they were written
        written = [
            {
                name: value
                for name, value in client.get_item(TableName=table, Key={"contact_id": {"S": key}})["Item"].items()
                if name not in ("contact_id", "updated_at")
            }
            for key in (fan_out, bare)
        ]
        assert written[0] == written[1]
        assert written[0]["revision"] == {"N": "5" if fan_out == "003F1" else "1"}


@pytest.mark.parametrize(
    ("one_lane_seconds", "lanes_seconds", "queued", "met"),
    [
        (30.0, 12.0, 110_000, True),  # 20 s of waits (2,000 batches at 10 ms), 18 s saved: at least half of 17.5
        (30.0, 22.0, 110_000, False),  # 8 s saved: less than half of what 8 lanes could save
        (30.0, 12.0, 109_990, False),  # faster, but a record was not queued
    ],
)
def test_the_send_lanes_verdict_holds_only_when_the_lanes_save_half_of_one_lanes_waits(
    one_lane_seconds, lanes_seconds, queued, met
):
    one = _drained("1 lane", 110_000, ["completed"], 10, 110_000, 20_000)
    many = _drained("8 lanes", 110_000, ["completed"], 10, queued, 20_000)
    one.seconds, many.seconds = one_lane_seconds, lanes_seconds
    results = Results()
    fetch_loads._report_sends(
        results, [fetch_loads.SendRun("grouped", 1, one), fetch_loads.SendRun("grouped", 8, many)], 8, 10.0
    )
    ((verdict,),) = [[v for v in results.verdicts if v.target == "1d"]]
    assert verdict.met is met
    assert results.tables[0].rows[0][6] == "20.00"  # one lane's waits: 2,000 batches x 10 ms
