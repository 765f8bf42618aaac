"""SOQL over REST: query / queryAll / query_more, ordering, the keyset form, errors."""

# These tests write SOQL text on purpose: it is what the emulator parses.
# ruff: noqa: S608

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from salesforce_emulator import format_datetime, parse_datetime
from simple_salesforce import SalesforceMalformedRequest
from simple_salesforce.format import format_soql

from .factories import account_values, contact_values, opportunity_values

pytestmark = pytest.mark.integration

ACCOUNT_FIELDS = "Id, SystemModstamp, IsDeleted, Name, Industry"


def soql_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def window_query(start: datetime, end: datetime) -> str:
    return (
        f"SELECT {ACCOUNT_FIELDS} FROM Account WHERE SystemModstamp > {soql_datetime(start)} "
        f"AND SystemModstamp <= {soql_datetime(end)} ORDER BY SystemModstamp ASC, Id ASC"
    )


def keyset_query(stamp: str, after_id: str, end: datetime) -> str:
    x = soql_datetime(parse_datetime(stamp))
    return (
        f"SELECT {ACCOUNT_FIELDS} FROM Account WHERE (SystemModstamp > {x} OR (SystemModstamp = {x} "
        f"AND Id > '{after_id}')) AND SystemModstamp <= {soql_datetime(end)} ORDER BY SystemModstamp ASC, Id ASC"
    )


def test_a_query_is_served_in_pages_with_next_records_urls(emulator, sf):
    # given 12 accounts and a page size of 5
    ids = emulator.bulk_create("Account", [account_values() for _ in range(12)])

    # when the query is paged with query + query_more(identifier_is_url=True)
    first = sf.query("SELECT Id, Name FROM Account ORDER BY Id")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)

    # then three pages of 5, 5 and 2 records, the last one done and without nextRecordsUrl
    assert [len(p["records"]) for p in (first, second, third)] == [5, 5, 2]
    assert [p["totalSize"] for p in (first, second, third)] == [12, 12, 12]
    assert [p["done"] for p in (first, second, third)] == [False, False, True]
    assert re.fullmatch(r"/services/data/v62\.0/query/01g[A-Za-z0-9]{15}-5", first["nextRecordsUrl"])
    assert second["nextRecordsUrl"].endswith("-10")
    assert "nextRecordsUrl" not in third
    assert [r["Id"] for p in (first, second, third) for r in p["records"]] == ids
    assert first["records"][0]["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v62.0/sobjects/Account/{ids[0]}",
    }


def test_a_cursor_is_a_snapshot_taken_when_the_query_runs(emulator, sf):
    # given a query whose first page was read
    ids = emulator.bulk_create("Account", [account_values(Industry="Energy") for _ in range(7)])
    first = sf.query("SELECT Id, Industry FROM Account WHERE Industry = 'Energy' ORDER BY Id")

    # when records change before the next page is read
    emulator.update("Account", ids[6], {"Industry": "Retail"})
    emulator.create("Account", account_values(Industry="Energy"))

    # then the next page shows the result set as it was
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert [r["Id"] for r in rest["records"]] == ids[5:]
    assert rest["records"][-1]["Industry"] == "Energy"


def test_query_all_iter_walks_every_page(emulator, sf):
    emulator.bulk_create("Account", [account_values() for _ in range(23)])

    records = list(sf.query_all_iter("SELECT Id FROM Account"))

    assert len(records) == 23


def test_query_all_includes_deleted_rows_and_query_does_not(emulator, sf):
    # given an account deleted with its contact (the delete cascades)
    kept = emulator.create("Account", account_values(Name="Kept"))
    gone = emulator.create("Account", account_values(Name="Gone"))
    contact = emulator.create("Contact", contact_values(gone))
    emulator.delete("Account", gone)

    # when both endpoints are asked
    live = sf.query("SELECT Id, IsDeleted FROM Account")
    everything = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)
    contacts = sf.query_all("SELECT Id, IsDeleted FROM Contact", include_deleted=True)

    # then queryAll has the deleted rows, flagged
    assert [r["Id"] for r in live["records"]] == [kept]
    assert {r["Id"]: r["IsDeleted"] for r in everything["records"]} == {kept: False, gone: True}
    assert [(r["Id"], r["IsDeleted"]) for r in contacts["records"]] == [(contact, True)]


def test_query_all_cursors_page_too(emulator, sf):
    ids = emulator.bulk_create("Account", [account_values() for _ in range(8)])
    emulator.delete("Account", ids[0])

    first = sf.query("SELECT Id FROM Account", include_deleted=True)
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)

    assert first["totalSize"] == 8
    assert [r["Id"] for r in first["records"] + rest["records"]] == ids
    assert ("GET", "queryAll") in emulator.request_log
    assert ("GET", "query_more") in emulator.request_log


