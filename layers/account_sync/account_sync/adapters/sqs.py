"""Queue publishers on SQS. `SendMessageBatch` takes 10 entries and may fail some: only those are re-sent.

A body larger than the queue's `MaximumMessageSize` is refused by SQS, and with it the whole batch, every time:
such a message is never sent. It is set aside, the others are queued, and `MessagesRejected` names it, so that
the caller decides what becomes of it instead of retrying forever (docs/decisions.md). A sender may send one call's
batches on several lanes at once, each FIFO message group in one lane ("The fetch's sends side by side").
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from account_sync.contracts import ActivityBatchMessage, ChangeMessage
from account_sync.ports import MessagesRejected, QueueSendError, RejectedMessage

SQS_BATCH_LIMIT = 10
# The MaximumMessageSize of both queues in template.yaml (a test checks that they agree). The bodies of one
# SendMessageBatch are held to the same total, which SQS's own batch limit (1 MiB) is above.
MAX_MESSAGE_BYTES = 262_144


class _Message(Protocol):
    def to_body(self) -> str: ...


class SqsBatchSender:
    """Sends one `send` call's messages in batches, over `lanes` lanes side by side (docs/decisions.md, "The
    fetch's sends side by side"). A FIFO group's order is the order SQS receives its messages, so every message of
    a group goes in the same lane, in the order given, and a lane sends its batches one after another; lanes run
    at once on a small thread pool (botocore's clients are thread-safe; its connection pool must hold `lanes`).
    On a standard queue (no order to keep), a lane takes consecutive runs of 10. With one lane, everything is sent
    on the calling thread, one batch after another."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        fifo: bool | None = None,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        lanes: int = 1,
    ) -> None:
        if lanes < 1:
            raise ValueError("a sender needs at least one lane")
        self._client = client
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(".fifo") if fifo is None else fifo
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep
        self.max_message_bytes = max_message_bytes
        self.lanes = lanes
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def send(self, messages: Sequence[_Message]) -> None:
        """Queue them in batches of at most 10 entries and `max_message_bytes`; return once every lane is done.
        Raise MessagesRejected at the end for those the queue cannot take; QueueSendError if a batch still fails
        after the retries: its lane stops there (nothing of its groups is sent out of order), the other lanes stop
        before their next batch, and the error is raised once none is sending. What was sent stays sent: the
        caller sends the whole call again (FIFO deduplication and the store's versions absorb the repeats)."""
        rejected: list[RejectedMessage] = []
        lanes: list[list[tuple[_Message, str, int]]] = [[] for _ in range(self.lanes)]
        lane_of: dict[object, int] = {}
        for index, message in enumerate(messages):
            body = message.to_body()
            size = len(body.encode())
            if size > self.max_message_bytes:
                rejected.append(RejectedMessage(message, f"{size} bytes, over the queue's {self.max_message_bytes}"))
                continue
            key = message.group_id if self._fifo else index // SQS_BATCH_LIMIT  # type: ignore[attr-defined]
            lane = lane_of.get(key)
            if lane is None:  # a new group goes to the lane with the fewest messages so far
                lane = lane_of[key] = min(range(len(lanes)), key=lambda i: len(lanes[i]))
            lanes[lane].append((message, body, size))
        busy = [lane for lane in lanes if lane]
        if len(busy) == 1:
            rejected += self._send_lane(busy[0], threading.Event())
        elif busy:
            rejected += self._send_lanes_at_once(busy)
        if rejected:
            raise MessagesRejected(rejected)

    def _send_lanes_at_once(self, lanes: Sequence[Sequence[tuple[_Message, str, int]]]) -> list[RejectedMessage]:
        stop = threading.Event()
        futures = [self._thread_pool().submit(self._send_lane, lane, stop) for lane in lanes]
        wait(futures)  # every lane done, failed or stopped: nothing is still sending when this returns or raises
        rejected: list[RejectedMessage] = []
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
            rejected += future.result()
        return rejected

    def _thread_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="sqs-send")
            return self._pool

    def _send_lane(self, lane: Sequence[tuple[_Message, str, int]], stop: threading.Event) -> list[RejectedMessage]:
        """One lane's batches, one after another, until done, or until a lane (this one or another) failed."""
        rejected: list[RejectedMessage] = []
        batch: list[tuple[_Message, str]] = []
        batch_bytes = 0
        try:
            for message, body, size in lane:
                if batch and (len(batch) == SQS_BATCH_LIMIT or batch_bytes + size > self.max_message_bytes):
                    if stop.is_set():
                        return rejected
                    rejected += self._send_batch(batch)
                    batch, batch_bytes = [], 0
                batch.append((message, body))
                batch_bytes += size
            if batch and not stop.is_set():
                rejected += self._send_batch(batch)
        except BaseException:
            stop.set()
            raise
        return rejected

    def _entry(self, index: int, message: _Message, body: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": body}
        if self._fifo:
            entry["MessageGroupId"] = message.group_id  # type: ignore[attr-defined]
            entry["MessageDeduplicationId"] = message.deduplication_id  # type: ignore[attr-defined]
        return entry

    def _send_batch(self, batch: Sequence[tuple[_Message, str]]) -> list[RejectedMessage]:
        pending = [self._entry(index, message, body) for index, (message, body) in enumerate(batch)]
        rejected: list[RejectedMessage] = []
        last_error = ""
        for attempt in range(self._max_attempts):
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=pending)
            except (ClientError, BotoCoreError) as exc:
                last_error = str(exc)
                failed_ids = {entry["Id"] for entry in pending}
            else:
                failures = response.get("Failed", [])
                for failure in failures:
                    if failure.get("SenderFault"):  # our fault (invalid content): sending it again cannot help
                        message = batch[int(failure["Id"])][0]
                        rejected.append(RejectedMessage(message, f"{failure.get('Code')}: {failure.get('Message')}"))
                failed_ids = {failure["Id"] for failure in failures if not failure.get("SenderFault")}
                if failed_ids:
                    last_error = f"{failures[0].get('Code')}: {failures[0].get('Message')}"
            pending = [entry for entry in pending if entry["Id"] in failed_ids]
            if not pending:
                return rejected
            if attempt + 1 < self._max_attempts:
                self._sleep(random.uniform(0, self._base_delay * 2**attempt))  # noqa: S311 - jitter  # nosec B311
        raise QueueSendError(
            f"{len(pending)} of {len(batch)} messages not queued after {self._max_attempts} attempts: {last_error}"
        )


