"""Convert Person through its handler, with the real-shaped HTTP API event, against the Salesforce emulator over
HTTPS (JWT bearer flow, the key in Secrets Manager on moto) and the contacts table from template.yaml.

What it must guarantee (SPEC R5): one Account, one Contact and one Opportunity per person, whatever is retried;
all three or none; a person linked to them entirely or not at all; nobody converted without asking.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from account_sync.adapters import salesforce as salesforce_adapter
from account_sync.adapters.dynamodb import DynamoContactRepository
from account_sync.adapters.dynamodb_models import ContactItem
from account_sync.domain.conversion import EXTERNAL_ID_FIELD, ConversionOrder, conversion_key
from account_sync.ports import TransientError
from local_stack.lambda_runtime import LambdaRuntime
from local_stack.sqs_poller import drain
from salesforce_emulator import SalesforceEmulator

from tests.support.http_api import http_event, response_json

PERSON = "person-0001"  # the person of events/api_convert_person.json
EMAIL = "ada.lovelace@example.org"


@pytest.fixture
def emulator(salesforce) -> SalesforceEmulator:
    return salesforce


@pytest.fixture
def runtime(triggers, emulator) -> LambdaRuntime:
    """The template's functions (the shared `triggers`), those that talk to Salesforce pointed at the emulator."""
    triggers.runtime.add_env({"SALESFORCE_TOKEN_URL": emulator.token_url, "SALESFORCE_CA_BUNDLE": emulator.ca_bundle})
    return triggers.runtime


@pytest.fixture
def no_backoff(monkeypatch) -> None:
    monkeypatch.setattr(salesforce_adapter.random, "uniform", lambda low, high: 0.0)


def given_person(person_id: str = PERSON, email: str = EMAIL, **attributes: Any) -> None:
    ContactItem(person_id, first_name="Ada", last_name="Lovelace", email=email, **attributes).save()


def convert(runtime: LambdaRuntime, person_id: str = PERSON, **changes: Any) -> tuple[int, dict[str, Any]]:
    event = http_event("api_convert_person.json", person_id=person_id)
    if changes:
        event["body"] = json.dumps({**json.loads(event["body"]), **changes})
    result = runtime.invoke("convert_person", event)
    assert result.error is None, result.payload
    return response_json(result.payload)


def warm_up(runtime: LambdaRuntime, emulator: SalesforceEmulator) -> None:
    """The container's org check done, nothing written: a first conversion that Salesforce refuses (an invalid
    email) passes the check on its way."""
    given_person("person-warm-up", email="not an email")
    assert convert(runtime, "person-warm-up")[1]["error"]["code"] == "SALESFORCE_REJECTED"
    assert counts(emulator) == (0, 0, 0)


def records(emulator: SalesforceEmulator) -> dict[str, list[dict[str, Any]]]:
    return {name: emulator.records(name) for name in ("Account", "Contact", "Opportunity")}


def counts(emulator: SalesforceEmulator) -> tuple[int, int, int]:
    found = records(emulator)
    return len(found["Account"]), len(found["Contact"]), len(found["Opportunity"])


def person_item(person_id: str = PERSON) -> ContactItem:
    return ContactItem.get(person_id, consistent_read=True)


LINK = ("conversion_key", "converted_account_id", "converted_contact_id", "converted_opportunity_id", "converted_at")


def conversion_attributes(item: ContactItem) -> dict[str, Any]:
    return {name: value for name, value in item.attribute_values.items() if name in (*LINK, "converted_by")}


def test_a_person_becomes_exactly_one_account_contact_and_opportunity_and_is_linked(runtime, emulator):
    given_person()

    status, body = convert(runtime)

    assert status == 201 and body["created"] is True
    found = records(emulator)
    assert counts(emulator) == (1, 1, 1)
    (account,), (contact,), (opportunity,) = found["Account"], found["Contact"], found["Opportunity"]
    key = conversion_key(PERSON)
    assert account[EXTERNAL_ID_FIELD] == contact[EXTERNAL_ID_FIELD] == opportunity[EXTERNAL_ID_FIELD] == key
    assert (account["Name"], account["Industry"]) == ("Lovelace Analytics", "Technology")
    assert (contact["FirstName"], contact["LastName"], contact["Email"]) == ("Ada", "Lovelace", EMAIL)
    assert contact["AccountId"] == opportunity["AccountId"] == account["Id"]
    assert (opportunity["StageName"], opportunity["CloseDate"]) == ("Prospecting", "2026-12-31")
    assert (body["account_id"], body["contact_id"], body["opportunity_id"]) == (
        account["Id"],
        contact["Id"],
        opportunity["Id"],
    )
    # the person is linked, and is not made a member of the account (the Contact comes with the fetch)
    item = person_item()
    assert conversion_attributes(item) == {
        "conversion_key": key,
        "converted_account_id": account["Id"],
        "converted_contact_id": contact["Id"],
        "converted_opportunity_id": opportunity["Id"],
        "converted_at": body["converted_at"],
        "converted_by": "arn:aws:sts::111122223333:assumed-role/marketing-tool/marketing-tool",
    }
    assert item.account_id is None
    # a cold start checks the org's external id field (one describe per object), then one composite: a single API
    # call for the three records
    assert [kind for _, kind in emulator.request_log if kind != "token"] == ["describe"] * 3 + ["composite"]


