"""The queue consumers' batch handling: each record alone, a partial batch response, FIFO groups kept in order."""

from __future__ import annotations

import pytest
from account_sync import queue_records
from account_sync.contracts import MalformedMessage
from account_sync.ports import PermanentFailure, Throttled, TransientError
from account_sync.queue_records import (
    PoisonPolicy,
    QueueRecord,
    RetryVisibility,
    failures_reported,
    partial_batch_response,
    retry_visibility_seconds,
)


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


def test_the_record_carries_its_id_body_group_receive_count_and_source():
    seen: list[QueueRecord] = []
    event = sqs_event(("m1", "001A"))
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"
    event["Records"][0]["eventSourceARN"] = "arn:aws:sqs:eu-west-1:1:q.fifo"
    partial_batch_response(event, seen.append, fifo=True)
    assert seen == [
        QueueRecord("m1", "body of m1", "001A", receive_count=3, source_arn="arn:aws:sqs:eu-west-1:1:q.fifo")
    ]


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
    assert logger.lines == [
        ("warning", "not applied, retried later", {"message_id": "m1", "reason": "throttled", "receive_count": 1})
    ]


# --- issue 10, 2.5: a poison message fails alone --------------------------------------------------------------

MAX_RECEIVE_COUNT = 5


class RecordingDeadLetters:
    def __init__(self, fail: bool = False) -> None:
        self.set_aside_records: list[tuple[str, str, str, int]] = []
        self.fail = fail

    def set_aside(self, record: QueueRecord, failure: str, reason: str) -> None:
        if self.fail:
            raise RuntimeError("SendMessage refused")
        self.set_aside_records.append((record.message_id, failure, reason, record.receive_count))


class Poisoned:
    """Applies every record but `poison`, which raises `error`; counts what was applied."""

    def __init__(self, poison: str, error: Exception) -> None:
        self.poison, self.error = poison, error
        self.applied: list[str] = []

    def __call__(self, record: QueueRecord) -> None:
        if record.message_id == self.poison:
            raise self.error
        self.applied.append(record.message_id)


class FifoGroup:
    """One message group on a FIFO queue with a RedrivePolicy, as SQS runs it for Lambda: every receive hands out
    the group's messages in order and counts a receive for each; a message already received maxReceiveCount times
    goes to the dead-letter queue at the receive that finds it."""

    def __init__(self, ids: list[str]) -> None:
        self.queue = [[message_id, 0] for message_id in ids]
        self.sqs_dead_lettered: list[str] = []

    def receive(self, handle, poison: PoisonPolicy | None) -> dict:
        for message in [m for m in self.queue if m[1] >= MAX_RECEIVE_COUNT]:
            self.queue.remove(message)
            self.sqs_dead_lettered.append(message[0])
        for message in self.queue:
            message[1] += 1
        event = sqs_event(*((message_id, "001A") for message_id, _ in self.queue))
        for record, (_, count) in zip(event["Records"], self.queue, strict=True):
            record["attributes"]["ApproximateReceiveCount"] = str(count)
        response = partial_batch_response(event, handle, fifo=True, poison=poison)
        self.queue = [m for m in self.queue if m[0] in failed(response)]
        return response


