"""A store seeded as the initial sync writes it: the demo's fast path for the first load of its large accounts.

The initial sync writes each contact with a consistent read and a conditional UpdateItem; on moto that is about
9 ms of the server's CPU per contact, 90 s for the 10,001 contacts of the demo's two large accounts, and none of
it shows a rule (docs/decisions.md, "make demo"). `seed_initial_sync` writes the same items in bulk: each account
through the store's own adapter (accept the version, as counted when its contacts were not in the store yet, then
applied), each contact as the join of an initial load leaves it (`apply_contact_version` with the account's
fields), 25 to a BatchWriteItem. `tests/integration/test_demo_seed.py` proves the two stores equal at small scale.

What a seed does not write: the accounts' `recent_joiners` and `joiners_overflow_at`, which say which contacts
joined in the last `index_lag_seconds` (the fan-out ignores older ones). A seeded store stands for an initial sync
that finished before that: the next change of a seeded account is fanned out at once, not retried for a minute
while an index that moto never lets lag catches up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_ATTEMPTS = 10


@dataclass(frozen=True)
class Seeded:
    accounts: int
    contacts: int
    requests: int


def seed_initial_sync(
    accounts: Iterable[Mapping[str, Any]],
    contacts: Iterable[Mapping[str, Any]],
    synced_fields: Sequence[str],
    threshold: int,
    segment_size: int,
) -> Seeded:
    """Write `accounts` and their live `contacts` (Salesforce records, as the emulator answers them) the way the
    initial sync's fan-out writes them, on the store of the process's environment (the functions' settings)."""
    from account_sync.adapters.dynamodb import BATCH_WRITE_LIMIT, DynamoAccountRepository
    from account_sync.adapters.dynamodb_models import ContactItem, dynamodb_client
    from account_sync.domain.changes import ChangeDecision
    from account_sync.domain.fields import diff_fields
    from account_sync.domain.records import SyncPath
    from account_sync.domain.timestamps import utc_now
    from account_sync.services.fetch_changes import account_version, contact_version
    from account_sync.settings import load_settings
    from account_sync.wiring import bind_store

    bind_store(load_settings())
    repository = DynamoAccountRepository()
    # The initial sync queues an account ahead of its contacts (one FIFO group): it is counted with none.
    decision = ChangeDecision.from_count(0, threshold, segment_size)
    joined: dict[str, tuple[dict[str, Any], str, int | None]] = {}
    requests = 0
    for record in accounts:
        version = account_version(record, synced_fields)
        changed = [change.field for change in diff_fields({}, version.fields, synced_fields)]
        if version.is_deleted:
            changed = []
        accepted = repository.accept_version(version, decision, changed, SyncPath.FETCH)  # as the initial poll's
        repository.mark_applied(version.account_id, version.system_modstamp)
        requests += 2
        counted = accepted.state.changes_accepted  # what a joiner keeps (`account_changes_at_join`)
        joined[version.account_id] = (dict(version.fields), version.system_modstamp, counted)

    now = utc_now()
    # What a contact takes from its account is the same for all of them: serialized once per account.
    shared = {
        account_id: ContactItem(
            "",
            account_id=account_id,
            account_fields=fields,
            account_modstamp=account_modstamp,
            account_previous_values={},
            account_fields_source="salesforce",
            account_deleted=False,
            account_changes_at_join=counted,
            revision=1,  # its one write: the join
            is_deleted=False,
            updated_at=now,
        ).serialize()
        for account_id, (fields, account_modstamp, counted) in joined.items()
    }
    own = (
        ContactItem.contact_id,
        ContactItem.contact_modstamp,
        ContactItem.first_name,
        ContactItem.last_name,
        ContactItem.email,
    )
    table = ContactItem.Meta.table_name
    batch: list[dict[str, Any]] = []
    written = 0
    for record in contacts:
        version = contact_version(record)
        if version.is_deleted or version.account_id not in shared:
            continue
        item = dict(shared[version.account_id])
        values = (version.contact_id, version.system_modstamp, version.first_name, version.last_name, version.email)
        for attribute, value in zip(own, values, strict=True):
            if value is not None:  # a blank name is left out, as the sync's write removes it
                item[attribute.attr_name] = {attribute.attr_type: attribute.serialize(value)}
        batch.append({"PutRequest": {"Item": item}})
        written += 1
        if len(batch) == BATCH_WRITE_LIMIT:
            requests += _write(dynamodb_client(), table, batch)
            batch = []
    if batch:
        requests += _write(dynamodb_client(), table, batch)
    return Seeded(accounts=len(joined), contacts=written, requests=requests)


def _write(client: Any, table: str, requests: list[dict[str, Any]]) -> int:
    """One BatchWriteItem, and again for what it left unprocessed (moto leaves nothing; DynamoDB may)."""
    pending = requests
    for attempt in range(1, _ATTEMPTS + 1):
        response = client.batch_write_item(RequestItems={table: pending})
        pending = response.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return attempt
    raise RuntimeError(f"{len(pending)} of {len(requests)} items still unprocessed after {_ATTEMPTS} attempts")
