"""The dead-letter queues: what is in them (ids, kinds, reasons, receive counts; never a field value) and a
redrive back to the queue each one serves.

A redrive moves each message itself: receive it from the dead-letter queue, send it to its source queue (same
body, same message group, the dead letter's message id as the deduplication id), then delete it from the
dead-letter queue. A redrive that stops half-way and is run again within five minutes sends nothing twice (FIFO
deduplication on that id); a message sent twice anyway is applied once in effect, by the guarantees of
docs/guarantees.md (versions are ordered by their SystemModstamp, activities have deterministic keys). SQS's own
`StartMessageMoveTask` is used for `--all` on a standard queue where it serves (AWS, not moto): it is asynchronous
and cannot pick messages, and it did not serve FIFO queues when this was written (docs/decisions.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from account_sync_cli.deployment import Deployment

# The name an operator types -> (dead-letter queue, the queue it serves), by logical id.
DEAD_LETTER_QUEUES = {
    "changes": ("AccountChangesDeadLetterQueue", "AccountChangesQueue"),
    "activities": ("ActivityDeadLetterQueue", "ActivityQueue"),
    "change-events": ("ChangeEventsDeadLetterQueue", "ChangeEventsQueue"),  # the push path's, when it is deployed
}


def deployed_dead_letter_queues(deployment: Deployment) -> list[str]:
    """The dead-letter queues this deployment has, in `DEAD_LETTER_QUEUES`' order: the push path's only where it is
    turned on."""
    return [name for name, (dead_letters, _) in DEAD_LETTER_QUEUES.items() if dead_letters in deployment.refs]


_RECEIVE_BATCH = 10
_HOLD_SECONDS = 60  # how long a listed or skipped message stays hidden if the command dies before releasing it


@dataclass(frozen=True)
class DeadLetter:
    """What is shown of a dead letter: never its body (it holds field values), only what identifies it."""

    queue: str
    message_id: str
    kind: str
    group: str | None
    receive_count: int
    sent_at: int | None
    body_bytes: int
    reason: str | None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "message_id": self.message_id,
            "kind": self.kind,
            "group": self.group,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at,
            "body_bytes": self.body_bytes,
            "reason": self.reason,
            "attributes": dict(self.attributes),
        }


@dataclass
class RedriveSummary:
    queue: str
    dry_run: bool
    moved: list[str] = field(default_factory=list)
    would_move: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    move_task: str | None = None  # StartMessageMoveTask's handle, when SQS moves them

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "dry_run": self.dry_run,
            "moved": len(self.moved),
            "would_move": len(self.would_move),
            "moved_ids": self.moved,
            "would_move_ids": self.would_move,
            "not_found": self.not_found,
            "move_task": self.move_task,
        }


class DeadLetters:
    def __init__(self, deployment: Deployment, sqs: Any | None = None) -> None:
        self._deployment = deployment
        self._sqs = sqs or deployment.client("sqs")

    def depth(self, name: str) -> int:
        url = self._dead_letter_url(name)
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def listed(self, name: str, limit: int = 100) -> list[DeadLetter]:
        """Up to `limit` dead letters, then every one of them visible again at once. On a FIFO queue a message
        group shows at most ten at a time: SQS hands out no later message of a group while earlier ones are held."""
        url = self._dead_letter_url(name)
        held: list[dict[str, Any]] = []
        try:
            for message in self._receive_all(url, limit):
                held.append(message)
        finally:
            self._release(url, held)
        return [_dead_letter(name, message) for message in held]

    def redrive(
        self,
        name: str,
        message_ids: Collection[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        use_move_task: bool = True,
    ) -> RedriveSummary:
        """Every dead letter of `name` (message_ids None) or those named, back to the queue they came from."""
        dead_letter_url = self._dead_letter_url(name)
        source_url = self._deployment.ref(DEAD_LETTER_QUEUES[name][1])
        summary = RedriveSummary(queue=name, dry_run=dry_run)
        if message_ids is None and not dry_run and use_move_task and not dead_letter_url.endswith(".fifo"):
            task = self._start_move_task(dead_letter_url)
            if task is not None:
                summary.move_task = task
                return summary
        wanted = None if message_ids is None else set(message_ids)
        skipped: list[dict[str, Any]] = []
        try:
            for message in self._receive_all(dead_letter_url, None):
                if wanted is not None and message["MessageId"] not in wanted:
                    skipped.append(message)  # held until the end, so that the next receive moves on
                    continue
                if dry_run:
                    summary.would_move.append(message["MessageId"])
                    skipped.append(message)
                else:
                    self._move(message, source_url, dead_letter_url)
                    summary.moved.append(message["MessageId"])
                if progress:
                    progress(len(summary.moved) + len(summary.would_move))
                if wanted is not None and len(summary.moved) + len(summary.would_move) == len(wanted):
                    break
        finally:
            self._release(dead_letter_url, skipped)
        if wanted is not None:
            summary.not_found = sorted(wanted - set(summary.moved) - set(summary.would_move))
        return summary

    # --- SQS ---------------------------------------------------------------------------------------------

    def _dead_letter_url(self, name: str) -> str:
        if name not in DEAD_LETTER_QUEUES:
            raise ValueError(f"no dead-letter queue {name!r}: choose one of {', '.join(DEAD_LETTER_QUEUES)}")
        return self._deployment.ref(DEAD_LETTER_QUEUES[name][0])

    def _receive_all(self, url: str, limit: int | None) -> Iterator[dict[str, Any]]:
        """Every message the queue hands out, each once: what is received stays hidden until released."""
        seen = 0
        while limit is None or seen < limit:
            batch = min(_RECEIVE_BATCH, limit - seen) if limit is not None else _RECEIVE_BATCH
            messages = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=batch,
                VisibilityTimeout=_HOLD_SECONDS,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return
            for message in messages:
                seen += 1
                yield message

    def _release(self, url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), _RECEIVE_BATCH):
            chunk = messages[start : start + _RECEIVE_BATCH]
            self._sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                    for index, message in enumerate(chunk)
                ],
            )

    def _move(self, message: dict[str, Any], source_url: str, dead_letter_url: str) -> None:
        send: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": message["Body"]}
        attributes = message.get("MessageAttributes")
        if attributes:
            send["MessageAttributes"] = attributes
        group = message.get("Attributes", {}).get("MessageGroupId")
        if source_url.endswith(".fifo"):
            send["MessageGroupId"] = group or message["MessageId"]
            send["MessageDeduplicationId"] = f"redrive-{message['MessageId']}"
        self._sqs.send_message(**send)
        self._sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])

    def _start_move_task(self, dead_letter_url: str) -> str | None:
        """SQS's asynchronous move of every message back to its source; None where it does not serve."""
        arn = self._sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        try:
            return str(self._sqs.start_message_move_task(SourceArn=arn)["TaskHandle"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("InvalidAction", "UnsupportedOperation", "NotImplemented"):
                return None
            raise


def _dead_letter(queue: str, message: Mapping[str, Any]) -> DeadLetter:
    body = message.get("Body") or ""
    attributes = message.get("Attributes") or {}
    kind = "unreadable"
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("type"), str):
        kind = parsed["type"]
    elif isinstance(parsed, dict) and isinstance(parsed.get("detail-type"), str):  # an EventBridge event (push)
        kind = parsed["detail-type"]
    message_attributes = {
        name: str(value.get("StringValue", ""))
        for name, value in (message.get("MessageAttributes") or {}).items()
        if value.get("DataType", "").startswith(("String", "Number"))
    }
    sent = attributes.get("SentTimestamp")
    return DeadLetter(
        queue=queue,
        message_id=str(message["MessageId"]),
        kind=kind,
        group=attributes.get("MessageGroupId"),
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        sent_at=int(sent) if sent else None,
        body_bytes=len(body.encode("utf-8")),
        reason=message_attributes.get("reason"),
        attributes=message_attributes,
    )