def test_the_window_query_of_the_fetch_orders_by_stamp_then_id(emulator, sf):
    # given accounts changed in an order different from their creation order
    start = emulator.clock.now() - timedelta(milliseconds=1)  # the window's start is exclusive
    ids = emulator.bulk_create("Account", [account_values() for _ in range(4)])
    emulator.update("Account", ids[0], {"Industry": "Retail"})
    end = emulator.clock.now() + timedelta(seconds=1)

    # when the window is queried the way the project does
    records = sf.query_all(window_query(start, end), include_deleted=True)["records"]

    # then the records come ordered by (SystemModstamp, Id), with the fields asked for
    assert [r["Id"] for r in records] == [*ids[1:], ids[0]]
    assert list(records[0]) == ["attributes", "Id", "SystemModstamp", "IsDeleted", "Name", "Industry"]
    stamps = [r["SystemModstamp"] for r in records]
    assert stamps == sorted(stamps)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", stamps[0])


def test_records_sharing_a_stamp_are_resumed_exactly_with_the_keyset_form(emulator, sf):
    # given six accounts written while the clock stands still: they share one SystemModstamp
    emulator.clock.freeze_at(datetime(2026, 11, 27, 20, 0, 0, tzinfo=UTC))
    ids = emulator.bulk_create("Account", [account_values() for _ in range(6)])
    emulator.clock.advance(60)
    end = emulator.clock.now()
    first_page = sf.query(window_query(end - timedelta(minutes=5), end))["records"]
    assert len({r["SystemModstamp"] for r in first_page}) == 1

    # when the query restarts after the third record with the keyset form
    last = first_page[2]
    resumed = sf.query_all(keyset_query(last["SystemModstamp"], last["Id"], end))["records"]

    # then exactly the three remaining records come back, none skipped, none repeated
    assert [r["Id"] for r in resumed] == ids[3:]


def test_a_late_commit_is_visible_now_with_its_earlier_stamp(emulator, sf):
    # given a poll that already covered up to now
    account = emulator.create("Account", account_values(Industry="Energy"))
    emulator.clock.advance(10)
    polled_until = emulator.clock.now()
    emulator.clock.advance(10)

    # when a transaction that started two minutes ago commits now
    emulator.commit_late("Account", account, {"Industry": "Retail"}, seconds_ago=120)

    # then the change is visible, stamped before the previous poll's end: only a lookback finds it
    stamp = parse_datetime(emulator.get("Account", account)["SystemModstamp"])
    assert stamp < polled_until
    now = emulator.clock.now()
    after_watermark = sf.query_all(window_query(polled_until, now))["records"]
    with_lookback = sf.query_all(window_query(polled_until - timedelta(seconds=300), now))["records"]
    assert after_watermark == []
    assert [(r["Id"], r["Industry"]) for r in with_lookback] == [(account, "Retail")]


def test_count_returns_the_total_size_without_records(emulator, sf):
    emulator.bulk_create("Account", [account_values(Industry="Energy") for _ in range(7)])
    emulator.create("Account", account_values(Industry="Retail"))

    result = sf.query("SELECT COUNT() FROM Account WHERE Industry = 'Energy'")

    assert result == {"totalSize": 7, "done": True, "records": []}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Industry IN ('Energy', 'Retail')", ["Alpha", "Beta"]),
        ("Industry NOT IN ('Energy')", ["Beta", "Gamma"]),
        ("Industry = null", ["Gamma"]),
        ("Industry != null", ["Alpha", "Beta"]),
        ("Name LIKE 'a%'", ["Alpha"]),
        ("Name LIKE '_eta'", ["Beta"]),
        ("name = 'ALPHA'", ["Alpha"]),
        ("NOT (Industry = 'Energy' OR Industry = 'Retail')", ["Gamma"]),
        ("AnnualRevenue >= 2000000", ["Beta", "Gamma"]),
        ("NumberOfEmployees < 50", ["Alpha"]),
        ("IsDeleted = false AND (Industry = 'Energy' OR AnnualRevenue > 2500000)", ["Alpha", "Gamma"]),
        ("Industry <> 'Energy'", ["Beta", "Gamma"]),
    ],
)
def test_where_conditions(emulator, sf, where, expected):
    # given three accounts
    emulator.create("Account", account_values(Name="Alpha", Industry="Energy", AnnualRevenue=1e6, NumberOfEmployees=10))
    emulator.create("Account", account_values(Name="Beta", Industry="Retail", AnnualRevenue=2e6, NumberOfEmployees=100))
    emulator.create("Account", account_values(Name="Gamma", Industry=None, AnnualRevenue=3e6, NumberOfEmployees=1000))

    # when filtered
    records = sf.query_all(f"SELECT Name FROM Account WHERE {where} ORDER BY Name")["records"]

    # then
    assert [r["Name"] for r in records] == expected


