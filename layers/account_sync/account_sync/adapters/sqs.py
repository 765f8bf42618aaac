"""Queue publishers on SQS. `SendMessageBatch` takes 10 entries and may fail some: only those are re-sent."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from account_sync.contracts import ActivityBatchMessage, ChangeMessage
from account_sync.ports import QueueSendError

SQS_BATCH_LIMIT = 10


class _Message(Protocol):
    def to_body(self) -> str: ...


class SqsBatchSender:
    def __init__(
        self,
        client: Any,
        queue_url: str,
        fifo: bool | None = None,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(".fifo") if fifo is None else fifo
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep

    def send(self, messages: Sequence[_Message]) -> None:
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            self._send_batch(messages[start : start + SQS_BATCH_LIMIT])

    def _entry(self, index: int, message: _Message) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.to_body()}
        if self._fifo:
            entry["MessageGroupId"] = message.group_id  # type: ignore[attr-defined]
            entry["MessageDeduplicationId"] = message.deduplication_id  # type: ignore[attr-defined]
        return entry

    def _send_batch(self, batch: Sequence[_Message]) -> None:
        pending = [self._entry(index, message) for index, message in enumerate(batch)]
        last_error = ""
        for attempt in range(self._max_attempts):
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=pending)
            except (ClientError, BotoCoreError) as exc:
                last_error = str(exc)
                failed_ids = {entry["Id"] for entry in pending}
            else:
                failures = response.get("Failed", [])
                sender_faults = [f for f in failures if f.get("SenderFault")]
                if sender_faults:  # our fault (too large, invalid): retrying cannot help
                    first = sender_faults[0]
                    raise QueueSendError(
                        f"{len(sender_faults)} message(s) refused by SQS: {first.get('Code')}: {first.get('Message')}"
                    )
                failed_ids = {failure["Id"] for failure in failures}
                if failures:
                    last_error = f"{failures[0].get('Code')}: {failures[0].get('Message')}"
            pending = [entry for entry in pending if entry["Id"] in failed_ids]
            if not pending:
                return
            if attempt + 1 < self._max_attempts:
                self._sleep(random.uniform(0, self._base_delay * 2**attempt))  # noqa: S311 - jitter
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
    def __init__(self, sender: SqsBatchSender) -> None:
        self._sender = sender

    def publish(self, batches: Sequence[ActivityBatchMessage]) -> None:
        self._sender.send(batches)
