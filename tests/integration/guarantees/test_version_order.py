"""Guarantee 2: the store ends at the newest account version, whatever order versions are processed in.

An older version processed after a newer one writes nothing and logs nothing. Two fan-outs of two versions of one
account running at once (a DLQ redrive next to the live queue, or a message whose visibility expired while a slow
invocation still held it) end at the newer one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
from account_sync.adapters.dynamodb import (
    DynamoAccountRepository,
    DynamoActivityStore,
    DynamoContactRepository,
)
from account_sync.adapters.sqs import SqsActivityPublisher, SqsBatchSender, SqsChangePublisher
from account_sync.contracts import AccountChangeMessage
from account_sync.domain.timestamps import utc_now
from account_sync.services.fan_out import FanOut, FanOutConfig
from account_sync.settings import load_settings

from tests.integration.guarantees.conftest import account_item, activity_keys, contact_fields, given_contacts
from tests.unit.factories import account_id, account_version, stamp


def test_an_older_version_processed_after_a_newer_one_writes_and_logs_nothing(pipeline, caplog):
    # given an account with two contacts, and its 10:05 version queued before its 10:04 version
    contacts = given_contacts(account_id(1), 2)
    newer = account_version(1, minute=5, Industry="Newer")
    older = account_version(1, minute=4, Industry="Older")
    pipeline.queue_changes([AccountChangeMessage(newer), AccountChangeMessage(older)])
    # when both are handled
    totals = pipeline.drain()
    # then the store holds the newer version, its activities only, and the older one was reported stale
    assert totals.empty and totals.failed == 0
    assert {fields["Industry"] for fields in contact_fields(contacts).values()} == {"Newer"}
    assert account_item(account_id(1)).system_modstamp == stamp(5)
    assert {key.split("#")[0] for _, key in activity_keys()} == {stamp(5)}
    outcomes = [r.outcome for r in caplog.records if r.getMessage() == "change applied"]
    assert outcomes == ["new", "stale"]


class PausedBeforeContacts(DynamoContactRepository):
    """The contacts of a fan-out that stops, after its version was accepted, until `resume` runs."""

    def __init__(self, resume) -> None:
        super().__init__()
        self._resume = resume

    def members(self, *args, **kwargs):
        self._resume()
        return super().members(*args, **kwargs)


def fan_out(contacts: DynamoContactRepository, sqs) -> FanOut:
    """The fan-out service on the real adapters, as `wiring.build_fan_out` assembles it."""
    settings = load_settings()
    return FanOut(
        accounts=DynamoAccountRepository(),
        contacts=contacts,
        changes=SqsChangePublisher(SqsBatchSender(sqs, settings.account_changes_queue_url)),
        activities=SqsActivityPublisher(SqsBatchSender(sqs, settings.activity_queue_url)),
        activity_store=DynamoActivityStore(),
        config=FanOutConfig(settings.synced_account_fields, segment_size=settings.fanout_segment_size),
        now=utc_now,
    )


def test_two_fan_outs_of_two_versions_at_once_end_at_the_newer_one(pipeline):
    # given an account with three contacts, and the fan-out of its 10:04 version stopped right after it accepted
    # the version, while the fan-out of its 10:05 version runs from start to end
    contacts = given_contacts(account_id(1), 3)
    older = account_version(1, minute=4, Industry="Older")
    newer = account_version(1, minute=5, Industry="Newer")
    sqs = boto3.client("sqs")
    with ThreadPoolExecutor(max_workers=1) as other_invocation:

        def run_the_newer_version_meanwhile() -> None:
            other_invocation.submit(fan_out(DynamoContactRepository(), sqs).apply_account_change, newer).result()

        slow = fan_out(PausedBeforeContacts(run_the_newer_version_meanwhile), sqs)
        # when the older one goes on after the newer one has finished
        report = slow.apply_account_change(older)
    pipeline.drain()
    # then the newer one, accepted while the older one was not applied yet, went in segments behind it (never at
    # once, ahead of it): the older one wrote its contacts with the activities it owed (issue 10, 2.1), the newer
    # one's segments overwrote them, and the account is the newer version, applied
    assert report.outcome == "new" and report.contacts_written == 3
    assert {fields["Industry"] for fields in contact_fields(contacts).values()} == {"Newer"}
    account = account_item(account_id(1))
    assert (account.system_modstamp, account.applied_modstamp) == (stamp(5), stamp(5))
    assert {key.split("#")[0] for _, key in activity_keys()} == {stamp(4), stamp(5)}
