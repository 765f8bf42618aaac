"""The SQS event source mapping emulation: Lambda's event, partial batch responses, redrive, FIFO order, drain."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import defaultdict
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_stack import moto_fixes
from local_stack.sqs_poller import SqsEventSourcePoller, drain
from local_stack.template import Resources, create_resources
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import SQSBackend, sqs_backends

from tests.integration.local_stack.throwaway import QUEUES_TEMPLATE, bodies, template_from


@pytest.fixture
def queues(aws) -> Resources:
    return create_resources(template_from(QUEUES_TEMPLATE), aws, stage="test")


@pytest.fixture
def sqs(aws):
    return aws.client("sqs")


def poller(sqs, queues: Resources, queue: str, handler, **options: Any) -> SqsEventSourcePoller:
    return SqsEventSourcePoller(sqs, queues.queue_url(queue), queues.queue_arn(queue), handler, **options)


def send(sqs, queues: Resources, queue: str, *messages: str, **options: Any) -> None:
    for body in messages:
        sqs.send_message(QueueUrl=queues.queue_url(queue), MessageBody=body, **options)


def attributes(sqs, url: str) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    values = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {name: int(values[name]) for name in names}


class Recorder:
    """A throwaway handler: records every event, fails the messages whose body says "poison"."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["messageId"]} for record in event["Records"] if record["body"] == "poison"
            ]
        }

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for event in self.events for record in event["Records"]]