def test_values_quoted_by_format_soql_match_exactly(emulator, sf):
    # given names that need escaping
    tricky = 'O\'Brien \\ "Partners"\n50%_off'
    wanted = emulator.create("Account", account_values(Name=tricky))
    emulator.create("Account", account_values(Name="O'Brien"))
    emulator.create("Account", account_values(Name="50 percent off"))

    # when queried with simple-salesforce's own quoting, for = and for LIKE
    equal = sf.query(format_soql("SELECT Id FROM Account WHERE Name = {}", tricky))["records"]
    like = sf.query(format_soql("SELECT Id FROM Account WHERE Name LIKE '%{:like}%'", "50%_"))["records"]

    # then only the exact record matches (\\% and \\_ are literal in LIKE)
    assert [r["Id"] for r in equal] == [wanted]
    assert [r["Id"] for r in like] == [wanted]


def test_format_soql_datetimes_with_an_offset_are_accepted(emulator, sf):
    account = emulator.create("Account", account_values())
    since = emulator.clock.now() - timedelta(hours=1)

    records = sf.query(format_soql("SELECT Id FROM Account WHERE SystemModstamp >= {}", since))["records"]

    assert [r["Id"] for r in records] == [account]


def test_order_by_desc_nulls_last_limit_and_offset(emulator, sf):
    for name, employees in (("A", 5), ("B", None), ("C", 50), ("D", 20)):
        emulator.create("Account", account_values(Name=name, NumberOfEmployees=employees))

    default_nulls = sf.query("SELECT Name FROM Account ORDER BY NumberOfEmployees DESC")["records"]
    nulls_last = sf.query("SELECT Name FROM Account ORDER BY NumberOfEmployees DESC NULLS LAST LIMIT 3")["records"]
    offset = sf.query("SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1")["records"]

    assert [r["Name"] for r in default_nulls] == ["B", "C", "D", "A"]  # Salesforce sorts nulls first by default
    assert [r["Name"] for r in nulls_last] == ["C", "D", "A"]
    assert [r["Name"] for r in offset] == ["B", "C"]


def test_dates_and_references_filter_opportunities_and_contacts(emulator, sf):
    account = emulator.create("Account", account_values())
    other = emulator.create("Account", account_values())
    soon = emulator.create("Opportunity", opportunity_values(account, CloseDate="2026-12-01"))
    emulator.create("Opportunity", opportunity_values(account, CloseDate="2027-03-01"))
    contact = emulator.create("Contact", contact_values(account))
    emulator.create("Contact", contact_values(other))

    opportunities = sf.query("SELECT Id, CloseDate FROM Opportunity WHERE CloseDate < 2027-01-01")["records"]
    contacts = sf.query(
        f"SELECT Id, AccountId, FirstName, LastName, Email, SystemModstamp, IsDeleted FROM Contact "
        f"WHERE AccountId = '{account[:15]}'"
    )["records"]

    assert [(r["Id"], r["CloseDate"]) for r in opportunities] == [(soon, "2026-12-01")]
    assert [(r["Id"], r["AccountId"]) for r in contacts] == [(contact, account)]


@pytest.mark.parametrize(
    ("soql", "error_code", "fragment"),
    [
        (
            "SELECT Id, Foo FROM Account",
            "INVALID_FIELD",
            "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity "
            "'Account'. If you are attempting to use a custom field, be sure to append the '__c'",
        ),
        ("SELECT Id FROM Acount", "INVALID_TYPE", "sObject type 'Acount' is not supported."),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        ("SELECT Id Account", "MALFORMED_QUERY", "unexpected token: 'Account'"),
        ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY", "'OR'"),
        (
            "SELECT Id FROM Account WHERE SystemModstamp > '2026-11-27'",
            "INVALID_FIELD",
            "value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be "
            "enclosed in quotes",
        ),
        ("SELECT Id FROM Account WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
        ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
    ],
)
def test_bad_queries_answer_400_with_salesforce_error_codes(emulator, sf, soql, error_code, fragment):
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query(soql)

    [error] = raised.value.content
    assert error["errorCode"] == error_code
    assert fragment in error["message"]


def test_a_batch_size_header_shrinks_pages(make_emulator, connect):
    emulator = make_emulator(page_size=2000)
    emulator.bulk_create("Account", [account_values() for _ in range(450)])
    sf = connect(emulator)

    first = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=200"})

    assert len(first["records"]) == 200
    assert first["nextRecordsUrl"].endswith("-200")


def test_datetimes_come_back_in_salesforce_format(emulator, sf):
    emulator.clock.freeze_at(datetime(2026, 11, 27, 20, 38, 14, 5000, tzinfo=UTC))
    emulator.create("Account", account_values())

    [record] = sf.query("SELECT CreatedDate, SystemModstamp FROM Account")["records"]

    assert record["CreatedDate"] == record["SystemModstamp"] == "2026-11-27T20:38:14.005+0000"
    assert format_datetime(parse_datetime(record["SystemModstamp"])) == record["SystemModstamp"]
