"""pynamodb models of the four tables. They mirror template.yaml (a test checks that they agree).

Table names come from the settings at cold start (`bind_table_names`), never from module import.
The calls pynamodb's public API cannot make as the store needs them go through `dynamodb_client()`, a boto3
client (docs/decisions.md, "pynamodb through its public API").
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model


class AccountMembershipIndex(GlobalSecondaryIndex["ContactItem"]):
    """`by_account_keys`: the keys of an account's live contacts (sparse: deleted or account-less contacts are
    absent). Keys only, so that writing a contact's account fields never writes the index: the fan-out reads the
    members' items from the table by these keys (BatchGetItem, strongly consistent)."""

    class Meta:
        index_name = "by_account_keys"
        projection = KeysOnlyProjection()

    account_id = UnicodeAttribute(hash_key=True)
    contact_id = UnicodeAttribute(range_key=True)


class ContactItem(Model):
    class Meta:
        table_name = "contacts"
        max_pool_connections = 10  # pynamodb's default; the fan-out sizes it to its writer threads

    contact_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute(null=True)
    first_name = UnicodeAttribute(null=True)
    last_name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    contact_modstamp = UnicodeAttribute(null=True)
    account_fields = MapAttribute[str, object](default=dict)
    account_modstamp = UnicodeAttribute(null=True)
    # The outbox, per field: the change that wrote it and the value before (docs/data-model.md)
    account_previous_values = MapAttribute[str, object](null=True)
    account_fields_source = UnicodeAttribute(null=True)
    account_deleted = BooleanAttribute(default=False)
    # The account's changes_accepted when the contact joined it: changes accepted up to then are held, never owed
    account_changes_at_join = NumberAttribute(null=True)
    # Account Sync's writes of the item (ADD 1 each): a fan-out write lands only on the contact as it read it
    revision = NumberAttribute(null=True)
    is_deleted = BooleanAttribute(default=False)
    deleted_from_account_id = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    # Convert Person: a person of the store linked to the Salesforce records its conversion created
    conversion_key = UnicodeAttribute(null=True)
    converted_contact_id = UnicodeAttribute(null=True)
    converted_account_id = UnicodeAttribute(null=True)
    converted_opportunity_id = UnicodeAttribute(null=True)
    converted_at = UnicodeAttribute(null=True)
    converted_by = UnicodeAttribute(null=True)

    by_account = AccountMembershipIndex()


class AccountItem(Model):
    class Meta:
        table_name = "accounts"

    account_id = UnicodeAttribute(hash_key=True)
    fields = MapAttribute[str, object](default=dict)
    system_modstamp = UnicodeAttribute(null=True)
    applied_modstamp = UnicodeAttribute(null=True)
    segments_plan = UnicodeAttribute(null=True)
    segments_total = NumberAttribute(null=True)
    segments_done = UnicodeSetAttribute(null=True)  # legacy: progress now lives on the plan's item (sync-state)
    segmented = BooleanAttribute(null=True)
    activity_logging = UnicodeAttribute(null=True)
    contacts_counted = NumberAttribute(null=True)
    changed_fields = ListAttribute[str](null=True)
    local_edits = MapAttribute[str, object](null=True)  # field -> the mark of its last edit (docs/data-model.md)
    recent_joiners = UnicodeSetAttribute(null=True)  # "<contact id>|<joined at>"
    joiners_overflow_at = UnicodeAttribute(null=True)
    sync_path = UnicodeAttribute(null=True)  # the path that applied `system_modstamp` first (push, fetch...)
    # older versions superseded while their segments were queued (docs/data-model.md); cleared once applied
    superseded = ListAttribute[object](null=True)
    # changes (versions, local edits) accepted: a leaving contact's write is conditioned on it (docs/data-model.md)
    changes_accepted = NumberAttribute(null=True)
    is_deleted = BooleanAttribute(default=False)
    updated_at = UnicodeAttribute(null=True)


class ActivityItem(Model):
    class Meta:
        table_name = "activities"

    subject_id = UnicodeAttribute(hash_key=True)
    activity_key = UnicodeAttribute(range_key=True)
    activity_type = UnicodeAttribute()
    attribute_name = UnicodeAttribute(null=True)
    old_value = UnicodeAttribute(null=True)
    new_value = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    source = UnicodeAttribute()
    account_id = UnicodeAttribute()
    system_modstamp = UnicodeAttribute()
    activity_at = UnicodeAttribute()
    expires_at = NumberAttribute(null=True)
    contacts_counted = NumberAttribute(null=True)
    threshold = NumberAttribute(null=True)
    changed_fields = ListAttribute[str](null=True)
    sync_path = UnicodeAttribute(null=True)  # which path applied the change (push, fetch, sweep, resync, api)


