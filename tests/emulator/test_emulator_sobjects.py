"""sObject resources: describe, rows, upsert by external id, validation, deletes, updated/deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from salesforce_emulator import SalesforceApiError, parse_datetime
from salesforce_emulator.values import id_suffix
from simple_salesforce import SalesforceMalformedRequest, SalesforceResourceNotFound

from .factories import account_values, contact_values, opportunity_values

pytestmark = pytest.mark.integration

DESCRIBE_TYPES = {
    "id", "string", "picklist", "double", "currency", "int", "boolean", "datetime", "reference", "email", "phone",
    "url", "date", "textarea",
}  # fmt: skip


def test_describe_global_lists_the_three_objects(sf):
    described = sf.describe()

    assert [o["name"] for o in described["sobjects"]] == ["Account", "Contact", "Opportunity"]
    assert described["sobjects"][0]["keyPrefix"] == "001"
    assert described["sobjects"][0]["urls"]["describe"] == "/services/data/v62.0/sobjects/Account/describe"


def test_account_describe_has_salesforce_field_shapes(sf):
    described = sf.Account.describe()
    fields = {f["name"]: f for f in described["fields"]}

    for field in fields.values():
        assert {
            "name",
            "label",
            "type",
            "length",
            "nillable",
            "updateable",
            "createable",
            "externalId",
            "unique",
        } <= set(field)
        assert field["type"] in DESCRIBE_TYPES
    assert set(fields) >= {
        "Id", "Name", "Industry", "Type", "BillingCountry", "BillingCity", "AnnualRevenue", "NumberOfEmployees",
        "Rating", "OwnerId", "Website", "Phone", "Description", "Account_Sync_Key__c", "CreatedDate",
        "LastModifiedDate", "SystemModstamp", "IsDeleted",
    }  # fmt: skip
    assert (fields["Account_Sync_Key__c"]["externalId"], fields["Account_Sync_Key__c"]["unique"]) == (True, True)
    assert (fields["Name"]["nillable"], fields["Name"]["createable"]) == (False, True)
    assert (fields["SystemModstamp"]["type"], fields["SystemModstamp"]["updateable"]) == ("datetime", False)
    assert fields["AnnualRevenue"]["type"] == "currency"
    assert fields["NumberOfEmployees"]["type"] == "int"
    assert fields["Industry"]["type"] == "picklist"
    assert any(v["value"] == "Energy" for v in fields["Industry"]["picklistValues"])


def test_contact_and_opportunity_describe(sf):
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    opportunity = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}

    assert contact["AccountId"]["referenceTo"] == ["Account"]
    assert contact["Email"]["type"] == "email"
    assert opportunity["CloseDate"]["type"] == "date"
    assert opportunity["StageName"]["nillable"] is False


def test_sobject_basic_information(sf):
    info = sf.Contact.metadata()

    assert info["objectDescribe"]["name"] == "Contact"
    assert info["recentItems"] == []


def test_ids_are_18_characters_with_a_valid_case_safe_suffix(emulator):
    account = emulator.create("Account", account_values())
    contact = emulator.create("Contact", contact_values(account))
    opportunity = emulator.create("Opportunity", opportunity_values(account))

    for record_id, prefix in ((account, "001"), (contact, "003"), (opportunity, "006")):
        assert len(record_id) == 18
        assert record_id.startswith(prefix)
        assert record_id[15:] == id_suffix(record_id[:15])


def test_create_get_update_and_delete_through_the_api(emulator, sf):
    # when an account is created
    created = sf.Account.create(account_values(Name="Acme", Industry="Energy"))

    # then Salesforce's create answer comes back and the record exists with system fields
    assert created == {"id": created["id"], "success": True, "errors": []}
    record = sf.Account.get(created["id"])
    assert (record["Name"], record["IsDeleted"]) == ("Acme", False)
    assert record["CreatedDate"] == record["SystemModstamp"]
    assert record["OwnerId"].startswith("005")

    # when it is updated, then 204 and a newer SystemModstamp
    emulator.clock.advance(1)
    assert sf.Account.update(created["id"], {"Industry": "Retail"}) == 204
    updated = sf.Account.get(created["id"])
    assert updated["Industry"] == "Retail"
    assert parse_datetime(updated["SystemModstamp"]) > parse_datetime(record["SystemModstamp"])
    assert updated["LastModifiedDate"] == updated["SystemModstamp"]

    # when it is deleted, then 204, it is gone from GET, kept as IsDeleted
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(created["id"])
    assert emulator.get("Account", created["id"])["IsDeleted"] is True


def test_deleting_an_account_cascades_and_undelete_restores(emulator):
    # given an account with contacts and an opportunity, and a contact of another account
    account = emulator.create("Account", account_values())
    other = emulator.create("Account", account_values())
    contacts = emulator.bulk_create("Contact", [contact_values(account) for _ in range(3)])
    bystander = emulator.create("Contact", contact_values(other))
    opportunity = emulator.create("Opportunity", opportunity_values(account))

    # when the account is deleted
    emulator.delete("Account", account)

    # then its contacts and opportunity are deleted with it, the other account's contact is not
    assert all(emulator.get("Contact", c)["IsDeleted"] for c in contacts)
    assert emulator.get("Opportunity", opportunity)["IsDeleted"] is True
    assert emulator.get("Contact", bystander)["IsDeleted"] is False
    assert len(emulator.records("Contact")) == 1
    assert len(emulator.records("Contact", include_deleted=True)) == 4

    # when it is undeleted, then everything comes back
    emulator.undelete("Account", account)
    assert not any(emulator.get("Contact", c)["IsDeleted"] for c in contacts)
    assert emulator.get("Account", account)["IsDeleted"] is False


def test_touch_changes_only_the_system_modstamp(emulator):
    account = emulator.create("Account", account_values())
    before = emulator.get("Account", account)

    emulator.clock.advance(5)
    emulator.touch("Account", account)

    after = emulator.get("Account", account)
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert {k: v for k, v in after.items() if k != "SystemModstamp"} == {
        k: v for k, v in before.items() if k != "SystemModstamp"
    }


def test_upsert_by_external_id_creates_then_updates(emulator, sf):
    # when upserted twice with the same key
    first = sf.Account.upsert("Account_Sync_Key__c/person-42", {"Name": "Acme"}, raw_response=True)
    second = sf.Account.upsert("Account_Sync_Key__c/person-42", {"Industry": "Retail"}, raw_response=True)

    # then 201 created, then 200 updated, one account
    assert first.status_code == 201
    assert first.json()["created"] is True
    assert second.status_code == 200
    assert second.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": False}
    [account] = emulator.records("Account")
    assert (account["Name"], account["Industry"], account["Account_Sync_Key__c"]) == ("Acme", "Retail", "person-42")
    assert sf.Account.get_by_custom_id("Account_Sync_Key__c", "person-42")["Id"] == account["Id"]


def test_upsert_on_a_field_that_is_not_an_external_id_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.upsert("Name/Acme", {"Industry": "Retail"})


@pytest.mark.parametrize(
    ("sobject", "values", "error_code", "fields"),
    [
        ("Account", {"Industry": "Energy"}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ("Contact", {"FirstName": "Ada"}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ("Opportunity", {"Name": "Deal"}, "REQUIRED_FIELD_MISSING", ["StageName", "CloseDate"]),
        ("Account", {"Name": "Acme", "Foo__c": 1}, "INVALID_FIELD", None),
        ("Account", {"Name": "Acme", "SystemModstamp": "2026-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
         ["SystemModstamp"]),
        ("Contact", {"LastName": "X", "AccountId": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"]),
        ("Contact", {"LastName": "X", "AccountId": "not-an-id"}, "MALFORMED_ID", ["AccountId"]),
        ("Contact", {"LastName": "X", "Email": "nope"}, "INVALID_EMAIL_ADDRESS", ["Email"]),
        ("Account", {"Name": "A" * 256}, "STRING_TOO_LONG", ["Name"]),
        ("Account", {"Name": "Acme", "NumberOfEmployees": "many"}, "JSON_PARSER_ERROR", ["NumberOfEmployees"]),
    ],
)  # fmt: skip
def test_invalid_creates_answer_400_with_salesforce_error_codes(sf, sobject, values, error_code, fields):
    with pytest.raises(SalesforceMalformedRequest) as raised:
        getattr(sf, sobject).create(values)

    [error] = raised.value.content
    assert error["errorCode"] == error_code
    assert error.get("fields") == fields


def test_a_duplicate_external_id_on_create_answers_duplicate_value(emulator, sf):
    existing = emulator.create("Account", account_values(Account_Sync_Key__c="person-1"))

    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Account.create(account_values(Account_Sync_Key__c="PERSON-1"))

    [error] = raised.value.content
    assert error["errorCode"] == "DUPLICATE_VALUE"
    assert existing in error["message"]


def test_read_only_fields_cannot_be_updated(emulator, sf):
    account = emulator.create("Account", account_values())

    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Account.update(account, {"CreatedDate": "2020-01-01T00:00:00Z"})

    assert raised.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_unknown_records_and_objects_are_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound) as raised:
        sf.Account.get("001000000000000AAA")
    assert raised.value.content == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.describe()


def test_the_in_process_api_validates_like_the_rest_api(emulator):
    with pytest.raises(SalesforceApiError) as raised:
        emulator.create("Account", {"Industry": "Energy"})

    assert (raised.value.status, raised.value.error_code) == (400, "REQUIRED_FIELD_MISSING")


def test_bulk_create_is_all_or_nothing(emulator):
    with pytest.raises(SalesforceApiError):
        emulator.bulk_create("Account", [account_values(), {"Industry": "no name"}])

    assert emulator.records("Account") == []


def test_updated_lists_ids_changed_in_the_window(emulator, sf):
    # given accounts changed at known times
    start = emulator.clock.now() - timedelta(minutes=1)
    changed = emulator.create("Account", account_values())
    emulator.clock.advance(120)
    end = emulator.clock.now()

    # when getUpdated is asked for the window
    result = sf.Account.updated(start, end)

    # then the ids and the latest date covered (seconds ignored, like Salesforce)
    assert result["ids"] == [changed]
    assert result["latestDateCovered"] == end.replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:00.000+0000")


def test_deleted_lists_deleted_records_with_their_dates(emulator, sf):
    start = emulator.clock.now() - timedelta(minutes=1)
    account = emulator.create("Account", account_values())
    emulator.delete("Account", account)
    emulator.clock.advance(120)

    result = sf.Account.deleted(start, emulator.clock.now())

    assert set(result) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    [deleted] = result["deletedRecords"]
    assert deleted == {"id": account, "deletedDate": emulator.get("Account", account)["SystemModstamp"]}


def test_replication_windows_are_limited_like_salesforce(emulator, sf):
    now = emulator.clock.now()

    with pytest.raises(SalesforceMalformedRequest) as too_old_updated:
        sf.Account.updated(now - timedelta(days=31), now)
    with pytest.raises(SalesforceMalformedRequest) as too_old_deleted:
        sf.Account.deleted(now - timedelta(days=16), now)

    assert too_old_updated.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    assert too_old_deleted.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    assert sf.Account.deleted(now - timedelta(days=14), now)["deletedRecords"] == []


def test_too_many_ids_answer_exceeded_id_limit(make_emulator, connect):
    emulator = make_emulator(replication_id_limit=3)
    start = emulator.clock.now() - timedelta(minutes=1)
    emulator.bulk_create("Account", [account_values() for _ in range(4)])
    emulator.clock.advance(120)
    sf = connect(emulator)

    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Account.updated(start, emulator.clock.now())

    assert raised.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_a_body_that_is_not_a_json_object_is_refused(sf):
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.restful("sobjects/Account/", method="POST", data="[1, 2]")

    assert raised.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
