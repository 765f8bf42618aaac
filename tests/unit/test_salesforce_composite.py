"""Convert Person's composite call through the real simple-salesforce client, over a canned transport.

Salesforce answers a composite with HTTP 200 even when a subrequest failed: every sub-response is checked.
"""

from __future__ import annotations

import json

import pytest
import requests
from account_sync.adapters.salesforce import SalesforcePersonConverter, SalesforceRestSource
from account_sync.domain.conversion import ConversionOrder, conversion_key
from account_sync.ports import SalesforceQueryError, SalesforceRejected, TransientError

from tests.unit.test_salesforce_adapter import Authenticator, CannedSalesforce, source

KEY = conversion_key("person-0001")
ORDER = ConversionOrder(
    key=KEY,
    account={"Name": "Lovelace Analytics"},
    contact={"LastName": "Lovelace", "Email": "ada@example.org"},
    opportunity={"Name": "First deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"},
)


def sub(reference: str, status: int, body: object) -> dict:
    return {"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": reference}


def upserted(created: bool = True) -> dict:
    status = 201 if created else 200
    return {
        "compositeResponse": [
            sub("account", status, {"id": "001Hx0000000001AAA", "success": True, "errors": [], "created": created}),
            sub("contact", status, {"id": "003Hx0000000001AAA", "success": True, "errors": [], "created": created}),
            sub("opportunity", status, {"id": "006Hx0000000001AAA", "success": True, "created": created}),
        ]
    }


def halted(reference: str) -> dict:
    return sub(reference, 400, [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back"}])


def converter(http: CannedSalesforce, sleeps: list[float]) -> SalesforcePersonConverter:
    return SalesforcePersonConverter(lambda: source(Authenticator(), http, sleeps), api_version="62.0")


def test_one_composite_upserts_the_three_records_by_the_conversion_key_all_or_none():
    http = CannedSalesforce([(200, upserted())])

    records = converter(http, []).convert(ORDER)

    (request,) = http.requests
    assert (request.method, request.url) == ("POST", "https://acme.my.salesforce.com/services/data/v62.0/composite")
    sent = json.loads(request.body)
    assert sent["allOrNone"] is True
    assert [(s["method"], s["url"]) for s in sent["compositeRequest"]] == [
        ("PATCH", f"/services/data/v62.0/sobjects/{sobject}/Account_Sync_Key__c/{KEY}")
        for sobject in ("Account", "Contact", "Opportunity")
    ]
    assert sent["compositeRequest"][1]["body"]["AccountId"] == "@{account.id}"
    assert sent["compositeRequest"][2]["body"]["AccountId"] == "@{account.id}"
    assert (records.account_id, records.contact_id, records.opportunity_id, records.created) == (
        "001Hx0000000001AAA",
        "003Hx0000000001AAA",
        "006Hx0000000001AAA",
        True,
    )


def test_records_found_by_their_key_are_not_created_again():
    records = converter(CannedSalesforce([(200, upserted(created=False))]), []).convert(ORDER)
    assert not records.created


def test_a_failed_subrequest_under_http_200_is_a_rejection_naming_its_cause():
    answer = {
        "compositeResponse": [
            halted("account"),
            sub(
                "contact",
                400,
                [{"errorCode": "INVALID_EMAIL_ADDRESS", "message": "Email: invalid: x@", "fields": ["Email"]}],
            ),
            halted("opportunity"),
        ]
    }

    with pytest.raises(SalesforceRejected) as rejected:
        converter(CannedSalesforce([(200, answer)]), []).convert(ORDER)

    (failure,) = rejected.value.failures
    assert (failure.reference_id, failure.code, failure.fields) == ("contact", "INVALID_EMAIL_ADDRESS", ("Email",))
    assert "x@" not in str(rejected.value)  # Salesforce's message may quote the value: it is not kept


def test_a_server_error_is_retried_the_same_request_being_safe():
    sleeps: list[float] = []
    http = CannedSalesforce([(503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]), (200, upserted())])

    converter(http, sleeps).convert(ORDER)

    assert len(http.requests) == 2 and len(sleeps) == 1
    assert http.requests[0].body == http.requests[1].body


def test_salesforce_down_beyond_the_attempts_is_transient():
    attempts = SalesforcePersonConverter.MAX_ATTEMPTS
    http = CannedSalesforce([(503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}])] * attempts)
    session = requests.Session()
    session.mount("https://", http)
    client = SalesforceRestSource(Authenticator(), session, max_attempts=attempts, sleep=lambda _: None)  # type: ignore[arg-type]

    with pytest.raises(TransientError):
        SalesforcePersonConverter(lambda: client, api_version="62.0").convert(ORDER)

    assert len(http.requests) == attempts


def test_an_answer_without_a_sub_response_per_request_is_an_error():
    answer = {"compositeResponse": upserted()["compositeResponse"][:2]}
    with pytest.raises(SalesforceQueryError, match="UNEXPECTED_RESPONSE"):
        converter(CannedSalesforce([(200, answer)]), []).convert(ORDER)