def test_a_retry_after_the_link_failed_creates_nothing_new_and_links_the_same_records(runtime, emulator, monkeypatch):
    # given a conversion that reached Salesforce, but whose link in the store failed (a timeout, a throttle)
    given_person()
    link = DynamoContactRepository.link_conversion
    failures = [TransientError("DynamoDB ThrottlingException: Rate exceeded")]

    def link_failing_once(self, conversion):
        if failures:
            raise failures.pop()
        return link(self, conversion)

    monkeypatch.setattr(DynamoContactRepository, "link_conversion", link_failing_once)
    status, body = convert(runtime)
    assert (status, body["error"]["code"]) == (503, "TEMPORARILY_UNAVAILABLE")
    assert counts(emulator) == (1, 1, 1)
    assert conversion_attributes(person_item()) == {}  # nothing half-linked

    # when the same request comes again
    status, body = convert(runtime)

    # then Salesforce finds the same three records by their key: still exactly one of each, now linked
    assert status == 201 and body["created"] is False
    assert counts(emulator) == (1, 1, 1)
    assert body["account_id"] == emulator.records("Account")[0]["Id"]
    assert person_item().converted_contact_id == body["contact_id"] == emulator.records("Contact")[0]["Id"]


def test_a_retry_after_salesforce_timed_out_but_committed_never_creates_a_second_account(
    runtime, emulator, monkeypatch, no_backoff
):
    # given a warm container (its org check done: the describes would time out too), and Salesforce slower than
    # the client waits: every attempt times out, and commits afterwards
    warm_up(runtime, emulator)
    given_person()
    monkeypatch.setattr(salesforce_adapter.SalesforcePersonConverter, "TIMEOUT", (2.0, 0.3))
    emulator.faults.latency_ms = 600
    status, body = convert(runtime)
    assert (status, body["error"]["code"]) == (503, "TEMPORARILY_UNAVAILABLE")
    time.sleep(1.5)  # the timed-out attempts finish on Salesforce's side
    assert counts(emulator) == (1, 1, 1)  # three attempts reached Salesforce, each upserting the same records
    assert conversion_attributes(person_item()) == {}

    # when the person retries once Salesforce is quick again
    emulator.faults.latency_ms = 0
    status, body = convert(runtime)

    # then the conversion is the one that committed
    assert status == 201 and body["created"] is False
    assert counts(emulator) == (1, 1, 1)
    assert person_item().converted_account_id == emulator.records("Account")[0]["Id"]


def test_a_converted_person_is_refused_with_its_records_and_salesforce_is_not_called(runtime, emulator):
    given_person()
    _, first = convert(runtime)
    emulator.reset_request_log()

    status, body = convert(runtime)

    assert status == 409 and body["error"]["code"] == "ALREADY_A_CONTACT"
    assert body["error"]["details"]["contact_id"] == first["contact_id"]
    assert body["error"]["details"]["account_id"] == first["account_id"]
    assert counts(emulator) == (1, 1, 1)
    assert emulator.request_log == []


@pytest.mark.parametrize(
    ("person", "changes", "failed"),
    [
        ({"email": "ada.lovelace at example.org"}, {}, ("contact", "INVALID_EMAIL_ADDRESS", ["Email"])),
        (
            {},
            {"account": {"Name": "Lovelace Analytics", "BillingCity": "L" * 41}},
            ("account", "STRING_TOO_LONG", None),
        ),
    ],
    ids=["contact refused (the second subrequest)", "account refused (the first)"],
)
def test_a_failing_subrequest_creates_nothing_and_links_nothing(runtime, emulator, person, changes, failed):
    given_person(**person)

    status, body = convert(runtime, **changes)

    assert (status, body["error"]["code"]) == (422, "SALESFORCE_REJECTED")
    (cause,) = body["error"]["details"]["failures"]
    assert (cause["record"], cause["code"]) == failed[:2]
    if failed[2]:
        assert cause["fields"] == failed[2]
    assert counts(emulator) == (0, 0, 0)
    assert conversion_attributes(person_item()) == {}


