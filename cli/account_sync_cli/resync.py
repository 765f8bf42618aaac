"""`account-sync resync`: read accounts again from Salesforce and bring the store in step with them, through the
deployed fetch function (`lambda:InvokeFunction` on the stack's `FetchChangesFunctionName` output) or, locally,
the local stack's in-process runtime. The fetch carries the resync out (services/fetch_changes.py): named accounts
at once; a window or everything over as many runs as it takes, each run at most `resync_records_per_run` Accounts,
every scheduled run going on with it. `--drain` keeps invoking until it is done instead of leaving it to the
schedule. What reaches the contacts is the fan-out's: only real differences, with activities of reason "Resync".
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from account_sync_cli.deployment import Deployment

# Runs a `--drain` makes at most: a safety stop, far above what a resync of a few million accounts takes.
MAX_DRAIN_RUNS = 1000
# While a fetch run is in progress (the schedule's, or a chain of paused runs starting the next at once), Lambda
# refuses a synchronous invocation of the fetch (ReservedConcurrentExecutions 1: TooManyRequestsException). A run
# lasts at most its Timeout (240 s): the command waits that long, then says the fetch is busy.
BUSY_WAIT_SECONDS = 10
BUSY_ATTEMPTS = 30


class ResyncFailed(RuntimeError):
    """The fetch function refused the request or failed; the message says why."""


@dataclass
class ResyncSummary:
    request: Any
    runs: int = 0
    queued: int = 0
    done: bool = False
    resync_id: str | None = None
    not_found: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "resync_id": self.resync_id,
            "runs": self.runs,
            "accounts_queued": self.queued,
            "done": self.done,
            "not_found": self.not_found,
            "outcomes": self.outcomes,
        }


def request_for(account_ids: list[str] | None, since: str | None, until: str | None, everything: bool) -> Any:
    """The fetch event's `resync` value; the fetch checks it (ids, timestamps) and answers what is wrong."""
    if account_ids:
        return {"account_ids": account_ids}
    if everything:
        return "all"
    window: dict[str, str] = {"since": since or ""}
    if until:
        window["until"] = until
    return window


def invoke_fetch(
    deployment: Deployment, event: Mapping[str, Any], sleep: Callable[[float], None] = time.sleep
) -> Mapping[str, Any]:
    """One run of the fetch function with `event`; its report. On AWS, a fetch busy with another run is waited
    for (`BUSY_WAIT_SECONDS` at a time, `BUSY_ATTEMPTS` times)."""
    if deployment.local:
        from local_stack.running import RunningStack

        state_dir = deployment.extra.get("state_dir", ".local-stack")
        with contextlib.redirect_stdout(sys.stderr):  # the function's logs (stdout on Lambda): never our output
            result = RunningStack.connect(state_dir).invoke("FetchChangesFunction", dict(event))
        if not result.ok:
            raise ResyncFailed(f"the fetch function failed: {json.dumps(result.error)}")
        return dict(result.payload)
    from botocore.exceptions import ClientError

    client = deployment.client("lambda")
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            answer = client.invoke(
                FunctionName=deployment.ref("FetchChangesFunction"),
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            break
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TooManyRequestsException":
                raise
            if attempt == BUSY_ATTEMPTS:
                raise ResyncFailed("the fetch is busy with another run (an initial load?): try again later") from exc
            sleep(BUSY_WAIT_SECONDS)
    payload = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        raise ResyncFailed(f"the fetch function failed: {json.dumps(payload)}")
    return dict(payload or {})


def resync(
    deployment: Deployment,
    request: Any,
    drain: bool = False,
    progress: Callable[[int], None] | None = None,
    invoke: Callable[[Deployment, Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> ResyncSummary:
    invoke = invoke or invoke_fetch
    summary = ResyncSummary(request=request)
    event: dict[str, Any] = {"resync": request}
    while summary.runs < MAX_DRAIN_RUNS:
        report = invoke(deployment, event)
        summary.runs += 1
        outcome = str(report.get("outcome"))
        summary.outcomes.append(outcome)
        if outcome == "invalid_resync":
            raise ResyncFailed(f"the fetch refused the request: {report.get('reason')}")
        state = report.get("resync")
        if isinstance(state, Mapping):
            summary.resync_id = str(state.get("resync_id")) if state.get("resync_id") else summary.resync_id
            queued = state.get("queued")
            summary.queued += queued if isinstance(queued, int) else 0
            summary.done = bool(state.get("done"))
            summary.not_found = list(state.get("not_found") or summary.not_found)
        if progress is not None:
            progress(summary.queued)
        if outcome == "skipped_another_run_active" and summary.runs == 1 and "resync" in event:
            # The scheduled run holds the lease: the request was not taken. Say so rather than wait.
            raise ResyncFailed("another fetch run is active: the request was not taken; try again in a minute")
        if summary.done or not drain:
            return summary
        event = {}  # the resync in progress is in the sync state: a plain run goes on with it
    return summary


def render(summary: ResyncSummary) -> list[str]:
    what = summary.request if isinstance(summary.request, str) else json.dumps(summary.request)
    lines = [f"resync {what}: {summary.queued} account(s) queued in {summary.runs} run(s), id {summary.resync_id}"]
    if summary.done:
        lines.append("done reading Salesforce; the fan-out applies what differs (account-sync status: queues)")
    else:
        lines.append("in progress: every scheduled fetch run goes on with it (account-sync status), or --drain")
    if summary.not_found:
        lines.append(f"not in Salesforce: {', '.join(summary.not_found)}")
    return lines


def drift(
    deployment: Deployment,
    repair: bool = False,
    invoke: Callable[[Deployment, Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """`account-sync drift [--repair]`: a drift check now (the next sample of accounts), through the fetch function;
    with --repair, the drifted accounts are resynced in the same run."""
    report = (invoke or invoke_fetch)(deployment, {"drift": {"repair": repair}})
    if report.get("outcome") == "skipped_another_run_active":
        raise ResyncFailed("another fetch run is active: no check was made; try again in a minute")
    found = report.get("drift")
    if not isinstance(found, Mapping):
        raise ResyncFailed(f"the fetch made no drift check (outcome {report.get('outcome')})")
    return dict(found)


def render_drift(found: Mapping[str, Any]) -> list[str]:
    drifted = list(found.get("drifted") or [])
    lines = [
        f"drift: {len(drifted)} of {found.get('checked')} account(s) compared differ from Salesforce "
        f"({found.get('contacts_checked')} contact(s) looked at)"
    ]
    lines += [f"  {entry['account_id']}  {entry['problem']}" for entry in drifted]
    if found.get("repaired"):
        lines.append(f"resync queued for {found['repaired']} account(s)")
    elif drifted:
        lines.append("repair them: account-sync drift --repair (or resync --account ID)")
    return lines
