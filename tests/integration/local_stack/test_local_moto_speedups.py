"""moto's FIFO deduplication, looked up in an index (`moto_fixes`), keeps moto's rule exactly."""

from __future__ import annotations


def _fifo_queue(sqs, content_based: bool = False) -> str:
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true" if content_based else "false"}
    return sqs.create_queue(QueueName="dedup.fifo", Attributes=attributes)["QueueUrl"]


def _bodies(sqs, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return sorted(message["Body"] for message in messages)


def _send(sqs, url: str, body: str, dedup: str | None = None, group: str = "g") -> None:
    entry = {"QueueUrl": url, "MessageBody": body, "MessageGroupId": group}
    if dedup is not None:
        entry["MessageDeduplicationId"] = dedup
    sqs.send_message(**entry)


def test_a_duplicate_within_five_minutes_is_dropped_whatever_its_group(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs)
    _send(sqs, url, "first", dedup="d1", group="a")
    _send(sqs, url, "again", dedup="d1", group="b")
    _send(sqs, url, "other", dedup="d2", group="b")
    assert _bodies(sqs, url) == ["first", "other"]


def test_a_deleted_message_no_longer_deduplicates_as_in_moto(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs)
    _send(sqs, url, "first", dedup="d1")
    received = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
    _send(sqs, url, "after delete", dedup="d1")
    assert _bodies(sqs, url) == ["after delete"]


def test_a_purge_forgets_the_deduplication_ids(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs)
    _send(sqs, url, "first", dedup="d1")
    sqs.purge_queue(QueueUrl=url)
    _send(sqs, url, "after purge", dedup="d1")
    assert _bodies(sqs, url) == ["after purge"]


def test_content_based_deduplication_still_applies(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs, content_based=True)
    _send(sqs, url, "same")
    _send(sqs, url, "same")
    _send(sqs, url, "different")
    assert _bodies(sqs, url) == ["different", "same"]
