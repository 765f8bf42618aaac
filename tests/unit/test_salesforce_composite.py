"""Convert Person's composite call through the real simple-salesforce client, over a canned transport.

Salesforce answers a composite with HTTP 200 even when a subrequest failed: every sub-response is checked. Before
its first composite, a converter (one per container) checks the org's external id field with one describe per
object, and keeps the verdict.
"""

from __future__ import annotations

import json

import pytest
import requests
from account_sync.adapters.salesforce import SalesforcePersonConverter, SalesforceRestSource, external_id_problem
from account_sync.domain.conversion import EXTERNAL_ID_FIELD, ConversionOrder, conversion_key
from account_sync.ports import (
    SalesforceQueryError,
    SalesforceRejected,
    SalesforceSetupError,
    SetupProblem,
    TransientError,
)

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


def described(sobject: str, key: dict | None = None, *, with_key: bool = True) -> dict:
    """An object's describe, its key field a unique external id unless `key` says otherwise."""
    fields = [{"name": "Id", "externalId": False, "unique": False}]
    if with_key:
        fields.append({"name": EXTERNAL_ID_FIELD, "type": "string", "externalId": True, "unique": True, **(key or {})})
    return {"name": sobject, "fields": fields}


# The describes of a ready org, as the converter asks for them before its first composite.
READY = [(200, described(sobject)) for sobject in SalesforcePersonConverter.OBJECTS]
DESCRIBE_URLS = [
    f"https://acme.my.salesforce.com/services/data/v62.0/sobjects/{sobject}/describe/"
    for sobject in SalesforcePersonConverter.OBJECTS
]
COMPOSITE_URL = "https://acme.my.salesforce.com/services/data/v62.0/composite"


def halted(reference: str) -> dict:
    return sub(reference, 400, [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back"}])


def converter(http: CannedSalesforce, sleeps: list[float]) -> SalesforcePersonConverter:
    return SalesforcePersonConverter(lambda: source(Authenticator(), http, sleeps), api_version="62.0")


def test_one_composite_upserts_the_three_records_by_the_conversion_key_all_or_none():
    http = CannedSalesforce([*READY, (200, upserted())])

    records = converter(http, []).convert(ORDER)

    *describes, request = http.requests
    assert [(d.method, d.url) for d in describes] == [("GET", url) for url in DESCRIBE_URLS]
    assert (request.method, request.url) == ("POST", COMPOSITE_URL)
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
    records = converter(CannedSalesforce([*READY, (200, upserted(created=False))]), []).convert(ORDER)
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
        converter(CannedSalesforce([*READY, (200, answer)]), []).convert(ORDER)

    (failure,) = rejected.value.failures
    assert (failure.reference_id, failure.code, failure.fields) == ("contact", "INVALID_EMAIL_ADDRESS", ("Email",))
    assert "x@" not in str(rejected.value)  # Salesforce's message may quote the value: it is not kept


def test_a_server_error_is_retried_the_same_request_being_safe():
    sleeps: list[float] = []
    http = CannedSalesforce(
        [*READY, (503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]), (200, upserted())]
    )

    converter(http, sleeps).convert(ORDER)

    composites = http.requests[len(READY) :]
    assert len(composites) == 2 and len(sleeps) == 1
    assert composites[0].body == composites[1].body


def test_salesforce_down_beyond_the_attempts_is_transient():
    attempts = SalesforcePersonConverter.MAX_ATTEMPTS
    http = CannedSalesforce([*READY, *[(503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}])] * attempts])
    session = requests.Session()
    session.mount("https://", http)
    client = SalesforceRestSource(Authenticator(), session, max_attempts=attempts, sleep=lambda _: None)  # type: ignore[arg-type]

    with pytest.raises(TransientError):
        SalesforcePersonConverter(lambda: client, api_version="62.0").convert(ORDER)

    assert len(http.requests) == len(READY) + attempts


def test_an_answer_without_a_sub_response_per_request_is_an_error():
    answer = {"compositeResponse": upserted()["compositeResponse"][:2]}
    with pytest.raises(SalesforceQueryError, match="UNEXPECTED_RESPONSE"):
        converter(CannedSalesforce([*READY, (200, answer)]), []).convert(ORDER)


# --- the org's external id field, checked once per container ----------------------------------------------------


