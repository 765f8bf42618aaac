"""The demo's seed (`local_stack.seed`) writes the store the initial sync writes: the same accounts and contacts,
attribute for attribute, but for those that say when (`updated_at`) and the recent joiners (which the fan-out
ignores once older than the index lag; a seeded store stands for a sync that finished before). And a store
seeded with some accounts, then synced, is the store a sync alone writes, the seeded contacts left unwritten."""

from __future__ import annotations

import random
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters
from local_stack.demo import SCALES, Story, load_salesforce
from local_stack.sandbox import SyncSandbox
from local_stack.seed import seed_initial_sync

SMALL = SCALES["small"]
WHEN = {"updated_at", "recent_joiners", "joiners_overflow_at"}
TABLES = ("ContactsTable", "AccountsTable", "ActivitiesTable", "SyncStateTable")


def _items(dynamodb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every item of the table by its hash key, without the attributes that say when."""
    items: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            key = item.get("contact_id", item.get("account_id"))
            items[key["S"]] = {name: value for name, value in item.items() if name not in WHEN}
    return items


def _empty(dynamodb: Any, table: str) -> None:
    keys = [a["AttributeName"] for a in dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]]
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=table, Key={name: item[name] for name in keys})


@pytest.fixture(scope="module")
def org_synced():
    """A small org (the demo's data set at its small scale), synced once by the real initial sync; yields the
    running sandbox, the story and the store the sync wrote (contacts, accounts)."""
    import boto3

    parameters.clear_caches()  # a secret cached by an earlier test's functions in this process
    overrides = {"ActivityThreshold": SMALL.threshold, "LookbackSeconds": 0, "LogLevel": "ERROR"}
    with SyncSandbox(parameter_overrides=overrides, separate_process=False) as sandbox:
        story = Story()
        load_salesforce(sandbox, SMALL, random.Random(3), story)
        assert sandbox.run_cycle().drain.empty
        dynamodb = boto3.client("dynamodb")
        names = {logical_id: sandbox.local.resources.ref(logical_id) for logical_id in TABLES}  # type: ignore[union-attr]
        synced = (_items(dynamodb, names["ContactsTable"]), _items(dynamodb, names["AccountsTable"]))
        yield sandbox, story, synced, dynamodb, names


def _seed(sandbox: SyncSandbox, accounts: set[str] | None) -> None:
    salesforce = sandbox.salesforce
    resources = sandbox.local.resources
    assert resources is not None
    synced = resources.parameters["SyncedAccountFields"]
    seed_initial_sync(
        [a for a in salesforce.records("Account") if accounts is None or a["Id"] in accounts],
        [c for c in salesforce.records("Contact") if accounts is None or c["AccountId"] in accounts],
        str(synced).split(",") if isinstance(synced, str) else list(synced),
        threshold=SMALL.threshold,
        segment_size=int(resources.parameters["FanOutSegmentSize"]),
    )


def test_a_seeded_store_holds_what_the_initial_sync_wrote(org_synced):
    sandbox, _, (contacts, accounts), dynamodb, names = org_synced
    assert len(contacts) > 100 and len(accounts) == SMALL.accounts  # the whole org was synced
    # given the store emptied, the fetch's state with it
    for table in names.values():
        _empty(dynamodb, table)
    # when the whole org is seeded
    _seed(sandbox, None)
    # then every account and contact item is the sync's, attribute for attribute
    assert _items(dynamodb, names["AccountsTable"]) == accounts
    assert _items(dynamodb, names["ContactsTable"]) == contacts


def test_a_sync_after_a_seed_writes_what_a_sync_alone_writes_and_none_of_the_seeded_contacts(org_synced):
    sandbox, story, (contacts, accounts), dynamodb, names = org_synced
    for table in names.values():
        _empty(dynamodb, table)
    # given the two large accounts seeded, as the demo does
    large = {story.at_threshold, story.above_threshold}
    _seed(sandbox, large)
    sandbox.local.server.reset_request_counts()
    # when the initial sync runs over the whole org
    assert sandbox.run_cycle().drain.empty
    # then the store is the one the sync alone wrote
    assert _items(dynamodb, names["AccountsTable"]) == accounts
    assert _items(dynamodb, names["ContactsTable"]) == contacts
    # and it wrote only the contacts that were not seeded
    writes = sum(
        row["count"]
        for row in sandbox.local.server.request_counts()
        if row["action"] == "UpdateItem" and row["resource"] == names["ContactsTable"]
    )
    seeded = sum(1 for item in contacts.values() if item["account_id"]["S"] in large)
    assert seeded == 2 * SMALL.threshold + 1
    assert writes == len(contacts) - seeded
