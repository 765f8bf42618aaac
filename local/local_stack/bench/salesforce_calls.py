"""Target 1: Salesforce API calls per sync cycle against their lower bound, beside a naive fetch.

On one sandbox, for each size: `n` Accounts created in the emulator, then the scheduled fetch (the very first one
is a cold start: it gets a token); then the same `n` Accounts updated and the fetch again (warm: the token is
reused); then a naive fetch written here, which lists the changed ids (`/sobjects/Account/updated/`) and reads
each record with one GET. Only the fetch is run (its messages stay queued, nothing drains them): the Salesforce
calls of a cycle are all the fetch's. Calls are counted by the emulator's own request log.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from local_stack.bench.harness import Requests
from local_stack.bench.harness import sandbox as bench_sandbox
from local_stack.bench.report import Results, Table, Verdict
from local_stack.sandbox import CONSUMER_KEY, INTEGRATION_USER, SyncSandbox

PAGE = 2000
BULK_PAGE = 50_000
OBJECTS = ("Account", "Contact")
API_VERSION = "62.0"


def lower_bound(changed: dict[str, int], cold: bool, initial: bool = False, bulk_threshold: int = 10_000) -> int:
    """Per object: one query page per 2000 changed records (an empty window still takes one query); an initial
    load, or a window of more than `bulk_threshold` records, is a Bulk API 2.0 job instead: create it, poll it
    once, read its results in pages of 50,000, describe the object (a larger window also spends the REST page
    that told its size).
    Plus the constant: the Account describe that checks the field list, and a token on a cold start only."""
    calls = 0
    for sobject in OBJECTS:
        n = changed.get(sobject, 0)
        if initial or n > bulk_threshold:
            # the REST page that told the size (not for an initial load), create, one poll, the result pages, and
            # the describe that types the CSV values (the Account's is the field check's, made anyway)
            calls += (0 if initial else 1) + 2 + max(1, math.ceil(n / BULK_PAGE)) + (sobject != "Account")
        else:
            calls += max(1, math.ceil(n / PAGE))
    return calls + 1 + (1 if cold else 0)


def run(results: Results, sizes: list[int], function_log: TextIO, say: Callable[[str], None]) -> None:
    table = Table(
        "Target 1: Salesforce API calls per sync cycle",
        [
            "changed accounts",
            "fetch",
            "token",
            "describe",
            "query pages",
            "Salesforce calls",
            "lower bound",
            "naive fetch calls",
            "GetSecretValue",
            "SendMessageBatch (bound ⌈msgs/10⌉)",
            "fetch seconds",
        ],
        notes=[
            "Counted by the Salesforce emulator (its request log) and the moto server, not by the fetch's own "
            "counters. Lower bound = Σ per object max(1, ⌈changed/2000⌉) query pages + 1 describe (the check of "
            "the configured fields) + 1 token on a cold start. Contacts: none changed (one empty query). The "
            "first cycle is the initial load: a Bulk API 2.0 job per object (create, one poll, ⌈n/50,000⌉ "
            "result pages; the Contact describe that types its CSV values) instead of query pages.",
            "The naive fetch (written in the benchmark only) lists the changed ids with "
            "`/sobjects/{Account,Contact}/updated/` and reads each record with one GET.",
            "LookbackSeconds = 0 here so that a window holds exactly the changes made for it; with the default "
            "300 s overlap, changes of the previous 300 s are read again and count as records of the window.",
            "SendMessageBatch: the fetch sends a checkpoint's messages (≤ 2,000) on its `FetchSendLanes` (8) "
            "lanes at once, each account's in one lane, so a lane's part-filled last batch may add up to 7 calls "
            "a checkpoint to the bound ⌈msgs/10⌉ (Target 1 (d)).",
        ],
    )
    all_at_bound = True
    rows = []
    with bench_sandbox() as sandbox:
        cold = True
        for n in sizes:
            say(f"  {n:,} changed accounts")
            ids = sandbox.salesforce.bulk_create(
                "Account", [{"Name": f"Bench {i:06d}", "Industry": "Energy", "Rating": "Hot"} for i in range(n)]
            )
            for change in ("created", "updated"):
                if change == "updated":
                    for account_id in ids:
                        sandbox.salesforce.update("Account", account_id, {"Industry": "Retail"})
                settle(sandbox.salesforce, "Account", ids[-1])
                fetch = _measure_fetch(sandbox, function_log)
                bound = lower_bound(fetch["queued"], cold, initial=cold)  # the first cycle is the initial load
                all_at_bound &= fetch["calls"] == bound and fetch["queued"]["Account"] == n
                rows.append((n, change, cold, fetch, bound, ids))
                cold = False
        # The naive fetch lists changes with getUpdated, which covers whole minutes up to the last one that ended:
        # the emulator's clock moves past this minute once every fetch is done.
        sandbox.salesforce.clock.advance(61)
        for n, change, cold, fetch, bound, ids in rows:
            naive = _naive_fetch(sandbox, ids, fetch["window"]) if change == "updated" else None
            messages = sum(fetch["queued"].values())
            table.add(
                n,
                f"{change}, {'cold' if cold else 'warm'}",
                fetch["kinds"]["token"],
                fetch["kinds"]["describe"],
                fetch["kinds"]["queryAll"] + fetch["kinds"]["query_more"],
                fetch["calls"],
                bound,
                naive,
                fetch["requests"].of("GetSecretValue"),
                f"{fetch['requests'].of('SendMessageBatch')} ({math.ceil(messages / 10)})",
                fetch["seconds"],
            )
            if naive is not None:
                panel = "changed accounts | Salesforce API calls per cycle"
                results.point(panel, "fetch (warm)", n, fetch["calls"])
                results.point(panel, "lower bound", n, bound)
                results.point(panel, "naive: one call per record", n, naive)
    results.tables.append(table)
    results.verdicts.append(
        Verdict(
            "1",
            "Salesforce calls per cycle = lower bound, token reused when warm",
            all_at_bound,
            "every cycle at its bound" if all_at_bound else "above the bound in some cycle (see the table)",
        )
    )


def _measure_fetch(sandbox: SyncSandbox, function_log: TextIO) -> dict[str, Any]:
    stack = sandbox.local
    log_before = len(sandbox.salesforce.request_log)
    requests_before = Requests.snapshot(stack.server)
    started = time.perf_counter()
    with redirect_stdout(function_log):
        report = stack.run_schedule("FetchChangesFunction")
    seconds = time.perf_counter() - started
    requests = Requests.snapshot(stack.server) - requests_before
    calls = sandbox.salesforce.request_log[log_before:]
    return {
        "kinds": Counter(kind for _, kind in calls),
        "calls": len(calls),
        "queued": dict(report["queued"]),
        "window": report["windows"]["Account"],
        "requests": requests,
        "seconds": seconds,
    }


def _naive_fetch(sandbox: SyncSandbox, ids: list[str], window: list[str]) -> int:
    """One call per changed record: list the ids changed in the window, then GET each record. Returns the calls
    the emulator logged for it (the token included)."""
    from account_sync.adapters.salesforce_auth import JwtBearerAuthenticator, SalesforceCredentials

    emulator = sandbox.salesforce
    session = emulator.session()
    credentials = SalesforceCredentials(CONSUMER_KEY, INTEGRATION_USER, sandbox._private_key)
    log_before = len(emulator.request_log)
    token = JwtBearerAuthenticator(lambda: credentials, emulator.token_url, session).token()
    headers = {"Authorization": f"Bearer {token.access_token}"}
    base = f"{token.instance_url}/services/data/v{API_VERSION}/sobjects"
    start = datetime.fromisoformat(window[0].replace("Z", "+00:00")).replace(second=0, microsecond=0)
    end = emulator.clock.now().astimezone(UTC)
    params = {"start": _iso(start), "end": _iso(end + timedelta(minutes=1))}
    fields = {
        "Account": "Id,SystemModstamp,IsDeleted,Name,Industry,Type,BillingCountry,BillingCity,AnnualRevenue,"
        "NumberOfEmployees,Rating,OwnerId",
        "Contact": "Id,AccountId,FirstName,LastName,Email,SystemModstamp,IsDeleted",
    }
    records = 0
    wanted = set(ids)
    for sobject in OBJECTS:
        listed = session.get(f"{base}/{sobject}/updated/", params=params, headers=headers, timeout=30)
        listed.raise_for_status()
        # getUpdated lists whole minutes: keep the records changed in this window, as a careful naive fetch would
        # (by their SystemModstamp, which it cannot know without reading them: this favours the naive fetch).
        for record_id in (i for i in listed.json()["ids"] if i in wanted):
            got = session.get(
                f"{base}/{sobject}/{record_id}", params={"fields": fields[sobject]}, headers=headers, timeout=30
            )
            got.raise_for_status()
            records += 1
    if records < len(ids):
        raise RuntimeError(f"the naive fetch found {records} of {len(ids)} changed records")
    return len(emulator.request_log) - log_before


def settle(emulator: Any, sobject: str, record_id: str) -> None:
    """Wait until the wall clock has passed the SystemModstamp of the record changed last. The emulator never
    hands out one stamp twice, so a burst of changes is stamped ahead of the wall clock, one millisecond each;
    a fetch now would end its window before them and read them next time."""
    record = emulator.get(sobject, record_id)
    stamp = datetime.strptime(record["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    ahead = (stamp - emulator.clock.now()).total_seconds()
    if ahead > -0.002:
        time.sleep(ahead + 0.002)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
