"""Drift detection (issue 12, item 3): does the store still hold what Salesforce has?

A low-cost, rolling comparison: each check reads the next `accounts_per_run` Accounts in Id order (one SOQL query)
and compares each with its account item and a few of its contacts (`contacts_per_account`); the position is kept
between checks, so that every account is compared in turn (complete over `accounts / accounts_per_run` checks)
at one API call a check. A difference is drift only when it cannot be the sync in flight: a version newer than the
store's is drift once it is older than `lag_tolerance_seconds`; at the same version, any difference in a synced
field (a local edit over the version is the store's own newer value, not drift). A drifted account is named with
the problem (field names, never values); it is repaired by a resync of it (services/fetch_changes.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

from account_sync.domain.fields import canonical_value, diff_fields
from account_sync.domain.local_edits import edits_since
from account_sync.domain.records import AccountVersion
from account_sync.domain.timestamps import normalize_timestamp, parse_timestamp
from account_sync.ports import AccountRepository, AccountState, ContactRepository


class AccountPages(Protocol):
    def accounts_after(
        self, fields: Sequence[str], after_id: str | None, limit: int
    ) -> Iterator[Mapping[str, object]]: ...


@dataclass(frozen=True)
class DriftConfig:
    synced_fields: tuple[str, ...]
    accounts_per_run: int = 20
    contacts_per_account: int = 10
    lag_tolerance_seconds: int = 900


@dataclass
class DriftReport:
    checked: int = 0
    contacts_checked: int = 0
    drifted: list[dict[str, str]] = field(default_factory=list)  # account_id and problem: names, never values
    after_id: str | None = None  # where the next check starts; None: from the first account again

    @property
    def drifted_ids(self) -> list[str]:
        return [entry["account_id"] for entry in self.drifted]


def check_drift(
    source: AccountPages,
    accounts: AccountRepository,
    contacts: ContactRepository,
    config: DriftConfig,
    after_id: str | None,
    now: str,
) -> DriftReport:
    report = DriftReport()
    fields = ["Id", "SystemModstamp", *config.synced_fields]
    records = list(source.accounts_after(fields, after_id, config.accounts_per_run))
    for record in records:
        version = AccountVersion(
            account_id=str(record["Id"]),
            system_modstamp=normalize_timestamp(str(record["SystemModstamp"])),
            is_deleted=False,
            fields={name: canonical_value(record.get(name)) for name in config.synced_fields},
        )
        report.checked += 1
        stored = accounts.get(version.account_id)
        problem = _account_problem(version, stored, config, now)
        if problem is None and stored is not None:
            problem, looked_at = _contacts_problem(stored, contacts, config)
            report.contacts_checked += looked_at
        if problem is not None:
            report.drifted.append({"account_id": version.account_id, "problem": problem})
    report.after_id = str(records[-1]["Id"]) if len(records) == config.accounts_per_run else None
    return report


def _account_problem(version: AccountVersion, stored: AccountState | None, config: DriftConfig, now: str) -> str | None:
    settled = (parse_timestamp(now) - parse_timestamp(version.system_modstamp)).total_seconds() > (
        config.lag_tolerance_seconds
    )
    if stored is None or stored.system_modstamp is None:
        return "not in the store" if settled else None
    if version.system_modstamp > stored.system_modstamp:
        return "behind Salesforce" if settled else None
    if version.system_modstamp < stored.system_modstamp:
        return None  # Salesforce changed since this query: the next check sees it
    edited = set(edits_since(stored.local_edits, stored.system_modstamp))
    names = [name for name in config.synced_fields if name not in edited]
    differing = sorted(change.field for change in diff_fields(stored.fields, version.fields, names))
    return f"account fields differ: {', '.join(differing)}" if differing else None


def _contacts_problem(stored: AccountState, contacts: ContactRepository, config: DriftConfig) -> tuple[str | None, int]:
    """Against the account item (in step with Salesforce by then): the first contacts of the account that hold its
    version. A contact at another version is the sync in flight (or behind the index), not compared."""
    looked_at = 0
    synced = set(config.synced_fields)
    for contact in islice(contacts.members(stored.account_id), config.contacts_per_account):
        looked_at += 1
        if contact.account_modstamp != stored.system_modstamp:
            continue
        differing = {c.field for c in diff_fields(contact.account_fields, stored.fields, config.synced_fields)}
        unsynced = set(contact.account_fields) - synced
        if differing or unsynced:
            names = ", ".join(sorted(differing | unsynced))
            return f"contact {contact.contact_id} fields differ: {names}", looked_at
    return None, looked_at
