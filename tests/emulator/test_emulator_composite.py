"""POST /composite: references, allOrNone commit and rollback, partial success, limits."""

from __future__ import annotations

import pytest
from simple_salesforce import SalesforceMalformedRequest

from .factories import account_values, contact_values, opportunity_values

pytestmark = pytest.mark.integration

BASE = "/services/data/v62.0"


def convert_person(key: str, *, stage: str | None = "Prospecting") -> list[dict]:
    """The three creates of Convert Person: Account, Contact and Opportunity, chained by references."""
    opportunity = opportunity_values("@{newAccount.id}", Account_Sync_Key__c=key)
    if stage is None:
        del opportunity["StageName"]
    return [
        {"method": "POST", "url": f"{BASE}/sobjects/Account", "referenceId": "newAccount",
         "body": account_values(Account_Sync_Key__c=key)},
        {"method": "POST", "url": f"{BASE}/sobjects/Contact", "referenceId": "newContact",
         "body": contact_values("@{newAccount.id}", Account_Sync_Key__c=key)},
        {"method": "POST", "url": f"{BASE}/sobjects/Opportunity", "referenceId": "newOpportunity",
         "body": opportunity},
    ]  # fmt: skip


def composite(sf, subrequests: list[dict], *, all_or_none: bool = True) -> list[dict]:
    answer = sf.restful("composite", method="POST", json={"allOrNone": all_or_none, "compositeRequest": subrequests})
    return answer["compositeResponse"]


def test_all_or_none_creates_the_three_records_with_references_resolved(emulator, sf):
    # when the composite runs
    responses = composite(sf, convert_person("person-1"))

    # then three 201s, and the contact and opportunity point at the new account
    assert [r["httpStatusCode"] for r in responses] == [201, 201, 201]
    assert [r["referenceId"] for r in responses] == ["newAccount", "newContact", "newOpportunity"]
    account_id = responses[0]["body"]["id"]
    assert responses[0]["body"] == {"id": account_id, "success": True, "errors": []}
    assert responses[0]["httpHeaders"] == {"Location": f"{BASE}/sobjects/Account/{account_id}"}
    assert emulator.get("Contact", responses[1]["body"]["id"])["AccountId"] == account_id
    assert emulator.get("Opportunity", responses[2]["body"]["id"])["AccountId"] == account_id


def test_all_or_none_rolls_everything_back_when_one_subrequest_fails(emulator, sf):
    # when the third subrequest is invalid (an opportunity without a stage)
    responses = composite(sf, convert_person("person-2", stage=None))

    # then the failure keeps its error, the others are PROCESSING_HALTED, and nothing was created
    assert [r["httpStatusCode"] for r in responses] == [400, 400, 400]
    assert responses[2]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    for halted in responses[:2]:
        assert halted["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert emulator.records("Account") == emulator.records("Contact") == emulator.records("Opportunity") == []


def test_a_retried_conversion_is_refused_by_the_unique_external_id(emulator, sf):
    # given a conversion that already committed
    composite(sf, convert_person("person-3"))

    # when it is sent again
    responses = composite(sf, convert_person("person-3"))

    # then the account create fails on its unique key and nothing new exists
    assert responses[0]["body"][0]["errorCode"] == "DUPLICATE_VALUE"
    assert [r["body"][0]["errorCode"] for r in responses[1:]] == ["PROCESSING_HALTED", "PROCESSING_HALTED"]
    assert (len(emulator.records("Account")), len(emulator.records("Contact"))) == (1, 1)


def test_without_all_or_none_independent_subrequests_still_run(emulator, sf):
    # given a failing account create, a contact depending on it and an independent account
    subrequests = [
        {"method": "POST", "url": f"{BASE}/sobjects/Account", "referenceId": "bad", "body": {"Industry": "x"}},
        {"method": "POST", "url": f"{BASE}/sobjects/Contact", "referenceId": "dependent",
         "body": contact_values("@{bad.id}")},
        {"method": "POST", "url": f"{BASE}/sobjects/Account", "referenceId": "good", "body": account_values()},
    ]  # fmt: skip

    # when run without allOrNone
    responses = composite(sf, subrequests, all_or_none=False)

    # then the dependent one is halted, the independent one committed
    assert [r["httpStatusCode"] for r in responses] == [400, 400, 201]
    assert responses[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert [a["Id"] for a in emulator.records("Account")] == [responses[2]["body"]["id"]]


def test_subrequests_can_query_patch_and_read(emulator, sf):
    account = emulator.create("Account", account_values(Account_Sync_Key__c="k-1"))
    subrequests = [
        {"method": "GET", "url": f"{BASE}/query?q=SELECT+Id+FROM+Account+WHERE+Account_Sync_Key__c='k-1'",
         "referenceId": "found"},
        {"method": "PATCH", "url": f"{BASE}/sobjects/Account/@{{found.records[0].Id}}", "referenceId": "patched",
         "body": {"Industry": "Retail"}},
        {"method": "GET", "url": f"{BASE}/sobjects/Account/@{{found.records[0].Id}}", "referenceId": "read"},
    ]  # fmt: skip

    responses = composite(sf, subrequests)

    assert [r["httpStatusCode"] for r in responses] == [200, 204, 200]
    assert responses[2]["body"]["Id"] == account
    assert emulator.get("Account", account)["Industry"] == "Retail"


def test_a_composite_counts_as_one_api_call(emulator, sf):
    before, _ = emulator.api_usage

    composite(sf, convert_person("person-4"))

    assert emulator.api_usage[0] == before + 1
    assert emulator.request_log[-1] == ("POST", "composite")


def test_more_than_25_subrequests_are_refused(sf):
    subrequests = [
        {"method": "POST", "url": f"{BASE}/sobjects/Account", "referenceId": f"a{i}", "body": account_values()}
        for i in range(26)
    ]

    with pytest.raises(SalesforceMalformedRequest):
        composite(sf, subrequests)