class SyncStateItem(Model):
    class Meta:
        table_name = "sync-state"

    state_id = UnicodeAttribute(hash_key=True)
    watermark = UnicodeAttribute(null=True)
    owner = UnicodeAttribute(null=True)
    lease_expires_at = NumberAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    last_run = MapAttribute[str, object](null=True)
    # `idempotency#<edit id>`: what an Idempotency-Key of the marketing API stands for (adapters/idempotency.py)
    fingerprint = UnicodeAttribute(null=True)
    edit_id = UnicodeAttribute(null=True)
    account_id = UnicodeAttribute(null=True)
    edited_at = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # the table's TTL attribute
    # `segments#<account id>#<plan id>`: the segments of a version's plan done so far (docs/data-model.md)
    segments_done = NumberSetAttribute(null=True)
    segments_total = NumberAttribute(null=True)
    # the window in progress of a stream (fetch_changes): its bounds and where to resume it
    window_start = UnicodeAttribute(null=True)
    window_end = UnicodeAttribute(null=True)
    position = MapAttribute[str, object](null=True)
    # on usage#salesforce: the org's API usage as last reported, and when
    api_used = NumberAttribute(null=True)
    api_limit = NumberAttribute(null=True)
    measured_at = UnicodeAttribute(null=True)
    # on fields#account: the SyncedAccountFields the fetch last read Accounts with (a change starts a resync)
    synced_fields = ListAttribute[str](null=True)
    # on drift#sample: the Account id the next drift check starts after (the last check is in last_run)
    after_id = UnicodeAttribute(null=True)


ALL_MODELS: dict[str, type[Model]] = {
    "ContactsTable": ContactItem,
    "AccountsTable": AccountItem,
    "ActivitiesTable": ActivityItem,
    "SyncStateTable": SyncStateItem,
}


class _Client:
    """The boto3 client, made lazily (after the settings and the environment are in place) and dropped with the
    models' connections whenever they are rebound."""

    client: Any = None
    pool_connections = 10  # pynamodb's default; the fan-out sizes it to its writer threads


def dynamodb_client() -> Any:
    """The boto3 DynamoDB client of this process (typed Any: the project ships no boto3 stubs). botocore's
    parameter validation is off: it walked every nested value of each request against the service model, ~0.12 ms
    of CPU a contact write (a quarter of the client's), and the requests are written by pynamodb's typed
    attributes; a malformed one is refused by DynamoDB instead (ValidationException, a permanent failure, `translate`).
    docs/decisions.md, Target 4, amended 2026-12-05."""
    if _Client.client is None:
        import boto3
        from botocore.config import Config

        config = Config(max_pool_connections=_Client.pool_connections, parameter_validation=False)
        _Client.client = boto3.client("dynamodb", config=config)
    return _Client.client


def reset_dynamodb_client() -> None:
    """Drop the cached client: the next call follows the environment of now (a test's endpoint, for one)."""
    _Client.client = None


def bind_table_names(contacts: str, accounts: str, activities: str, sync_state: str) -> None:
    """Point the models at the deployed tables (called once per cold start with the settings)."""
    ContactItem.Meta.table_name = contacts
    AccountItem.Meta.table_name = accounts
    ActivityItem.Meta.table_name = activities
    SyncStateItem.Meta.table_name = sync_state
    for model in ALL_MODELS.values():
        model._connection = None  # a new table name needs a new connection
    reset_dynamodb_client()


def size_contacts_connection_pool(connections: int) -> None:
    """Give the contacts' DynamoDB client as many pooled connections as the fan-out has writer threads. botocore
    never makes a thread wait for a connection: beyond its pool's size (pynamodb's default: 10) it opens a new one
    and throws it away after one request, so 6 of 16 concurrent writes would pay a TCP and TLS handshake each."""
    ContactItem.Meta.max_pool_connections = max(connections, 10)
    ContactItem._connection = None
    _Client.pool_connections = max(connections, 10)
    reset_dynamodb_client()