@pytest.mark.parametrize(
    ("error", "failure", "receives"),
    [
        (MalformedMessage("field 'Industry': NaN or Infinity is not a number DynamoDB can store"), "malformed", 1),
        (PermanentFailure("DynamoDB refused the write as invalid"), "refused", 1),
        (RuntimeError("a bug quoting jane.doe@example.com"), "failed", MAX_RECEIVE_COUNT - 1),
    ],
    ids=["malformed", "refused-by-the-store", "unknown-error"],
)
def test_a_poison_message_in_the_middle_of_a_group_ends_alone_in_the_dead_letter_queue(error, failure, receives):
    # given a message group of five, the third of which can never succeed
    group = FifoGroup(["a1", "a2", "poison", "a4", "a5"])
    handler, dead_letters = Poisoned("poison", error), RecordingDeadLetters()
    policy = PoisonPolicy(dead_letters, MAX_RECEIVE_COUNT)
    # when SQS hands the group out again and again, as Lambda's event source mapping does, until it is empty
    for _ in range(MAX_RECEIVE_COUNT + 2):
        if group.queue:
            group.receive(handler, policy)
    # then the poison alone was set aside, by the consumer, at its first receive (malformed, refused) or at
    # maxReceiveCount - 1 (an unknown error), with a reason that holds no value
    assert group.queue == [] and group.sqs_dead_lettered == []
    ((message_id, seen_failure, reason, receive_count),) = dead_letters.set_aside_records
    assert (message_id, seen_failure, receive_count) == ("poison", failure, receives)
    assert "jane" not in reason
    # and every healthy message was applied once, in order, those behind the poison included
    assert handler.applied == ["a1", "a2", "a4", "a5"]


def test_without_the_policy_the_followers_of_a_poison_message_dead_letter_with_it():
    """What the policy fixes (kept as the behaviour of a consumer without one): the followers' receive counts
    grow with the poison's, and SQS dead-letters them together."""
    group = FifoGroup(["a1", "poison", "a3", "a4"])
    handler = Poisoned("poison", RuntimeError("bug"))
    for _ in range(MAX_RECEIVE_COUNT + 1):
        if group.queue:
            group.receive(handler, poison=None)
    assert group.sqs_dead_lettered == ["poison", "a3", "a4"] and handler.applied == ["a1"]


def test_a_transient_error_hands_the_rest_of_the_group_back_in_order_and_sets_nothing_aside():
    handler, dead_letters = Poisoned("a2", TransientError("throttled")), RecordingDeadLetters()
    event = sqs_event(("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A"))
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "4"  # even at maxReceiveCount - 1
    response = partial_batch_response(event, handler, fifo=True, poison=PoisonPolicy(dead_letters, 5))
    assert failed(response) == ["a2", "a3"] and handler.applied == ["a1", "b1"]
    assert dead_letters.set_aside_records == []


def test_an_unknown_error_before_maxreceivecount_minus_one_is_handed_back_with_its_group():
    handler, dead_letters = Poisoned("a1", RuntimeError("bug")), RecordingDeadLetters()
    event = sqs_event(("a1", "A"), ("a2", "A"))
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "3"
    response = partial_batch_response(event, handler, fifo=True, poison=PoisonPolicy(dead_letters, 5))
    assert failed(response) == ["a1", "a2"] and dead_letters.set_aside_records == []


def test_a_poison_message_that_cannot_be_set_aside_is_handed_back_with_its_group():
    # the dead-letter queue refusing the SendMessage: SQS's own redrive remains, nothing is lost
    handler = Poisoned("a1", MalformedMessage("body is not JSON"))
    response = partial_batch_response(
        sqs_event(("a1", "A"), ("a2", "A")), handler, fifo=True, poison=PoisonPolicy(RecordingDeadLetters(fail=True), 5)
    )
    assert failed(response) == ["a1", "a2"]


# --- throttled messages: handed back with a short, growing visibility, never set aside ---------------------------


class RecordingVisibility:
    def __init__(self, fail: bool = False) -> None:
        self.changes: list[tuple[list[str], int]] = []
        self.fail = fail

    def change_visibility(self, records, seconds: int) -> None:
        if self.fail:
            raise RuntimeError("ChangeMessageVisibilityBatch refused")
        self.changes.append(([record.message_id for record in records], seconds))


def received(event: dict, counts: dict[str, int]) -> dict:
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(counts.get(record["messageId"], 1))
        record["receiptHandle"] = f"handle of {record['messageId']}"
    return event


@pytest.mark.parametrize(
    ("receive", "seconds"), [(1, 2), (2, 4), (3, 8), (6, 64), (7, 120), (35, 120), (10_000, 120), (0, 2)]
)
def test_the_retry_visibility_doubles_with_each_receive_up_to_its_cap(receive, seconds):
    assert retry_visibility_seconds(receive, base_seconds=2, max_seconds=120) == seconds


