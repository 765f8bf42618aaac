"""The SOQL tokenizer, parser and evaluator on their own (no server)."""

# These tests write SOQL text on purpose: it is what the emulator parses.
# ruff: noqa: S608

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from salesforce_emulator import SalesforceApiError
from salesforce_emulator.soql import parse, tokenize
from salesforce_emulator.values import make_id
from simple_salesforce.format import format_soql


def rows(*names: str | None, **common: object) -> list[dict]:
    """Account-like rows, Ids in order."""
    return [{"Id": make_id("001", i + 1), "Name": name, **common} for i, name in enumerate(names)]


def run(soql: str, data: list[dict]) -> list[str | None]:
    return [row["Name"] for row in parse(soql).run(data)]


def error_of(soql: str) -> SalesforceApiError:
    with pytest.raises(SalesforceApiError) as raised:
        parse(soql)
    return raised.value


def test_the_tokenizer_knows_literals_keywords_and_operators():
    tokens = tokenize("select Id FROM Account WHERE SystemModstamp >= 2026-11-27T20:38:14.000Z AND x<>-1.5")

    assert [(t.kind, t.value) for t in tokens] == [
        ("keyword", "SELECT"), ("ident", "Id"), ("keyword", "FROM"), ("ident", "Account"), ("keyword", "WHERE"),
        ("ident", "SystemModstamp"), ("op", ">="), ("datetime", "2026-11-27T20:38:14.000Z"), ("keyword", "AND"),
        ("ident", "x"), ("op", "<>"), ("number", "-1.5"), ("eof", ""),
    ]  # fmt: skip


def test_datetime_literals_in_every_accepted_form_mean_the_same_instant():
    instant = datetime(2026, 11, 27, 20, 38, 14, tzinfo=UTC)
    data = [{"Id": make_id("001", 1), "Name": "a", "SystemModstamp": instant}]

    for literal in ("2026-11-27T20:38:14Z", "2026-11-27T20:38:14.000Z", "2026-11-27T20:38:14+00:00",
                    "2026-11-27T21:38:14.000+01:00", format_soql("{}", instant)):  # fmt: skip
        assert run(f"SELECT Name FROM Account WHERE SystemModstamp = {literal}", data) == ["a"]


def test_keywords_fields_and_objects_are_case_insensitive():
    assert run("select name from ACCOUNT where NAME = 'b' order by name", rows("a", "B")) == ["B"]


def test_and_or_need_parentheses_to_mix():
    error = error_of("SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b' AND Name = 'c'")

    assert error.error_code == "MALFORMED_QUERY"
    assert "unexpected token: 'AND'" in error.message
    data = rows("a", "b", "c")
    assert run("SELECT Name FROM Account WHERE Name = 'a' OR (Name = 'b' AND Name = 'b')", data) == ["a", "b"]


def test_errors_point_at_the_row_and_column():
    error = error_of("SELECT Id\nFROM Account\nWHERE Nme = 'x'")

    assert error.error_code == "INVALID_FIELD"
    assert error.message.startswith("\nWHERE Nme = 'x'\n      ^\nERROR at Row:3:Column:7\nNo such column 'Nme'")


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT FROM Account",
        "SELECT Id FROM Account LIMIT x",
        "SELECT Id FROM Account WHERE Name = 'unterminated",
        "SELECT Id FROM Account WHERE Name = 'bad \\q escape'",
        "SELECT Id FROM Account WHERE Name = :bind",
        "SELECT Id FROM Account ORDER Name",
        "SELECT Id, Id FROM Account",
        "SELECT Id FROM Account WHERE (Name = 'a'",
        "",
    ],
)
def test_malformed_queries(soql):
    assert error_of(soql).error_code == "MALFORMED_QUERY"


def test_literals_must_match_the_field_type():
    assert error_of("SELECT Id FROM Account WHERE Name = 5").error_code == "INVALID_FIELD"
    assert error_of("SELECT Id FROM Account WHERE AnnualRevenue = '5'").error_code == "INVALID_FIELD"
    assert error_of("SELECT Id FROM Account WHERE IsDeleted = 'false'").error_code == "INVALID_FIELD"
    assert error_of("SELECT Id FROM Account WHERE IsDeleted > false").error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert (
        error_of("SELECT Id FROM Account WHERE AnnualRevenue LIKE '5%'").error_code == "INVALID_QUERY_FILTER_OPERATOR"
    )


def test_relationship_paths_are_not_supported():
    error = error_of("SELECT Account.Name FROM Contact")

    assert error.error_code == "INVALID_FIELD"
    assert "Didn't understand relationship 'Account'" in error.message


def test_fifteen_character_ids_match_their_eighteen_character_form():
    first, second = make_id("001", 1), make_id("001", 2)
    data = [{"Id": first, "Name": "a"}, {"Id": second, "Name": "b"}]

    assert run(f"SELECT Name FROM Account WHERE Id = '{second[:15]}'", data) == ["b"]
    assert run(f"SELECT Name FROM Account WHERE Id = '{second[:15].lower()}{second[15:]}'", data) == []
    assert run(f"SELECT Name FROM Account WHERE Id > '{first}'", data) == ["b"]


def test_sorting_is_case_insensitive_and_stable_across_keys():
    data = rows("b", "A", "a", None, "B")
    for row, rank in zip(data, (1, 2, 1, 3, 2), strict=True):
        row["NumberOfEmployees"] = rank

    ordered = run("SELECT Name FROM Account ORDER BY Name NULLS LAST, NumberOfEmployees DESC", data)

    assert ordered == ["A", "a", "B", "b", None]


def test_count_queries_select_no_fields():
    query = parse("SELECT COUNT() FROM Contact WHERE LastName != null")

    assert query.is_count
    assert query.fields == ()
