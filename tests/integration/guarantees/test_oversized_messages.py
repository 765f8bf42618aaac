"""Guarantee 9: a message larger than the queue takes (an account with huge field values) never retries forever.

The queues take 256 KiB a message (template.yaml). JSON escapes a non-ASCII character in 6 bytes, an emoji in 12,
so a 32,000-character Description can make an account change of 384 KB. SQS would refuse it, and with it its
whole batch, on every attempt: the fetch would fail every run at that record and the watermark would never move
again. Instead the fetch sets that one change aside, logs its record id and its largest fields (never values),
counts it (`RejectedChanges`, alarmed), and queues the rest of the window. On the fan-out side, a Change Data
Value batch over the limit is split, and a single change too large for any message (old and new values of a long
text) is written to the activities table directly: nothing is lost, nothing is retried.
"""

from __future__ import annotations

from account_sync.adapters.dynamodb import DynamoSyncStateStore
from account_sync.adapters.dynamodb_models import ActivityItem

from tests.integration.guarantees.conftest import SCHEDULE_EVENT, account_item, contact_fields

SYNCED = "Name,Industry,BillingCountry,Description"


def test_an_account_too_large_for_the_queue_is_set_aside_with_an_alarm_and_the_window_goes_on(
    salesforce, fetch, pipeline, caplog, capsys
):
    # given three changed accounts with a contact each, the second with a Description of 32,000 emoji
    pipeline.runtime.add_env({"SYNCED_ACCOUNT_FIELDS": SYNCED})
    accounts = salesforce.bulk_create(
        "Account",
        [
            {"Name": "Small", "Description": "fine"},
            {"Name": "Huge", "Description": "🚀" * 32_000},
            {"Name": "Also small", "Description": "fine"},
        ],
    )
    contacts = salesforce.bulk_create(
        "Contact", [{"LastName": f"C{n}", "AccountId": a} for n, a in enumerate(accounts)]
    )
    # when the fetch runs, and the pipeline applies what it queued
    report = pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload
    totals = pipeline.drain()
    # then the huge account was set aside and reported, the others were synced, and the watermark moved on
    assert report["outcome"] == "completed" and report["queued"]["Account"] == 2
    (rejected,) = report["rejected"]
    assert rejected["record_id"] == accounts[1] and next(iter(rejected["largest_fields"])) == "Description"
    (error,) = [r for r in caplog.records if r.getMessage() == "change not queued: it can never be applied"]
    assert error.levelname == "ERROR" and error.record_id == accounts[1] and "🚀" not in error.reason
    assert '"RejectedChanges":[1.0]' in capsys.readouterr().out
    assert DynamoSyncStateStore().load_watermark("Account") == report["window_end"]
    assert totals.empty and pipeline.depth("AccountChangesDeadLetterQueue") == 0
    synced = contact_fields([contacts[0], contacts[2]])
    assert [fields["Description"] for fields in synced.values()] == ["fine", "fine"]
    assert contact_fields([contacts[1]])[contacts[1]] == {}
    # and when the account's description is cut down in Salesforce, the next run syncs it
    salesforce.update("Account", accounts[1], {"Description": "🚀" * 100})
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).payload["rejected"] == []
    pipeline.drain()
    assert contact_fields([contacts[1]])[contacts[1]]["Description"] == "🚀" * 100
    assert account_item(accounts[1]).applied_modstamp is not None


def test_a_change_data_value_too_large_for_any_message_is_written_whole_without_a_retry(salesforce, fetch, pipeline):
    # given an account of three contacts with a 25,000-character Japanese description (150 KB as a message), synced
    pipeline.runtime.add_env({"SYNCED_ACCOUNT_FIELDS": SYNCED})
    (account,) = salesforce.bulk_create("Account", [{"Name": "Kaisha", "Description": "東" * 25_000}])
    contacts = salesforce.bulk_create("Contact", [{"LastName": f"C{n}", "AccountId": account} for n in range(3)])
    pipeline.invoke("fetch_changes", SCHEDULE_EVENT)
    pipeline.drain()
    # when the description changes: each contact's activity holds both, 300 KB, more than a message takes
    salesforce.update("Account", account, {"Description": "京" * 25_000})
    pipeline.invoke("fetch_changes", SCHEDULE_EVENT)
    totals = pipeline.drain()
    # then the fan-out succeeded the first time, and each contact has its activity, whole, once
    assert totals.empty and totals.failed == 0 and pipeline.depth("AccountChangesDeadLetterQueue") == 0
    assert {fields["Description"] for fields in contact_fields(contacts).values()} == {"京" * 25_000}
    activities = [item for item in ActivityItem.scan() if item.attribute_name == "Description"]
    assert sorted(item.subject_id for item in activities) == sorted(contacts)
    assert {(item.old_value, item.new_value) for item in activities} == {("東" * 25_000, "京" * 25_000)}
    assert pipeline.runtime.stats["ActivityLogFunction"].invocations == 0  # written by the fan-out, not queued