def test_a_throttled_fifo_message_and_its_followers_come_back_after_its_delay_and_other_groups_go_on():
    # given a batch where a2 (received for the third time) is throttled, a3 follows it in group A, and b1 is fine
    handler = Poisoned("a2", Throttled("DynamoDB ProvisionedThroughputExceededException"))
    event = received(sqs_event(("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A")), {"a2": 3, "a3": 2})
    visibility = RecordingVisibility()
    # when the batch is handled
    response = partial_batch_response(
        event, handler, fifo=True, poison=PoisonPolicy(RecordingDeadLetters(), 35), retry=RetryVisibility(visibility)
    )
    # then a2 and a3 are handed back, visible again after a2's 2 x 2^2 = 8 s, not the queue's 540 s
    assert failed(response) == ["a2", "a3"] and handler.applied == ["a1", "b1"]
    assert visibility.changes == [(["a2", "a3"], 8)]


def test_a_throttled_activity_batch_comes_back_after_its_own_delay():
    # given a standard queue's batch where m1 (first receive) and m3 (fifth) are throttled
    handled: list[str] = []

    def handle(record: QueueRecord) -> None:
        handled.append(record.message_id)
        if record.message_id != "m2":
            raise Throttled("6 of 25 activities still unprocessed after 6 attempts")

    event = received(sqs_event(("m1", None), ("m2", None), ("m3", None)), {"m1": 1, "m3": 5})
    visibility = RecordingVisibility()
    response = partial_batch_response(event, handle, fifo=False, retry=RetryVisibility(visibility))
    # then each comes back after its own delay, and m2 is done
    assert failed(response) == ["m1", "m3"] and handled == ["m1", "m2", "m3"]
    assert visibility.changes == [(["m1"], 2), (["m3"], 32)]


def test_an_unknown_error_keeps_the_queues_visibility_timeout():
    # a bug is no reason to come back sooner: the poison policy counts its receives
    visibility = RecordingVisibility()
    event = received(sqs_event(("a1", "A"), ("a2", "A")), {})
    response = partial_batch_response(
        event, Poisoned("a1", RuntimeError("bug")), fifo=True, retry=RetryVisibility(visibility)
    )
    assert failed(response) == ["a1", "a2"] and visibility.changes == []


def test_a_visibility_that_cannot_be_shortened_leaves_the_answer_as_it_is():
    # SQS refusing ChangeMessageVisibility: the queue's own timeout applies, slower, nothing lost
    event = received(sqs_event(("a1", "A"), ("a2", "A")), {})
    response = partial_batch_response(
        event, Poisoned("a1", Throttled("throttled")), fifo=True, retry=RetryVisibility(RecordingVisibility(fail=True))
    )
    assert failed(response) == ["a1", "a2"]


@pytest.mark.parametrize("receives", [1, 4, 34, 35, 1000])
def test_a_throttled_message_is_never_set_aside_whatever_its_receive_count(receives):
    dead_letters = RecordingDeadLetters()
    event = received(sqs_event(("a1", "A")), {"a1": receives})
    response = partial_batch_response(
        event, Poisoned("a1", Throttled("throttled")), fifo=True, poison=PoisonPolicy(dead_letters, 35)
    )
    assert failed(response) == ["a1"] and dead_letters.set_aside_records == []


@pytest.mark.parametrize(("receives", "set_aside"), [(3, False), (4, True)])
def test_an_unknown_error_is_set_aside_at_its_fourth_receive_whatever_maxreceivecount_is(receives, set_aside):
    # given maxReceiveCount 35 (an hour of throttling) and the unknown-error limit of 4 receives
    dead_letters = RecordingDeadLetters()
    event = received(sqs_event(("a1", "A")), {"a1": receives})
    policy = PoisonPolicy(dead_letters, 35, unknown_error_receives=4)
    partial_batch_response(event, Poisoned("a1", RuntimeError("bug")), fifo=True, poison=policy)
    assert bool(dead_letters.set_aside_records) is set_aside