def test_the_last_subrequest_failing_rolls_back_the_account_and_contact_created_before_it(
    runtime, emulator, monkeypatch
):
    # given an Opportunity field Salesforce does not know, slipped into the order at the adapter
    given_person()
    convert_order = salesforce_adapter.SalesforcePersonConverter.convert

    def with_invalid_opportunity_field(self, order: ConversionOrder):
        bad = ConversionOrder(order.key, order.account, order.contact, {**order.opportunity, "Probability__c": 10})
        return convert_order(self, bad)

    monkeypatch.setattr(salesforce_adapter.SalesforcePersonConverter, "convert", with_invalid_opportunity_field)

    status, body = convert(runtime)

    # then the composite answered HTTP 200, but its third sub-response failed: nothing stays, nothing is linked
    assert (status, body["error"]["code"]) == (422, "SALESFORCE_REJECTED")
    assert [(f["record"], f["code"]) for f in body["error"]["details"]["failures"]] == [
        ("opportunity", "INVALID_FIELD")
    ]
    assert counts(emulator) == (0, 0, 0)
    assert conversion_attributes(person_item()) == {}


def test_salesforce_unavailable_creates_nothing_and_the_same_request_later_converts(runtime, emulator, no_backoff):
    given_person()
    emulator.faults.fail_next(count=salesforce_adapter.SalesforcePersonConverter.MAX_ATTEMPTS, status=503)

    status, body = convert(runtime)

    assert (status, body["error"]["code"]) == (503, "TEMPORARILY_UNAVAILABLE")
    assert counts(emulator) == (0, 0, 0) and conversion_attributes(person_item()) == {}
    assert convert(runtime)[0] == 201
    assert counts(emulator) == (1, 1, 1)


def test_a_dropped_connection_is_retried_into_one_conversion(runtime, emulator, no_backoff):
    given_person()
    emulator.faults.drop_next_connections(1)
    assert convert(runtime)[0] == 201
    assert counts(emulator) == (1, 1, 1)


@pytest.mark.parametrize(
    ("given", "person_id", "changes", "status", "code"),
    [
        ("person", PERSON, {"confirm": False}, 400, "CONFIRMATION_REQUIRED"),
        ("person", PERSON, {"opportunity": {"Name": "Deal"}}, 400, "INVALID_REQUEST"),
        ("nobody", PERSON, {}, 404, "PERSON_NOT_FOUND"),
        ("contact", "003000000000000001", {}, 409, "ALREADY_A_CONTACT"),
        ("nameless", PERSON, {}, 400, "CONTACT_LAST_NAME_REQUIRED"),
    ],
)
def test_a_refused_conversion_never_calls_salesforce(runtime, emulator, given, person_id, changes, status, code):
    if given == "person":
        given_person()
    elif given == "contact":  # a Salesforce Contact the fetch brought in
        ContactItem(person_id, account_id="001000000000000001", contact_modstamp="2026-11-27T10:00:00.000Z").save()
    elif given == "nameless":
        ContactItem(person_id, email=EMAIL).save()
    emulator.reset_request_log()

    answer = convert(runtime, person_id, **changes)

    assert (answer[0], answer[1]["error"]["code"]) == (status, code)
    assert emulator.request_log == []
    assert counts(emulator) == (0, 0, 0)


def test_the_converted_contact_arrives_with_the_fetch_beside_the_person_without_a_fight(runtime, emulator, triggers):
    # given a converted person
    given_person()
    _, converted = convert(runtime)

    # when the next sync cycle runs (the fetch, then the fan-out from its queue)
    assert runtime.invoke("fetch_changes", {}).error is None
    drain(list(triggers.pollers.values()), timeout=20, idle_wait=0.01)

    # then the Contact is a member of its new account under its Salesforce Id, with the account's fields
    contact = ContactItem.get(converted["contact_id"], consistent_read=True)
    assert contact.account_id == converted["account_id"]
    assert contact.account_fields.as_dict()["Name"] == "Lovelace Analytics"
    members = list(ContactItem.by_account.query(converted["account_id"]))
    assert [m.contact_id for m in members] == [converted["contact_id"]]  # counted once for the 5000 rule
    # and the person keeps its link, untouched by the sync
    person = person_item()
    assert person.account_id is None and person.converted_contact_id == converted["contact_id"]
    # a marketing tool can now edit the account through the contact
    edit = http_event(
        "api_local_edit.json", contact_id=converted["contact_id"], body={"field": "Rating", "value": "Hot"}
    )
    assert response_json(runtime.invoke("marketing_api", edit).payload)[0] == 202


