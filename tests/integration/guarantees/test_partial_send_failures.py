"""Guarantee 7: `SendMessageBatch` entries that fail are re-sent alone, and the watermark waits for them.

SQS can accept a batch and fail some of its entries (`Failed`, not the sender's fault). Only those are sent
again, with growing backoff and jitter; the others are not sent twice. Entries still failing after the last
attempt fail the run before the watermark moves: the next run reads the window again.
"""

from __future__ import annotations

import pytest
from account_sync.adapters import sqs as sqs_adapter
from account_sync.adapters.dynamodb import DynamoSyncStateStore
from account_sync.contracts import parse_change_message
from account_sync.ports import QueueSendError

from tests.integration.guarantees.faults import Fault


def fail_entries(ids: set[str], calls: list[list[str]]):
    """SQS takes the other entries of the batch and answers `Failed` (InternalError) for these."""

    def action(operation, params, call):
        calls.append([entry["Id"] for entry in params["Entries"]])
        failing = [e for e in params["Entries"] if e["Id"] in ids]
        passing = [e for e in params["Entries"] if e["Id"] not in ids]
        response = call({**params, "Entries": passing}) if passing else {"Successful": []}
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"} for e in failing
        ]
        return {"Successful": response.get("Successful", []), "Failed": failed}

    return action


def queued_account_ids(pipeline) -> list[str]:
    return [
        parse_change_message(body).version.account_id  # type: ignore[union-attr]
        for body in pipeline.bodies("AccountChangesQueue")
        if '"account_change"' in body
    ]


def test_failed_entries_alone_are_sent_again_with_growing_backoff(salesforce, fetch, pipeline, faults, monkeypatch):
    # given twelve changed accounts, and SQS failing entries 3 and 7 of the first batch, twice
    monkeypatch.setattr(sqs_adapter.random, "uniform", lambda low, high: high)  # each backoff at its bound
    ids = salesforce.bulk_create("Account", [{"Name": f"Account {n}"} for n in range(12)])
    calls: list[list[str]] = []
    partial = faults.add(Fault("sqs", "SendMessageBatch", fail_entries({"3", "7"}, calls), times=3))
    # when the fetch runs
    report = fetch.run()
    # then only the failed entries went again, after growing waits, and every account is queued once
    assert partial.fired == 3
    assert calls == [[str(n) for n in range(10)], ["3", "7"], ["3", "7"]]
    assert fetch.sleeps == [0.1, 0.2, 0.4]
    assert report.outcome == "completed"
    assert sorted(queued_account_ids(pipeline)) == sorted(ids)
    assert DynamoSyncStateStore().load_watermark("Account") == report.window_end


def test_entries_still_failing_after_the_retries_keep_the_watermark_for_the_next_run(
    salesforce, fetch, pipeline, faults, monkeypatch
):
    # given twelve changed accounts, and SQS failing entry 5 of every batch for longer than the five attempts
    monkeypatch.setattr(sqs_adapter.random, "uniform", lambda low, high: 0.0)
    ids = salesforce.bulk_create("Account", [{"Name": f"Account {n}"} for n in range(12)])
    calls: list[list[str]] = []
    faults.add(Fault("sqs", "SendMessageBatch", fail_entries({"5"}, calls), times=5))
    state = DynamoSyncStateStore()
    # when the fetch runs, then it fails naming the entry, before moving the watermark
    with pytest.raises(QueueSendError, match="1 of 10 messages not queued after 5 attempts"):
        fetch.run()
    assert state.load_watermark("Account") is None
    # and when the next run finds SQS well again, every account is queued, once, and the watermark moves
    report = fetch.run()
    assert sorted(queued_account_ids(pipeline)) == sorted(ids)  # FIFO deduplication dropped the re-sent ones
    assert state.load_watermark("Account") == report.window_end
