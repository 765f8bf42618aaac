"""The queue consumers' batch handling: each record alone, a partial batch response, FIFO groups kept in order."""

from __future__ import annotations

import pytest
from account_sync import queue_records
from account_sync.contracts import MalformedMessage
from account_sync.ports import TransientError
from account_sync.queue_records import QueueRecord, failures_reported, partial_batch_response


def sqs_event(*records: tuple[str, str | None]) -> dict:
    return {
        "Records": [
            {
                "messageId": message_id,
                "body": f"body of {message_id}",
                "attributes": {"MessageGroupId": group} if group else {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
            }
            for message_id, group in records
        ]
    }


class Handler:
    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.handled: list[str] = []

    def __call__(self, record: QueueRecord) -> None:
        self.handled.append(record.message_id)
        if record.message_id in self.failing:
            raise RuntimeError(f"{record.message_id} failed")


def failed(response: dict) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_a_batch_without_failure_answers_an_empty_list():
    handler = Handler(failing=set())
    response = partial_batch_response(sqs_event(("m1", None), ("m2", None)), handler, fifo=False)
    assert response == {"batchItemFailures": []}
    assert handler.handled == ["m1", "m2"]


def test_a_standard_queue_fails_only_the_records_that_failed_and_handles_the_rest():
    handler = Handler(failing={"m2"})
    response = partial_batch_response(sqs_event(("m1", None), ("m2", None), ("m3", None)), handler, fifo=False)
    assert failed(response) == ["m2"]
    assert handler.handled == ["m1", "m2", "m3"]


def test_a_fifo_failure_fails_the_rest_of_its_group_unattempted_and_other_groups_go_on():
    handler = Handler(failing={"a2"})
    event = sqs_event(("a1", "A"), ("b1", "B"), ("a2", "A"), ("b2", "B"), ("a3", "A"), ("a4", "A"))
    response = partial_batch_response(event, handler, fifo=True)
    assert failed(response) == ["a2", "a3", "a4"]
    assert handler.handled == ["a1", "b1", "a2", "b2"]


def test_a_batch_whose_every_record_fails_is_still_a_partial_response():
    handler = Handler(failing={"m1", "m2"})
    response = partial_batch_response(sqs_event(("m1", None), ("m2", None)), handler, fifo=False)
    assert failed(response) == ["m1", "m2"]


def test_the_record_carries_its_id_body_and_group():
    seen: list[QueueRecord] = []
    partial_batch_response(sqs_event(("m1", "001A")), seen.append, fifo=True)
    assert seen == [QueueRecord(message_id="m1", body="body of m1", message_group_id="001A")]


@pytest.mark.parametrize("event", [{}, {"Records": [{"body": "no message id"}]}])
def test_an_event_that_is_not_from_sqs_fails_the_invocation(event):
    with pytest.raises(KeyError):
        partial_batch_response(event, Handler(failing=set()), fifo=False)


class RecordingLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def error(self, message: str, **fields: object) -> None:
        self.lines.append(("error", message, fields))

    def warning(self, message: str, **fields: object) -> None:
        self.lines.append(("warning", message, fields))

    def exception(self, message: str, **fields: object) -> None:
        self.lines.append(("exception", message, fields))


def test_a_failure_is_reported_with_its_reason_never_its_body_and_raised_again(monkeypatch):
    logger = RecordingLogger()
    monkeypatch.setattr(queue_records, "logger", logger)
    record = QueueRecord(message_id="m1", body='{"secret": "never logged"}')
    with pytest.raises(MalformedMessage), failures_reported(record, "change message", "change not applied"):
        raise MalformedMessage("missing field 'type'")
    assert logger.lines == [
        ("error", "malformed change message", {"message_id": "m1", "reason": "missing field 'type'"})
    ]


def test_a_transient_failure_says_the_record_comes_back(monkeypatch):
    logger = RecordingLogger()
    monkeypatch.setattr(queue_records, "logger", logger)
    with pytest.raises(TransientError), failures_reported(QueueRecord("m1", "{}"), "change message", "not applied"):
        raise TransientError("throttled")
    assert logger.lines == [("warning", "not applied, retried later", {"message_id": "m1", "reason": "throttled"})]