def test_the_org_is_checked_once_before_the_first_composite_and_never_again():
    http = CannedSalesforce([*READY, (200, upserted()), (200, upserted(created=False))])
    once = converter(http, [])

    once.convert(ORDER)
    once.convert(ORDER)  # the warm container's next conversion

    assert [(r.method, r.url) for r in http.requests] == [
        *[("GET", url) for url in DESCRIBE_URLS],
        ("POST", COMPOSITE_URL),
        ("POST", COMPOSITE_URL),
    ]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ((200, described("Contact", with_key=False)), SetupProblem.MISSING),
        ((200, described("Contact", {"externalId": False})), SetupProblem.NOT_EXTERNAL_ID),
        ((200, described("Contact", {"unique": False})), SetupProblem.NOT_UNIQUE),
        ((404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]),
         SetupProblem.OBJECT_NOT_AVAILABLE),
    ],
    ids=["missing", "not an external id", "not unique", "object not visible"],
)  # fmt: skip
def test_an_org_without_the_key_field_is_refused_before_any_write_and_the_verdict_kept(answer, problem):
    http = CannedSalesforce([READY[0], answer, READY[2]])
    once = converter(http, [])

    with pytest.raises(SalesforceSetupError) as first:
        once.convert(ORDER)
    with pytest.raises(SalesforceSetupError) as again:
        once.convert(ORDER)

    assert [r.url for r in http.requests] == DESCRIBE_URLS  # no composite, and no describe the second time
    (found,) = first.value.problems
    assert (found.sobject, found.field, found.problem) == ("Contact", EXTERNAL_ID_FIELD, problem)
    assert "Contact" in str(first.value) and (
        problem is SetupProblem.OBJECT_NOT_AVAILABLE or EXTERNAL_ID_FIELD in str(first.value)
    )
    assert (first.value.first_report, again.value.first_report) == (True, False)  # logged once
    assert again.value.problems == first.value.problems


def test_every_object_without_the_key_field_is_named_at_once():
    http = CannedSalesforce(
        [(200, described(sobject, with_key=False)) for sobject in SalesforcePersonConverter.OBJECTS]
    )

    with pytest.raises(SalesforceSetupError) as refused:
        converter(http, []).convert(ORDER)

    assert [p.sobject for p in refused.value.problems] == ["Account", "Contact", "Opportunity"]


def test_a_describe_that_fails_is_no_verdict_and_the_next_conversion_asks_again():
    down = (503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}])
    http = CannedSalesforce(
        [READY[0], *[down] * SalesforcePersonConverter.MAX_ATTEMPTS, READY[1], READY[2], (200, upserted())]
    )
    session = requests.Session()
    session.mount("https://", http)
    client = SalesforceRestSource(  # type: ignore[arg-type]
        Authenticator(), session, max_attempts=SalesforcePersonConverter.MAX_ATTEMPTS, sleep=lambda _: None
    )
    once = SalesforcePersonConverter(lambda: client, api_version="62.0")

    with pytest.raises(TransientError):
        once.convert(ORDER)
    assert once.convert(ORDER).account_id == "001Hx0000000001AAA"

    # Account's answer was kept; Contact was asked again, then Opportunity, then the composite
    account, contact, opportunity = DESCRIBE_URLS
    assert [r.url for r in http.requests] == [
        account,
        *[contact] * SalesforcePersonConverter.MAX_ATTEMPTS,
        contact,
        opportunity,
        COMPOSITE_URL,
    ]


def test_the_key_field_is_found_whatever_the_case_of_its_api_name():
    described_lower = {"fields": [{"name": EXTERNAL_ID_FIELD.lower(), "externalId": True, "unique": True}]}
    assert external_id_problem(described_lower, EXTERNAL_ID_FIELD) is None
    assert external_id_problem({}, EXTERNAL_ID_FIELD) is SetupProblem.MISSING
    assert external_id_problem({"fields": "nonsense"}, EXTERNAL_ID_FIELD) is SetupProblem.MISSING


def test_an_org_found_wrong_is_described_again_after_the_recheck_interval_and_a_ready_one_never():
    missing = (200, described("Contact", with_key=False))
    http = CannedSalesforce([READY[0], missing, READY[2], READY[1], (200, upserted()), (200, upserted())])
    clock = [1000.0]
    once = SalesforcePersonConverter(
        lambda: source(Authenticator(), http, []), api_version="62.0", clock=lambda: clock[0]
    )

    with pytest.raises(SalesforceSetupError):
        once.convert(ORDER)
    clock[0] += SalesforcePersonConverter.RECHECK_SECONDS - 1
    with pytest.raises(SalesforceSetupError) as within:
        once.convert(ORDER)  # within the interval: the verdict, no call
    clock[0] += 1
    once.convert(ORDER)  # the admin fixed the field: only the object found wrong is described again
    clock[0] += 10 * SalesforcePersonConverter.RECHECK_SECONDS
    once.convert(ORDER)  # a ready verdict is kept for good

    assert within.value.first_report is False
    assert [r.url for r in http.requests] == [*DESCRIBE_URLS, DESCRIBE_URLS[1], COMPOSITE_URL, COMPOSITE_URL]