class TestTheEvent:
    def test_a_standard_queue_record_has_the_shape_lambda_gives(self, sqs, queues):
        # given a message with a string, a number and a binary attribute, and one without attributes
        send(
            sqs,
            queues,
            "WorkQueue",
            '{"account": 1}',
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": "account"},
                "count": {"DataType": "Number", "StringValue": "3"},
                "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        )
        send(sqs, queues, "WorkQueue", "plain")
        handler = Recorder()
        # when the poller runs the function once
        result = poller(sqs, queues, "WorkQueue", handler).poll_once()
        # then the function got one event with both records, shaped as Lambda shapes them
        assert (result.received, result.invocations, result.succeeded) == (2, 1, 2)
        (event,) = handler.events
        assert list(event) == ["Records"]
        first, second = event["Records"]
        assert set(first) == {
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfMessageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        }
        assert first["body"] == '{"account": 1}'
        assert first["md5OfBody"] == hashlib.md5(b'{"account": 1}').hexdigest()  # noqa: S324 - SQS's checksum
        assert first["eventSource"] == "aws:sqs"
        assert first["eventSourceARN"] == queues.queue_arn("WorkQueue")
        assert first["awsRegion"] == "us-east-1"
        assert set(first["attributes"]) == {
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        }
        assert first["attributes"]["ApproximateReceiveCount"] == "1"
        assert first["messageAttributes"] == {
            "kind": {"stringValue": "account", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "count": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
            "raw": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
        }
        assert second["messageAttributes"] == {}
        assert "md5OfMessageAttributes" not in second

    def test_a_fifo_record_carries_its_group_deduplication_id_and_sequence_number(self, sqs, queues):
        send(sqs, queues, "OrderedQueue", "v1", MessageGroupId="001A", MessageDeduplicationId="001A-1")
        handler = Recorder()
        poller(sqs, queues, "OrderedQueue", handler).poll_once()
        (record,) = handler.records
        assert record["attributes"]["MessageGroupId"] == "001A"
        assert record["attributes"]["MessageDeduplicationId"] == "001A-1"
        assert record["attributes"]["SequenceNumber"].isdigit()
        assert record["eventSourceARN"].endswith(":poller-test-ordered.fifo")


class TestPartialBatchResponses:
    def test_only_the_messages_that_succeeded_are_deleted(self, sqs, queues):
        # given five messages, two of them poison
        send(sqs, queues, "WorkQueue", "a", "poison", "b", "poison", "c")
        handler = Recorder()
        work = poller(sqs, queues, "WorkQueue", handler, visibility_timeout=0)
        # when the function reports the two poison messages as failures
        first = work.poll_once()
        # then the three others are gone and the two come back, received a second time
        assert (first.received, first.succeeded, first.failed) == (5, 3, 2)
        second = work.poll_once()
        assert (second.received, second.failed) == (2, 2)
        assert bodies(handler.events[1]) == ["poison", "poison"]
        assert {record["attributes"]["ApproximateReceiveCount"] for record in handler.events[1]["Records"]} == {"2"}

    def test_a_handler_that_raises_leaves_the_whole_batch_until_the_visibility_timeout(self, sqs, queues):
        # given three messages and a function that crashes the first time
        send(sqs, queues, "WorkQueue", "a", "b", "c")
        calls: list[list[str]] = []

        def crashes_once(event):
            calls.append(bodies(event))
            if len(calls) == 1:
                raise RuntimeError("the database is away")
            return None

        work = poller(sqs, queues, "WorkQueue", crashes_once, visibility_timeout=1)
        # when it crashes
        crashed = work.poll_once()
        # then nothing is deleted: the batch is in flight, invisible until its visibility timeout expires
        assert (crashed.received, crashed.function_errors, crashed.succeeded, crashed.failed) == (3, 1, 0, 3)
        assert attributes(sqs, queues.queue_url("WorkQueue")) == {
            "ApproximateNumberOfMessages": 0,
            "ApproximateNumberOfMessagesNotVisible": 3,
        }
        assert work.poll_once().received == 0
        time.sleep(1.1)
        retried = work.poll_once()
        assert (retried.received, retried.succeeded) == (3, 3)
        assert sorted(calls[1]) == ["a", "b", "c"]
        assert work.depth() == 0

    @pytest.mark.parametrize(
        "response",
        [
            {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-the-batch"}]},
            {"batchItemFailures": [{"itemIdentifier": ""}]},
            {"batchItemFailures": [{"itemIdentifier": None}]},
            {"batchItemFailures": [{"messageId": "bad key name"}]},
            "not an object",
        ],
    )
    def test_a_response_lambda_rejects_fails_the_whole_batch(self, sqs, queues, response):
        send(sqs, queues, "WorkQueue", "a", "b")
        result = poller(sqs, queues, "WorkQueue", lambda event: response, visibility_timeout=0).poll_once()
        assert (result.invalid_responses, result.succeeded, result.failed) == (1, 0, 2)

    @pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
    def test_an_empty_response_is_a_complete_success(self, sqs, queues, response):
        send(sqs, queues, "WorkQueue", "a", "b")
        result = poller(sqs, queues, "WorkQueue", lambda event: response).poll_once()
        assert (result.succeeded, result.failed) == (2, 0)

    def test_without_report_batch_item_failures_the_response_is_ignored(self, sqs, queues):
        send(sqs, queues, "WorkQueue", "poison", "fine")
        work = poller(sqs, queues, "WorkQueue", Recorder(), report_batch_item_failures=False)
        assert work.poll_once().succeeded == 2
        assert work.depth() == 0


class TestDeadLetterQueue:
    def test_a_message_failing_max_receive_count_times_lands_in_the_dead_letter_queue(self, sqs, queues):
        # given a queue with maxReceiveCount 3, a poison message and a good one
        send(sqs, queues, "WorkQueue", "poison", "fine")
        handler = Recorder()
        # when the trigger runs until the queue is empty
        totals = drain([poller(sqs, queues, "WorkQueue", handler, visibility_timeout=0)])
        # then the poison message was tried three times, then moved, body intact
        poison_receipts = [r["attributes"]["ApproximateReceiveCount"] for r in handler.records if r["body"] == "poison"]
        assert poison_receipts == ["1", "2", "3"]
        assert totals.empty
        assert (totals.succeeded, totals.failed, totals.moved_to_dlq) == (1, 3, 1)
        dead = sqs.receive_message(QueueUrl=queues.queue_url("WorkDeadLetterQueue"), AttributeNames=["All"])
        (message,) = dead["Messages"]
        assert message["Body"] == "poison"


class TestFifo:
    def test_a_groups_order_is_kept_when_a_message_fails_and_comes_back(self, sqs, queues):
        # given two interleaved groups on the FIFO queue
        for body in ("A1", "B1", "A2", "B2", "A3", "B3", "A4"):
            send(sqs, queues, "OrderedQueue", body, MessageGroupId=body[0], MessageDeduplicationId=body)
        processed: dict[str, list[str]] = defaultdict(list)
        failed_once: set[str] = set()

        def fails_a2_once(event):
            # as the Lambda docs ask of a FIFO consumer: after a group's first failure, fail the rest of that group
            failures, broken_groups = [], set()
            for record in event["Records"]:
                group = record["attributes"]["MessageGroupId"]
                if group in broken_groups or (record["body"] == "A2" and "A2" not in failed_once):
                    failed_once.add(record["body"])
                    broken_groups.add(group)
                    failures.append({"itemIdentifier": record["messageId"]})
                else:
                    processed[group].append(record["body"])
            return {"batchItemFailures": failures}

        # when the trigger drains the queue, the failed part of group A coming back after 1 s
        totals = drain([poller(sqs, queues, "OrderedQueue", fails_a2_once, visibility_timeout=1)], timeout=10)
        # then each group was processed in order, every message once
        assert totals.empty
        assert processed == {"A": ["A1", "A2", "A3", "A4"], "B": ["B1", "B2", "B3"]}

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(offsets=st.lists(st.integers(0, 8), min_size=3, max_size=3), step=st.sampled_from([0.0005, 0.001, 0.003]))
    def test_a_group_comes_back_in_order_however_the_clock_moves_during_a_receive(self, aws, offsets, step):
        # given a FIFO group whose first message was processed and whose three others failed (a queue per example)
        sqs = aws.client("sqs")
        url = sqs.create_queue(QueueName=f"clock-{uuid.uuid4().hex}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for body in ("A1", "A2", "A3", "A4"):
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="A", MessageDeduplicationId=body)
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
        # and the failed ones coming back at moments a few milliseconds apart, in any order
        start = time.time()
        queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_queue(url.rsplit("/", 1)[-1])
        for message, offset in zip(queue._messages, offsets, strict=True):
            message.visible_at = start * 1000.0 + offset
        # when the consumer receives while the clock moves on at every reading of it (a loaded machine)
        received: list[str] = []
        with patch.object(moto_fixes, "time", _SteppingClock(start, step)):
            for _ in range(100):
                for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
                    "Messages", []
                ):
                    received.append(message["Body"])
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                if len(received) == 3:
                    break
        # then the group comes back in its order, however the receives fell between the moments
        assert received == ["A2", "A3", "A4"]

    def test_canary_moto_alone_redelivers_a_fifo_group_out_of_order(self, sqs, queues, monkeypatch):
        """Fails once moto fixes its FIFO redelivery; then `local_stack.moto_fixes` can go."""
        monkeypatch.setattr(SQSBackend, "receive_message", SQSBackend.receive_message.__wrapped__)
        url = queues.queue_url("OrderedQueue")
        for body in ("A1", "A2", "A3"):
            send(sqs, queues, "OrderedQueue", body, MessageGroupId="A", MessageDeduplicationId=body)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
        time.sleep(1.1)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)["Messages"]
        assert [message["Body"] for message in again] == ["A3"], "moto now redelivers in order: drop moto_fixes"


class _SteppingClock:
    """`time` whose `time()` moves `step` seconds at every reading: what a receive sees on a loaded machine."""

    monotonic = staticmethod(time.monotonic)  # (before `time` below hides the module in this class body)

    def __init__(self, start: float, step: float) -> None:
        self.now, self.step = start, step

    def time(self) -> float:
        self.now += self.step
        return self.now


class TestDrain:
    def test_drain_follows_messages_from_queue_to_queue_until_every_queue_is_empty(self, sqs, queues):
        # given a first function that forwards each message to a FIFO queue consumed by a second one
        def forward(event):
            for body in bodies(event):
                send(sqs, queues, "OrderedQueue", f"fwd-{body}", MessageGroupId="g", MessageDeduplicationId=body)

        consumed = Recorder()
        send(sqs, queues, "WorkQueue", *[f"m{n}" for n in range(25)])
        pollers = [
            poller(sqs, queues, "WorkQueue", forward, batch_size=10),
            poller(sqs, queues, "OrderedQueue", consumed, batch_size=10),
        ]
        # when drained
        totals = drain(pollers)
        # then everything went through both functions, in order on the FIFO queue
        assert totals.empty
        assert (totals.received, totals.succeeded, totals.failed) == (50, 50, 0)
        assert [record["body"] for record in consumed.records] == [f"fwd-m{n}" for n in range(25)]
        assert all(p.depth() == 0 for p in pollers)

    def test_drain_stops_after_max_rounds_when_a_message_never_succeeds(self, sqs, queues):
        # given a queue without a dead-letter queue and a function that always fails
        send(sqs, queues, "LooseQueue", "poison")

        def always_fails(event):
            raise ValueError("never")

        # when drained with a bound
        totals = drain([poller(sqs, queues, "LooseQueue", always_fails, visibility_timeout=0)], max_rounds=5)
        # then it stops, and says the queue is not empty
        assert not totals.empty
        assert (totals.rounds, totals.function_errors) == (5, 5)

    def test_a_batch_larger_than_ten_is_received_in_several_calls(self, sqs, queues):
        send(sqs, queues, "WorkQueue", *[f"m{n}" for n in range(25)])
        handler = Recorder()
        result = poller(sqs, queues, "WorkQueue", handler, batch_size=20).poll_once()
        assert (result.received, result.invocations) == (20, 1)
        assert len(handler.records) == 20
