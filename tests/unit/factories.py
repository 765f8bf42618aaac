"""Test data: stamps, account versions and contacts, with defaults that say only what a test cares about."""

from __future__ import annotations

from account_sync.domain.records import AccountVersion, ContactVersion

SYNCED = ("Name", "Industry", "BillingCountry")


def stamp(minute: int, second: int = 0, millis: int = 0) -> str:
    return f"2026-11-27T10:{minute:02d}:{second:02d}.{millis:03d}Z"


def account_id(n: int = 1) -> str:
    return f"001{n:015d}"


def contact_id(n: int) -> str:
    return f"003{n:015d}"


def account_version(n: int = 1, minute: int = 1, deleted: bool = False, **fields: object) -> AccountVersion:
    values = {"Name": f"Account {n}", "Industry": "Energy", "BillingCountry": "France"}
    values.update(fields)  # type: ignore[arg-type]
    return AccountVersion(account_id(n), stamp(minute), deleted, values)  # type: ignore[arg-type]


def contact_version(n: int, account: int | None = 1, minute: int = 1, deleted: bool = False) -> ContactVersion:
    return ContactVersion(
        contact_id=contact_id(n),
        system_modstamp=stamp(minute),
        is_deleted=deleted,
        account_id=account_id(account) if account is not None else None,
        first_name="Ada",
        last_name=f"Contact {n}",
        email=f"c{n}@example.com",
    )
