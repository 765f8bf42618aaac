"""Lambda's SQS event source mapping, emulated against any SQS endpoint (a moto server or `mock_aws`).

What each `poll_once()` does, as Lambda does it:

* ReceiveMessage up to `batch_size` messages (several calls of at most 10 when the batch is larger) with every
  attribute, and build the event Lambda builds (`{"Records": [{messageId, receiptHandle, body, attributes,
  messageAttributes, md5OfBody, eventSource: "aws:sqs", eventSourceARN, awsRegion}]}`, with
  `md5OfMessageAttributes` when the message has attributes and the FIFO attributes on a FIFO queue).
* Invoke the function once with the batch, then delete the messages that succeeded. With
  `ReportBatchItemFailures`, those are the ones not named in `batchItemFailures`. A handler that raised, or a
  response Lambda rejects (not an object, an item without a non-empty `itemIdentifier`, an id that is not in
  the batch), fails the whole batch. Without `ReportBatchItemFailures` the response is ignored.
* Leave failed messages alone: they come back when their visibility timeout expires, with their receive count
  increased. Real Lambda uses the queue's VisibilityTimeout; `visibility_timeout` overrides it for this poller
  (passed to ReceiveMessage) so that a demo or a test sees redeliveries after 1 s, or at once with 0.
* The dead-letter queue: SQS moves a message to the RedrivePolicy's DLQ when a receive finds it already
  received `maxReceiveCount` times. moto 5.2.5 does exactly that, inside ReceiveMessage, so the poller does not
  move anything itself; it reports how many messages the receive moved (the DLQ's depth before and after).
* FIFO queues: SQS hands out a group's messages in order and none of a group while one of its messages is in
  flight; moto does so once `moto_fixes.apply_moto_fixes()` corrects its redelivery order. A handler should, as
  the Lambda docs ask, report the first failure of a group and every later message of that group.

Not emulated: MaximumBatchingWindowInSeconds (the poller invokes with what one receive returns), concurrency
(one batch at a time), filter criteria. moto omits `SequenceNumber` for FIFO messages sent without an explicit
deduplication id; the poller then fills in a stable one so that the event has the real shape.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "SenderId",
    "MessageDeduplicationId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
_DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclass
class PollResult:
    """What one poll (or, summed, a drain) did."""

    received: int = 0
    succeeded: int = 0  # processed and deleted
    failed: int = 0  # left on the queue, to come back after the visibility timeout
    moved_to_dlq: int = 0  # moved by SQS to the dead-letter queue during the receive
    invocations: int = 0
    function_errors: int = 0  # invocations that raised (or timed out)
    invalid_responses: int = 0  # partial batch responses Lambda would reject

    def add(self, other: PollResult) -> None:
        for item in fields(PollResult):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


class InvalidBatchResponse(ValueError):
    """A partial batch response Lambda treats as a failure of the whole batch."""


class SqsEventSourcePoller:
    """One event source mapping: a queue, a function (`invoke(event) -> response`, raising on a function
    error), a batch size and whether the function reports batch item failures."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int = 10,
        report_batch_item_failures: bool = True,
        visibility_timeout: int | None = None,
        *,
        region: str = "us-east-1",
        name: str | None = None,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch size {batch_size} is not within 1..10000")
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.invoke = invoke
        self.batch_size = batch_size
        self.report_batch_item_failures = report_batch_item_failures
        self.visibility_timeout = visibility_timeout
        self.region = region
        self.name = name or queue_arn.rsplit(":", 1)[-1]
        self._queue: dict[str, Any] | None = None
        self._sequence_numbers: dict[str, str] = {}
        self._sequence = itertools.count(1)

    def __repr__(self) -> str:
        return f"SqsEventSourcePoller({self.name!r}, batch_size={self.batch_size})"

    # --- the queue ---

    @property
    def fifo(self) -> bool:
        return bool(self._queue_info()["fifo"])

    @property
    def dead_letter_queue_url(self) -> str | None:
        return self._queue_info()["dlq_url"]

    def _queue_info(self) -> dict[str, Any]:
        if self._queue is None:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["FifoQueue", "RedrivePolicy"]
            ).get("Attributes", {})
            fifo = attributes.get("FifoQueue") == "true"
            if fifo and self.batch_size > 10:
                raise ValueError(f"{self.name}: a FIFO queue takes batches of at most 10, not {self.batch_size}")
            dlq_url = None
            if attributes.get("RedrivePolicy"):
                dlq_arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
                dlq_url = self.sqs.get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[-1])["QueueUrl"]
            self._queue = {"fifo": fifo, "dlq_url": dlq_url}
        return self._queue

    def depth(self) -> int:
        """Messages still in the queue: visible, in flight and delayed."""
        return _depth(self.sqs, self.queue_url)

    # --- one poll ---

    def poll_once(self) -> PollResult:
        dlq_url = self.dead_letter_queue_url
        dlq_before = _depth(self.sqs, dlq_url) if dlq_url else 0
        messages = self._receive()
        result = PollResult(received=len(messages))
        if dlq_url:
            result.moved_to_dlq = max(0, _depth(self.sqs, dlq_url) - dlq_before)
        if not messages:
            return result

        event = {"Records": [self._record(message) for message in messages]}
        message_ids = [message["MessageId"] for message in messages]
        result.invocations = 1
        try:
            response = self.invoke(event)
        except Exception as exc:
            logger.info("%s: the function failed (%s): the batch of %d stays", self.name, exc, len(messages))
            result.function_errors = 1
            failed = set(message_ids)
        else:
            try:
                failed = self._failed_ids(response, message_ids)
            except InvalidBatchResponse as exc:
                logger.warning("%s: invalid partial batch response (%s): the whole batch fails", self.name, exc)
                result.invalid_responses = 1
                failed = set(message_ids)

        deleted = self._delete([message for message in messages if message["MessageId"] not in failed])
        result.succeeded = deleted
        result.failed = len(messages) - deleted
        return result

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            wanted = min(10, self.batch_size - len(messages))
            request: dict[str, Any] = {
                "QueueUrl": self.queue_url,
                "MaxNumberOfMessages": wanted,
                "AttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
                "MessageSystemAttributeNames": ["All"],
                "WaitTimeSeconds": 0,
            }
            if self.visibility_timeout is not None:
                request["VisibilityTimeout"] = self.visibility_timeout
            received = self.sqs.receive_message(**request).get("Messages", [])
            messages.extend(received)
            if len(received) < wanted:
                break
        return messages

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        received_attributes = message.get("Attributes", {})
        attributes = {name: received_attributes[name] for name in _RECORD_ATTRIBUTES if name in received_attributes}
        if self.fifo and "SequenceNumber" not in attributes:
            attributes["SequenceNumber"] = self._sequence_number(message["MessageId"])
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": attributes,
            "messageAttributes": {
                name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record.update(
            {
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": self.region,
            }
        )
        return record

    def _sequence_number(self, message_id: str) -> str:
        if message_id not in self._sequence_numbers:
            self._sequence_numbers[message_id] = f"{next(self._sequence):020d}"
        return self._sequence_numbers[message_id]

    def _failed_ids(self, response: Any, message_ids: list[str]) -> set[str]:
        """The messages a partial batch response names, by Lambda's rules."""
        if not self.report_batch_item_failures or response is None:
            return set()
        if not isinstance(response, dict):
            raise InvalidBatchResponse(f"the response is a {type(response).__name__}, not an object")
        failures = response.get("batchItemFailures")
        if not failures:
            return set()
        if not isinstance(failures, list):
            raise InvalidBatchResponse("batchItemFailures is not a list")
        failed = set()
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not isinstance(identifier, str) or not identifier:
                raise InvalidBatchResponse(f"{failure!r} has no itemIdentifier")
            if identifier not in message_ids:
                raise InvalidBatchResponse(f"{identifier!r} is not a message of the batch")
            failed.add(identifier)
        return failed

    def _delete(self, messages: list[dict[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(chunk)],
            )
            deleted += len(response.get("Successful", []))
            for failure in response.get("Failed", []):
                logger.warning("%s: could not delete a processed message: %s", self.name, failure)
        return deleted


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS message attribute as Lambda writes it in the event (binary values base64-encoded)."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])]
    attribute["dataType"] = value["DataType"]
    return attribute


def _depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=_DEPTH_ATTRIBUTES).get("Attributes", {})
    return sum(int(attributes.get(name, 0)) for name in _DEPTH_ATTRIBUTES)


@dataclass
class DrainResult(PollResult):
    """The sum of every poll of a drain; `empty` tells whether every source queue ended empty."""

    rounds: int = 0
    empty: bool = False
    elapsed_seconds: float = 0.0


def drain(
    pollers: Iterable[SqsEventSourcePoller],
    until_empty: bool = True,
    max_rounds: int = 10_000,
    timeout: float = 60.0,
    idle_wait: float = 0.05,
) -> DrainResult:
    """Poll every source round-robin until all of them are empty, counting messages in flight.

    A round that received nothing and moved nothing checks the queues' depth: all zero ends the drain. Otherwise
    messages are in flight (waiting for their visibility timeout) or delayed, and the drain waits `idle_wait`
    and goes on; with `until_empty=False` it stops at the first idle round instead. `max_rounds` and `timeout`
    bound it (a message that fails forever on a queue without a DLQ); `empty` is False then.
    """
    sources = list(pollers)
    result = DrainResult()
    started = time.monotonic()
    while result.rounds < max_rounds and time.monotonic() - started < timeout:
        result.rounds += 1
        activity = 0
        for poller in sources:
            polled = poller.poll_once()
            result.add(polled)
            activity += polled.received + polled.moved_to_dlq
        if activity:
            continue
        if all(poller.depth() == 0 for poller in sources):
            result.empty = True
            break
        if not until_empty:
            break
        time.sleep(idle_wait)
    result.elapsed_seconds = time.monotonic() - started
    if not result.empty and until_empty:
        logger.warning("drain stopped after %d rounds with messages left: %s", result.rounds, result)
    return result
