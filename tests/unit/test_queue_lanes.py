"""A sender's lanes: one `send` call's batches go side by side, and a FIFO group's order is still the order given.

SQS keeps a FIFO group in the order it receives the group's messages. The fake client below receives a batch only
at the end of its call, after a delay drawn by Hypothesis, so the lanes' batches reach it in any interleaving; the
invariants must hold for every one of them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

import pytest
from account_sync.adapters.sqs import SqsBatchSender
from account_sync.contracts import AccountChangeMessage
from account_sync.ports import MessagesRejected, QueueSendError
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.factories import account_id, account_version

FIFO = "https://sqs.us-east-1.amazonaws.com/123456789012/account-sync-test-account-changes.fifo"
STANDARD = "https://sqs.us-east-1.amazonaws.com/123456789012/account-sync-test-activities"


class SlowSqs:
    """Receives each batch at the end of its call, after the next of `delays` (seconds); refuses for good, with a
    retryable failure, every batch holding a message of `failing_group`, and as invalid the bodies in `invalid`."""

    def __init__(self, delays: list[float], failing_group: str | None = None, invalid: frozenset[str] = frozenset()):
        self.delays = delays
        self.failing_group = failing_group
        self.invalid = invalid
        self.received: list[tuple[str | None, str]] = []  # (group, body) in the order SQS took them
        self.calls: list[list[dict]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        with self._lock:
            self.calls.append(Entries)
            delay = self.delays[len(self.calls) % len(self.delays)] if self.delays else 0.0
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(delay)
            if self.failing_group is not None and any(e.get("MessageGroupId") == self.failing_group for e in Entries):
                refused = [{"Id": e["Id"], "SenderFault": False, "Code": "X"} for e in Entries]
                return {"Successful": [], "Failed": refused}
            taken = [e for e in Entries if e["MessageBody"] not in self.invalid]
            with self._lock:
                self.received += [(e.get("MessageGroupId"), e["MessageBody"]) for e in taken]
            return {
                "Successful": [{"Id": e["Id"]} for e in taken],
                "Failed": [
                    {"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents"}
                    for e in Entries
                    if e["MessageBody"] in self.invalid
                ],
            }
        finally:
            with self._lock:
                self.in_flight -= 1


def messages_of(groups: list[int], padding: list[int] | None = None) -> list[AccountChangeMessage]:
    """One message per entry, in the account (the FIFO group) it names; each version of an account a later one."""
    seen: Counter[int] = Counter()
    messages = []
    for index, group in enumerate(groups):
        seen[group] += 1
        extra = {"Description": "x" * padding[index]} if padding else {}
        messages.append(AccountChangeMessage(account_version(group, minute=seen[group], **extra)))
    return messages


def order_per_group(pairs: list[tuple[str | None, str]]) -> dict[str | None, list[str]]:
    groups: dict[str | None, list[str]] = defaultdict(list)
    for group, body in pairs:
        groups[group].append(body)
    return groups


def given_order(messages: list[AccountChangeMessage]) -> dict[str | None, list[str]]:
    return order_per_group([(m.group_id, m.to_body()) for m in messages])


lanes_st = st.integers(min_value=1, max_value=8)
groups_st = st.lists(st.integers(min_value=1, max_value=12), max_size=80)
delays_st = st.lists(st.floats(min_value=0, max_value=0.002), min_size=1, max_size=20)
lane_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lane_settings
@given(groups=groups_st, lanes=lanes_st, delays=delays_st)
def test_every_message_is_queued_once_and_each_group_in_its_order(groups, lanes, delays):
    # given messages of up to 12 groups, interleaved, and batches answered after random delays
    messages, sqs = messages_of(groups), SlowSqs(delays)
    # when they are sent over the lanes
    SqsBatchSender(sqs, FIFO, lanes=lanes).send(messages)
    # then each one reached SQS once, each group in the order given, never more batches in flight than lanes
    assert Counter(body for _, body in sqs.received) == Counter(m.to_body() for m in messages)
    assert order_per_group(sqs.received) == given_order(messages)
    assert sqs.most_in_flight <= lanes
    # and the lanes cost at most one part-filled batch each beyond the fewest batches possible
    assert len(sqs.calls) <= -(-len(messages) // 10) + lanes - 1
    assert all(len(call) <= 10 for call in sqs.calls)


@lane_settings
@given(groups=groups_st, lanes=lanes_st, sizes=st.lists(st.integers(min_value=0, max_value=900), min_size=80))
def test_a_lanes_batches_keep_the_byte_limit(groups, lanes, sizes):
    messages, sqs = messages_of(groups, sizes), SlowSqs([0.0])
    limit = 2_500  # a message is ~200-1,100 bytes here: a batch of 10 would not fit
    SqsBatchSender(sqs, FIFO, lanes=lanes, max_message_bytes=limit).send(messages)
    assert all(sum(len(e["MessageBody"].encode()) for e in call) <= limit for call in sqs.calls)
    assert order_per_group(sqs.received) == given_order(messages)


@lane_settings
@given(groups=groups_st, lanes=lanes_st, delays=delays_st, failing=st.integers(min_value=1, max_value=12))
def test_a_batch_that_keeps_failing_stops_its_group_there_and_is_raised_once_no_lane_is_sending(
    groups, lanes, delays, failing
):
    # given a group whose every batch SQS refuses (a retryable failure)
    messages, sqs = messages_of(groups), SlowSqs(delays, failing_group=account_id(failing))
    sender = SqsBatchSender(sqs, FIFO, lanes=lanes, max_attempts=2, sleep=lambda _: None)
    # when the messages are sent
    if failing in groups:
        with pytest.raises(QueueSendError, match="not queued after 2 attempts"):
            sender.send(messages)
    else:
        sender.send(messages)
    # then no batch is still in flight, and what each group got is the start of its order: no gap, no overtaking
    assert sqs.in_flight == 0
    expected = given_order(messages)
    for group, bodies in order_per_group(sqs.received).items():
        assert bodies == expected[group][: len(bodies)]
    assert account_id(failing) not in order_per_group(sqs.received)


@lane_settings
@given(
    groups=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=60),
    lanes=lanes_st,
    data=st.data(),
)
def test_refused_messages_are_reported_and_every_other_one_is_queued(groups, lanes, data):
    # given some messages SQS refuses as invalid and one larger than the queue takes
    messages = messages_of(groups)
    invalid = data.draw(st.sets(st.sampled_from(range(len(messages)))))
    huge = AccountChangeMessage(account_version(99, minute=1, Name="x" * 300_000))
    sqs = SlowSqs([0.0, 0.001], invalid=frozenset(messages[i].to_body() for i in invalid))
    # when they are sent
    with pytest.raises(MessagesRejected) as refused:
        SqsBatchSender(sqs, FIFO, lanes=lanes, sleep=lambda _: None).send([*messages, huge])
    # then exactly those are reported, each once, and every other one reached SQS once
    assert sorted(id(r.message) for r in refused.value.rejected) == sorted(
        [id(huge), *(id(messages[i]) for i in invalid)]
    )
    kept = [m for i, m in enumerate(messages) if i not in invalid]
    assert Counter(body for _, body in sqs.received) == Counter(m.to_body() for m in kept)


@lane_settings
@given(count=st.integers(min_value=0, max_value=95), lanes=lanes_st, delays=delays_st)
def test_a_standard_queue_gets_every_message_once_in_full_batches(count, lanes, delays):
    # given messages for a standard queue (no group, no order to keep)
    messages, sqs = messages_of(list(range(1, count + 1))), SlowSqs(delays)
    SqsBatchSender(sqs, STANDARD, lanes=lanes).send(messages)
    assert Counter(body for _, body in sqs.received) == Counter(m.to_body() for m in messages)
    assert all(group is None for group, _ in sqs.received)
    # then the lanes take runs of 10: no more batches than one lane would send
    assert len(sqs.calls) == -(-count // 10)


def test_an_sdk_error_in_one_lane_stops_the_others_before_their_next_batch():
    # given four groups of 100 messages on four lanes, all four first batches in flight together; SQS fails one
    # group's with an SDK error at once and answers the others long after
    all_in_flight = threading.Barrier(4, timeout=5)

    class OneGroupFails(SlowSqs):
        def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
            if len(self.calls) < 3 or Entries[0]["MessageGroupId"] == account_id(1):
                all_in_flight.wait()
            if Entries[0]["MessageGroupId"] == account_id(1):
                raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessageBatch")
            time.sleep(0.2)  # the failing lane has raised long before this batch is answered
            return super().send_message_batch(QueueUrl, Entries)

    sqs = OneGroupFails([0.0])
    messages = messages_of([1 + n % 4 for n in range(400)])
    # when they are sent
    with pytest.raises(QueueSendError, match="ServiceUnavailable"):
        SqsBatchSender(sqs, FIFO, lanes=4, max_attempts=1).send(messages)
    # then each other lane finished the batch it was sending and sent no other
    assert sqs.in_flight == 0
    assert Counter(group for group, _ in sqs.received) == {account_id(2): 10, account_id(3): 10, account_id(4): 10}


def test_one_lane_sends_on_the_calling_thread():
    callers: set[str] = set()

    class Recording(SlowSqs):
        def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
            callers.add(threading.current_thread().name)
            return super().send_message_batch(QueueUrl, Entries)

    SqsBatchSender(Recording([0.0]), FIFO).send(messages_of(list(range(1, 40))))
    assert callers == {threading.current_thread().name}


def test_a_sender_needs_a_lane():
    with pytest.raises(ValueError, match="at least one lane"):
        SqsBatchSender(SlowSqs([0.0]), FIFO, lanes=0)
