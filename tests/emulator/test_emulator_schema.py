"""The org's setup: the external id field `Account_Sync_Key__c` on Account, Contact and Opportunity (what Convert
Person upserts by), and the switches that set the org up otherwise (`remove_field`, `change_field`)."""

from __future__ import annotations

import pytest
from salesforce_emulator import SalesforceApiError
from simple_salesforce import SalesforceMalformedRequest, SalesforceResourceNotFound

from .factories import account_values

pytestmark = pytest.mark.integration

KEY = "Account_Sync_Key__c"
BASE = "/services/data/v62.0"


def described_fields(sf, sobject: str) -> dict[str, dict]:
    return {f["name"]: f for f in getattr(sf, sobject).describe()["fields"]}


@pytest.mark.parametrize("sobject", ["Account", "Contact", "Opportunity"])
def test_each_object_describes_the_sync_key_as_a_unique_text_external_id(sf, sobject):
    key = described_fields(sf, sobject)[KEY]

    assert (key["type"], key["length"], key["custom"]) == ("string", 255, True)
    assert (key["externalId"], key["unique"], key["idLookup"]) == (True, True, True)
    assert (key["createable"], key["updateable"], key["nillable"]) == (True, True, True)


def test_a_removed_field_leaves_describe_soql_records_and_upserts_and_comes_back_with_its_values(emulator, sf):
    account_id = emulator.create("Account", account_values(**{KEY: "person-1"}))

    emulator.remove_field("Contact", KEY)
    emulator.remove_field("Account", KEY)

    assert KEY not in described_fields(sf, "Account") and KEY not in described_fields(sf, "Contact")
    assert KEY in described_fields(sf, "Opportunity")  # only what was removed
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id, Account_Sync_Key__c FROM Account")
    assert raised.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceResourceNotFound) as not_found:
        sf.Account.upsert(f"{KEY}/person-2", {"Name": "Acme"})
    assert not_found.value.content[0] == {
        "message": f"Provided external ID field does not exist or is not accessible: {KEY}",
        "errorCode": "NOT_FOUND",
    }
    assert KEY not in sf.Account.get(account_id)
    with pytest.raises(SalesforceMalformedRequest):  # nor can a record be given a value for it
        sf.Account.create(account_values(**{KEY: "person-3"}))
    with pytest.raises(SalesforceApiError):  # the in-process data methods see the same org
        emulator.create("Account", account_values(**{KEY: "person-3"}))
    assert len(emulator.records("Account")) == 1

    emulator.reset_schema()

    assert described_fields(sf, "Account")[KEY]["externalId"] is True
    assert sf.Account.get(account_id)[KEY] == "person-1"  # kept meanwhile
    assert sf.Account.get_by_custom_id(KEY, "person-1")["Id"] == account_id  # and still unique-indexed


def test_a_field_that_is_no_external_id_makes_the_conversion_composite_fail_obscurely(emulator, sf):
    emulator.change_field("Opportunity", KEY, external_id=False)

    key = described_fields(sf, "Opportunity")[KEY]
    assert (key["externalId"], key["idLookup"], key["unique"]) == (False, False, True)

    # the composite of Convert Person: HTTP 200, the Opportunity's upsert NOT_FOUND, everything rolled back
    subrequests = [
        {"method": "PATCH", "url": f"{BASE}/sobjects/{sobject}/{KEY}/person-1", "referenceId": reference, "body": body}
        for sobject, reference, body in (
            ("Account", "account", {"Name": "Acme"}),
            ("Contact", "contact", {"LastName": "Lovelace", "AccountId": "@{account.id}"}),
            (
                "Opportunity",
                "opportunity",
                {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": "@{account.id}"},
            ),
        )
    ]
    answer = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": subrequests})
    statuses = [(r["referenceId"], r["httpStatusCode"], r["body"][0]["errorCode"]) for r in answer["compositeResponse"]]
    assert statuses == [
        ("account", 400, "PROCESSING_HALTED"),
        ("contact", 400, "PROCESSING_HALTED"),
        ("opportunity", 404, "NOT_FOUND"),
    ]
    assert emulator.records("Account") == []


def test_a_field_that_is_not_unique_takes_duplicate_values(emulator):
    emulator.change_field("Account", KEY, unique=False)

    emulator.create("Account", account_values(**{KEY: "person-1"}))
    emulator.create("Account", account_values(**{KEY: "person-1"}))

    assert len(emulator.records("Account")) == 2


def test_each_emulator_has_its_own_org(make_emulator, connect):
    changed, standard = make_emulator(), make_emulator()

    changed.remove_field("Account", KEY)

    assert KEY not in described_fields(connect(changed), "Account")
    assert KEY in described_fields(connect(standard), "Account")


@pytest.mark.parametrize(
    ("sobject", "field"),
    [("Account", "Name"), ("Account", "Id"), ("Account", "Nope__c"), ("Lead", KEY)],
    ids=["a standard field", "the Id", "an unknown field", "an unknown object"],
)
def test_only_custom_fields_of_known_objects_can_be_set_up_otherwise(emulator, sobject, field):
    with pytest.raises(ValueError, match=r"custom field|unknown object"):
        emulator.remove_field(sobject, field)
    with pytest.raises(ValueError, match=r"custom field|unknown object"):
        emulator.change_field(sobject, field, external_id=False)