def test_no_name_or_email_reaches_a_log_line(runtime, emulator, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="account-sync")
    given_person(email="ada.lovelace at example.org")
    convert(runtime)  # refused by Salesforce: the Contact's email
    ContactItem(PERSON).update(actions=[ContactItem.email.set(EMAIL)])
    convert(runtime)  # converted
    convert(runtime)  # already a contact

    messages = [record.getMessage() for record in caplog.records]
    assert {"Salesforce refused the request", "person converted", "request refused"} <= set(messages)
    printed = capfd.readouterr()
    logged = "\n".join(f"{r.getMessage()} {json.dumps(vars(r), default=str)}" for r in caplog.records)
    for text in (printed.out, printed.err, logged):
        for personal in ("Lovelace", "ada.lovelace", "example.org"):
            assert personal not in text


# --- the org's external id field, checked once per container ------------------------------------------------------


def salesforce_calls(emulator: SalesforceEmulator) -> list[str]:
    return [kind for _, kind in emulator.request_log if kind != "token"]


def test_a_warm_container_converts_with_the_composite_alone(runtime, emulator):
    given_person()
    given_person("person-0002", email="grace.hopper@example.org")
    assert convert(runtime)[0] == 201
    assert salesforce_calls(emulator) == ["describe"] * 3 + ["composite"]  # the cold start's check
    emulator.reset_request_log()

    status, body = convert(runtime, "person-0002")

    assert status == 201 and body["created"] is True
    assert salesforce_calls(emulator) == ["composite"]  # the check costs a warm request nothing
    assert counts(emulator) == (2, 2, 2)


@pytest.mark.parametrize(
    ("set_up", "sobject", "problem"),
    [
        (lambda emulator: emulator.remove_field("Contact", EXTERNAL_ID_FIELD), "Contact", "missing"),
        (
            lambda emulator: emulator.change_field("Opportunity", EXTERNAL_ID_FIELD, external_id=False),
            "Opportunity",
            "not_external_id",
        ),
    ],
    ids=["missing on Contact", "not an external id on Opportunity"],
)
def test_an_org_without_the_external_id_field_is_a_clear_503_logged_once_and_nothing_is_written(
    runtime, emulator, caplog, set_up, sobject, problem
):
    # given an org whose admin has not set the key field up on one object
    caplog.set_level(logging.INFO, logger="account-sync")
    set_up(emulator)
    given_person()

    # when a person is converted, twice
    first = convert(runtime)
    calls_first = salesforce_calls(emulator)
    emulator.reset_request_log()
    second = convert(runtime)

    # then both answers name the object and the field, and nothing reached the composite
    for status, body in (first, second):
        assert (status, body["error"]["code"]) == (503, "SALESFORCE_EXTERNAL_ID_MISSING")
        assert sobject in body["error"]["message"] and EXTERNAL_ID_FIELD in body["error"]["message"]
        assert body["error"]["details"] == {
            "problems": [{"object": sobject, "field": EXTERNAL_ID_FIELD, "problem": problem}]
        }
    assert calls_first == ["describe"] * 3  # checked once, at the first conversion, before any write
    assert salesforce_calls(emulator) == []  # the verdict is kept for the container's life: no call at all
    assert counts(emulator) == (0, 0, 0)
    assert conversion_attributes(person_item()) == {}
    # and the operator reads it once in the logs (the 503s also show in the API's 5xx alarm)
    reports = [r for r in caplog.records if r.getMessage() == "the Salesforce org is not set up for this request"]
    assert len(reports) == 1 and reports[0].levelno == logging.ERROR


def test_once_the_field_is_set_up_the_same_container_converts_after_the_recheck_interval(
    runtime, emulator, monkeypatch
):
    # given a container that found the key field missing
    emulator.remove_field("Account", EXTERNAL_ID_FIELD)
    given_person()
    assert convert(runtime)[1]["error"]["code"] == "SALESFORCE_EXTERNAL_ID_MISSING"

    # when the admin creates the field: within the interval the warm container keeps its verdict (no call)
    emulator.reset_schema()
    emulator.reset_request_log()
    assert convert(runtime)[1]["error"]["code"] == "SALESFORCE_EXTERNAL_ID_MISSING"
    assert salesforce_calls(emulator) == []
    # and once the interval has passed, it describes the object found wrong again, and only it
    monkeypatch.setattr(salesforce_adapter.SalesforcePersonConverter, "RECHECK_SECONDS", 0.0)
    status, body = convert(runtime)

    # then the person is converted, without a deployment
    assert status == 201 and body["created"] is True
    assert salesforce_calls(emulator) == ["describe", "composite"]
    assert counts(emulator) == (1, 1, 1)
