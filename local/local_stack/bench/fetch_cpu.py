"""The fetch's own CPU per record and per message when it queues an initial load, scattered or grouped.

    PYTHONPATH=local:layers/account_sync:cli:. .venv/bin/python -m local_stack.bench.fetch_cpu \
        [--records 20000] [--repeats 7] [--lanes 8]

The real path from a checkpoint's records to the queue: the fetch's `_Run._queue`/`_send` (`contact_messages`, the
report's bookkeeping) -> `SqsChangePublisher` -> `SqsBatchSender` on `--lanes` lanes -> a boto3 SQS client, the
fetch's own (`wiring.build_change_publisher`: parameter validation off) or, with `--validation on`, boto3's default
(botocore builds, validates if so, signs each `SendMessageBatch` and parses its answer). Only the
HTTP layer is stubbed: a `before-send` handler answers every entry as sent, without moto or a socket, so neither a
server's CPU nor the network is counted; the stub's own part (reading the request's Ids, writing the answer) is.
"Scattered": every contact of a different account, one message each; "grouped": `--per-account` contacts of an
account together, one message. CPU time of this process (`time.process_time`, all threads: the lanes'), not wall
time (the machine is shared). Each case runs `--repeats` times; the median and the spread are printed, and a fit
per record and per message from the two cases.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from account_sync.adapters.sqs import SqsChangePublisher
from account_sync.contracts import SyncPath
from account_sync.services.fetch_changes import FetchConfig, FetchReport, _contacts, _Run
from account_sync.settings import Settings
from account_sync.wiring import build_change_publisher, sqs_client
from botocore.awsrequest import AWSResponse

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/account-changes.fifo"


class _Raw:
    """What botocore reads an answer's body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _answer_all_sent(request: Any, **_: Any) -> AWSResponse:
    entries = json.loads(request.body)["Entries"]
    body = json.dumps(
        {"Successful": [{"Id": e["Id"], "MessageId": e["Id"], "MD5OfMessageBody": "0"} for e in entries]}
    ).encode()
    return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(body))


def stubbed_publisher(lanes: int, validation: bool) -> SqsChangePublisher:
    """The fetch's publisher as `wiring` builds it, or on a client of boto3's defaults, its HTTP layer stubbed."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    settings = Settings(
        stage="bench",
        contacts_table="c",
        accounts_table="a",
        activities_table="act",
        sync_state_table="s",
        synced_account_fields=("Name",),
        account_changes_queue_url=QUEUE_URL,
    )
    publisher = build_change_publisher(settings, sqs_client(lanes) if validation else None, lanes)
    publisher._sender._client.meta.events.register("before-send.sqs.SendMessageBatch", _answer_all_sent)
    return publisher


def contact_records(count: int, per_account: int, offset: int) -> list[dict[str, object]]:
    return [
        {
            "Id": f"003{offset + n:015d}",
            "SystemModstamp": "2026-12-05T03:00:00.000+0000",
            "IsDeleted": False,
            "AccountId": f"001{(offset + n) // per_account:015d}",
            "FirstName": "Ada",
            "LastName": f"Contact {offset + n}",
            "Email": f"contact{offset + n}@example.com",
        }
        for n in range(count)
    ]


def queue_cpu(run: _Run, records: list[dict[str, object]]) -> float:
    before = time.process_time()
    run._queue("contact.bulk", "Contact", records, _contacts(SyncPath.RESYNC))
    return time.process_time() - before


def measure(make_run: Callable[[], _Run], records: int, per_account: int, repeats: int) -> tuple[list[float], int]:
    """CPU seconds of each repeat (fresh records, so no cache helps), and the messages of one."""
    run = make_run()
    queue_cpu(run, contact_records(records, per_account, 10**9))  # warm-up: imports, the client's first call
    times, messages = [], 0
    for repeat in range(repeats):
        batch = contact_records(records, per_account, repeat * records)
        run = make_run()
        times.append(queue_cpu(run, batch))
        messages = run.report.messages["Contact"]
        assert run.report.queued["Contact"] == records, run.report
    return times, messages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000, help="a checkpoint's worth (CHECKPOINT_RECORDS)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--per-account", type=int, default=10, help="contacts of an account, grouped")
    parser.add_argument("--validation", choices=("on", "off"), default="off", help="off: the fetch's")
    args = parser.parse_args(argv)
    publisher = stubbed_publisher(args.lanes, args.validation == "on")

    def make_run() -> _Run:
        report = FetchReport(run_id="bench")
        return _Run(None, publisher, None, FetchConfig(synced_fields=("Name",)), lambda: "", report, None)  # type: ignore[arg-type]

    fit = {}
    for name, per_account in (("scattered", 1), ("grouped", args.per_account)):
        times, messages = measure(make_run, args.records, per_account, args.repeats)
        median = statistics.median(times)
        fit[name] = (median, messages)
        print(
            f"{name}: {args.records:,} records in {messages:,} messages, {args.lanes} lanes, validation "
            f"{args.validation}: CPU median {median * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n={len(times)}): "
            f"{median / args.records * 1e6:.1f} µs a record, {median / messages * 1e6:.1f} µs a message"
        )
    # cpu = records * a + messages * b, the same records in both cases: b from the difference, a from either.
    (scattered, s_messages), (grouped, g_messages) = fit["scattered"], fit["grouped"]
    per_message = (scattered - grouped) / (s_messages - g_messages)
    per_record = (grouped - g_messages * per_message) / args.records
    print(
        f"fit: {per_record * 1e6:.1f} µs a record + {per_message * 1e6:.1f} µs a message "
        f"(load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