class SqsChangePublisher:
    """The account-changes FIFO queue: grouped by account, deduplicated by (kind, id, SystemModstamp)."""

    def __init__(self, sender: SqsBatchSender) -> None:
        self._sender = sender

    def publish(self, messages: Sequence[ChangeMessage]) -> None:
        self._sender.send(messages)


class SqsActivityPublisher:
    """The activity queue. A batch whose body is over the queue's limit (long or non-ASCII values: JSON escapes
    each such character in up to 12 bytes) is split in halves until each part fits; activity keys are
    deterministic, so how the changes are grouped does not matter. A single change too large for any message is
    rejected (MessagesRejected) for the caller to write some other way."""

    def __init__(self, sender: SqsBatchSender) -> None:
        self._sender = sender

    def publish(self, batches: Sequence[ActivityBatchMessage]) -> None:
        self._sender.send([part for batch in batches for part in self._fitting(batch)])

    def _fitting(self, batch: ActivityBatchMessage) -> list[ActivityBatchMessage]:
        if len(batch.changes) < 2 or len(batch.to_body().encode()) <= self._sender.max_message_bytes:
            return [batch]
        middle = len(batch.changes) // 2
        return [
            *self._fitting(replace(batch, changes=batch.changes[:middle])),
            *self._fitting(replace(batch, changes=batch.changes[middle:])),
        ]


class SqsDeadLetterQueue:
    """Sets a poison message aside in the source queue's dead-letter queue (`queue_records.PoisonPolicy`): the body
    as it was received, and beside it, as message attributes, why (`failure`, `reason`: field names and the
    problem, never values), where from (`source_queue`, `source_message_id`) and after how many receives. On a
    FIFO dead-letter queue it keeps the message's group, and its message id is the deduplication id, so that a
    consumer killed between this call and its answer does not set the same message aside twice."""

    _REASON_LIMIT = 1000  # the attributes count towards the message size: the body must still fit

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(".fifo")

    def set_aside(self, record: Any, failure: str, reason: str) -> None:
        attributes = {
            "failure": failure,
            "reason": reason[: self._REASON_LIMIT] or "unknown",
            "source_queue": record.source_arn or "unknown",
            "source_message_id": record.message_id,
        }
        request: dict[str, Any] = {
            "QueueUrl": self._queue_url,
            "MessageBody": record.body,
            "MessageAttributes": {
                **{name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
                "receive_count": {"DataType": "Number", "StringValue": str(record.receive_count)},
            },
        }
        if self._fifo:
            request["MessageGroupId"] = record.message_group_id or record.message_id
            request["MessageDeduplicationId"] = record.message_id
        try:
            self._client.send_message(**request)
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError(f"the dead-letter queue refused the message: {exc}") from exc


class SqsVisibility:
    """Shortens the visibility timeout of received messages of one queue (`queue_records.RetryVisibility`): one
    ChangeMessageVisibilityBatch per 10 records. An entry SQS refuses (the receipt handle expired, the message
    already deleted) keeps the visibility it has: the queue's own timeout, slower but never lost. Without a `client`,
    `make_client` builds one at the first hand-back: a consumer that is never throttled never pays for it at its
    cold start."""

    def __init__(self, client: Any | None, queue_url: str, make_client: Callable[[], Any] | None = None) -> None:
        if client is None and make_client is None:
            raise ValueError("an SQS client, or a way to make one, is needed")
        self._client = client
        self._make_client = make_client
        self._queue_url = queue_url

    def change_visibility(self, records: Sequence[Any], seconds: int) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": record.receipt_handle, "VisibilityTimeout": seconds}
            for index, record in enumerate(records)
            if record.receipt_handle
        ]
        for start in range(0, len(entries), SQS_BATCH_LIMIT):
            if self._client is None:
                assert self._make_client is not None
                self._client = self._make_client()
            response = self._client.change_message_visibility_batch(
                QueueUrl=self._queue_url, Entries=entries[start : start + SQS_BATCH_LIMIT]
            )
            if response.get("Failed"):
                raise QueueSendError(
                    f"ChangeMessageVisibility refused for {len(response['Failed'])} messages: "
                    + ", ".join(sorted({str(failure.get("Code")) for failure in response["Failed"]}))
                )
