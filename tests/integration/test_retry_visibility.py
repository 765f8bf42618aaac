"""`SqsVisibility` on moto: a throttled message handed back becomes visible again after the delay it is given, not
the queue's visibility timeout; an entry SQS refuses is said, not hidden."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from account_sync.adapters.sqs import SqsVisibility
from account_sync.ports import QueueSendError


def a_record(message_id: str, body: str, receipt_handle: str) -> SimpleNamespace:
    """What SqsVisibility reads of a `queue_records.QueueRecord`. That module is not imported here: it creates
    Powertools' Metrics at import, which must happen under the functions' POWERTOOLS_* environment."""
    return SimpleNamespace(message_id=message_id, body=body, receipt_handle=receipt_handle)


def _received(sqs, url: str) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])


def test_a_message_handed_back_with_zero_seconds_is_received_again_at_once_with_its_count_grown(aws):
    # given a queue whose visibility timeout is 540 s, and a message received from it
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="changes", Attributes={"VisibilityTimeout": "540"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="throttled")
    (message,) = _received(sqs, url)
    assert _received(sqs, url) == []  # in flight for 540 s
    # when the consumer hands it back for 0 s (the client made only now)
    made: list[object] = []
    visibility = SqsVisibility(None, url, make_client=lambda: made.append(1) or aws.client("sqs"))
    record = a_record(message["MessageId"], message["Body"], receipt_handle=message["ReceiptHandle"])
    visibility.change_visibility([record], 0)
    # then it is received again at once, its receive count grown
    (again,) = _received(sqs, url)
    assert again["MessageId"] == message["MessageId"] and again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert made == [1]


def test_an_entry_sqs_refuses_is_an_error_the_consumer_logs(aws):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="changes")["QueueUrl"]
    record = a_record("m1", "body", receipt_handle="not-a-receipt-handle")
    with pytest.raises(QueueSendError, match="ChangeMessageVisibility refused for 1 messages"):
        SqsVisibility(sqs, url).change_visibility([record], 5)
