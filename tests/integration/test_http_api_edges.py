"""Issue 10, section 3: the HTTP API's answers are true. No request makes it answer 500; each refusal is a 4xx
with a code. The handlers run as Lambda runs them, on moto resources from template.yaml (`stack`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_marketing_api import SYNCED_AT, Stack, given_contacts
from tests.support.http_api import http_event


@pytest.fixture
def api(triggers, stack_resources) -> Stack:
    return Stack(triggers.runtime, stack_resources, list(triggers.pollers.values()))


CONTACT = "003000000000000001"
DEEP = "[" * 20_000 + "]" * 20_000  # within the 64 KiB body limit, 20 times json's recursion limit


def edit_body(value_json: str) -> str:
    return '{"field": "Industry", "value": ' + value_json + "}"


def token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


HOSTILE = [
    # the history's query string
    (
        "limit=²",
        http_event("api_contact_activities.json", contact_id=CONTACT, query={"limit": "²"}),
        400,
        "INVALID_REQUEST",
    ),
    (
        "limit=٣",
        http_event("api_contact_activities.json", contact_id=CONTACT, query={"limit": "٣"}),
        400,
        "INVALID_REQUEST",
    ),
    (
        "limit=-1",
        http_event("api_contact_activities.json", contact_id=CONTACT, query={"limit": "-1"}),
        400,
        "INVALID_REQUEST",
    ),
    (
        "limit=huge",
        http_event("api_contact_activities.json", contact_id=CONTACT, query={"limit": "9" * 5000}),
        400,
        "INVALID_REQUEST",
    ),
    (
        "next_token nested deep",
        http_event("api_contact_activities.json", contact_id=CONTACT, query={"next_token": token(DEEP)}),
        400,
        "INVALID_NEXT_TOKEN",
    ),
    # the edit's body
    ("body nested deep", http_event("api_local_edit.json", contact_id=CONTACT, raw_body=DEEP), 400, "INVALID_JSON"),
    (
        "value nested deep",
        http_event(
            "api_local_edit.json", contact_id=CONTACT, raw_body=edit_body('{"a":' * 10_000 + "1" + "}" * 10_000)
        ),
        400,
        "INVALID_JSON",
    ),
    ("NaN", http_event("api_local_edit.json", contact_id=CONTACT, raw_body=edit_body("NaN")), 400, "INVALID_JSON"),
    (
        "1e400",
        http_event("api_local_edit.json", contact_id=CONTACT, raw_body=edit_body("1e400")),
        400,
        "VALUE_NOT_STORABLE",
    ),
    (
        "39 digits",
        http_event("api_local_edit.json", contact_id=CONTACT, raw_body=edit_body("1" * 39)),
        400,
        "VALUE_NOT_STORABLE",
    ),
    (
        "1e-200",
        http_event("api_local_edit.json", contact_id=CONTACT, raw_body=edit_body("1e-200")),
        400,
        "VALUE_NOT_STORABLE",
    ),
    (
        "lone surrogate",
        http_event("api_local_edit.json", contact_id=CONTACT, raw_body=edit_body('"a\\ud800"')),
        400,
        "VALUE_NOT_STORABLE",
    ),
    (
        "5000 digits",
        http_event("api_local_edit.json", contact_id=CONTACT, raw_body=edit_body("7" * 5000)),
        400,
        "INVALID_JSON",
    ),
    (
        "text/plain",
        http_event(
            "api_local_edit.json", contact_id=CONTACT, raw_body=edit_body('"x"'), headers={"Content-Type": "text/plain"}
        ),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
]


def base64_body(event: dict[str, Any], raw: bytes) -> dict[str, Any]:
    event = dict(event, body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    return event


HOSTILE += [
    (
        "invalid UTF-8",
        base64_body(http_event("api_local_edit.json", contact_id=CONTACT, raw_body="{}"), b'{"field": "\xff\xfe"}'),
        400,
        "INVALID_BODY_ENCODING",
    ),
    (
        "not base64",
        dict(
            http_event("api_local_edit.json", contact_id=CONTACT, raw_body="{}"),
            body="%%%not base64%%%",
            isBase64Encoded=True,
        ),
        400,
        "INVALID_BODY_ENCODING",
    ),
]


@pytest.mark.parametrize(("event", "status", "code"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_request_is_a_4xx_with_its_code_never_a_500(api, event, status, code):
    given_contacts(1)
    api.account_change(SYNCED_AT)
    answered = api.call(event)
    assert answered[0] == status and answered[1]["error"]["code"] == code, answered


# --- fuzzing: whatever arrives, no 5xx ------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
EDIT_BODY = st.fixed_dictionaries(
    {"field": st.sampled_from(["Industry", "Name", "Rating", "Bad Name", ""]) | st.text(max_size=10), "value": JSON}
)
BODY = st.one_of(
    st.none(),
    st.text(max_size=200),
    JSON.map(json.dumps),
    EDIT_BODY.map(json.dumps),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.binary(max_size=64).map(lambda raw: ("b64", raw)),
)
TEXT = st.text(max_size=30)
QUERY = st.dictionaries(
    st.sampled_from(["limit", "next_token", "other"]) | TEXT,
    st.sampled_from(["1", "200", "0", "²", "-1", "1e3", " 5", "99999999999999999999"]) | TEXT,
    max_size=3,
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])
        | TEXT,
        "idempotency-key": st.sampled_from(["k-1", "k-2"]) | TEXT,
    },
)
ROUTES = ["api_local_edit.json", "api_contact_activities.json", "api_account_suppressed_changes.json"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    subject=st.sampled_from([CONTACT, "001000000000000001"]) | TEXT,
    body=BODY,
    query=QUERY,
    headers=HEADERS,
)
def test_no_request_makes_the_api_answer_a_5xx(api, route, subject, body, query, headers):
    parameter = "account_id" if "suppressed" in route else "contact_id"
    event = http_event(route, query=query, headers=headers, **{parameter: subject.replace("/", "_") or "x"})
    if isinstance(body, tuple):
        event.update(body=base64.b64encode(body[1]).decode(), isBase64Encoded=True)
    elif body is not None:
        event.update(body=body, isBase64Encoded=False)
    result = api.runtime.invoke("MarketingApiFunction", event)
    assert result.error is None, result.payload
    assert result.payload["statusCode"] < 500, (result.payload, event)
    if result.payload["statusCode"] >= 400:
        assert json.loads(result.payload["body"])["error"]["code"]
