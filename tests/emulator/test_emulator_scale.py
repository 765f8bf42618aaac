"""Demo scale: ~300 accounts and ~40,000 contacts load and page quickly."""

from __future__ import annotations

import time

import pytest

from .factories import account_values, contact_values

pytestmark = pytest.mark.integration


def test_forty_thousand_contacts_load_and_page_in_a_few_seconds(make_emulator, connect):
    # given the demo's volume
    emulator = make_emulator(page_size=2000)
    started = time.perf_counter()
    accounts = emulator.bulk_create("Account", [account_values() for _ in range(300)])
    contacts = emulator.bulk_create("Contact", [contact_values(accounts[i % len(accounts)]) for i in range(40_000)])
    loaded = time.perf_counter() - started

    # when every contact is read through queryAll pages of 2000
    sf = connect(emulator)
    emulator.reset_request_log()
    started = time.perf_counter()
    records = list(
        sf.query_all_iter(
            "SELECT Id, AccountId, FirstName, LastName, Email, SystemModstamp, IsDeleted FROM Contact "
            "ORDER BY SystemModstamp ASC, Id ASC",
            include_deleted=True,
        )
    )
    paged = time.perf_counter() - started

    # then all of them, in 20 pages, fast
    assert len(records) == len(contacts) == 40_000
    assert emulator.request_log.count(("GET", "query_more")) == 19
    assert loaded < 10
    assert paged < 20
