"""The template's HTTP API served locally: requests become the payload-2.0 events API Gateway sends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from account_sync.adapters.dynamodb_models import ContactItem
from account_sync.settings import load_settings
from account_sync.wiring import bind_store
from account_sync_cli.__main__ import main as account_sync
from local_stack.__main__ import main
from local_stack.http_api import HttpRoute, LocalHttpApi, http_event, http_routes
from local_stack.lambda_runtime import FunctionSpec, LambdaRuntime
from local_stack.template import lambda_functions

from tests.integration.local_stack.test_cli import LocalSalesforce, UpProcess, eventually
from tests.support.events import load_event

CONTACT = "003000000000000001"


@pytest.fixture
def api(function_env, stack_resources, sam_template) -> Iterator[LocalHttpApi]:
    bind_store(load_settings())
    runtime = LambdaRuntime(lambda_functions(sam_template, stack_resources))
    with LocalHttpApi(runtime, http_routes(sam_template)) as api:
        yield api


def test_the_routes_are_the_templates():
    routes = {(r.method, r.path): r.function_logical_id for r in http_routes()}
    assert routes == {
        ("POST", "/contacts/{contact_id}/account-edits"): "MarketingApiFunction",
        ("GET", "/contacts/{contact_id}/activities"): "MarketingApiFunction",
        ("GET", "/accounts/{account_id}/suppressed-changes"): "MarketingApiFunction",
        ("POST", "/people/{person_id}/convert"): "ConvertPersonFunction",
    }


def test_a_request_becomes_the_event_api_gateway_sends():
    (route,) = [r for r in http_routes() if r.path == "/contacts/{contact_id}/account-edits"]
    parameters = route.match("POST", f"/contacts/{CONTACT}/account-edits")
    body = b'{"field": "Industry", "value": "Retail"}'

    event = http_event(
        route,
        "POST",
        f"/contacts/{CONTACT}/account-edits?dry=1&dry=2",
        {"Content-Type": "application/json", "User-Agent": "curl/8"},
        body,
        parameters or {},
        "127.0.0.1:3000",
    )

    recorded = load_event("api_local_edit.json")
    assert set(event) == set(recorded) | {"queryStringParameters"}
    assert set(event["requestContext"]) == set(recorded["requestContext"])
    assert set(event["requestContext"]["authorizer"]["iam"]) == set(recorded["requestContext"]["authorizer"]["iam"])
    assert event["routeKey"] == recorded["routeKey"] == event["requestContext"]["routeKey"]
    assert event["pathParameters"] == {"contact_id": CONTACT}
    assert event["queryStringParameters"] == {"dry": "1,2"}
    assert event["headers"]["content-type"] == "application/json"
    assert (event["body"], event["isBase64Encoded"]) == (body.decode(), False)
    assert route.match("GET", f"/contacts/{CONTACT}/account-edits") is None
    assert route.match("POST", f"/contacts/{CONTACT}/x/account-edits") is None


def test_the_functions_answer_over_http(api):
    ContactItem(CONTACT, account_fields={}, contact_modstamp="2026-11-27T09:00:00.000Z").save()

    refused = requests.post(
        f"{api.url}contacts/{CONTACT}/account-edits", json={"field": "Industry", "value": "x"}, timeout=30
    )
    history = requests.get(f"{api.url}contacts/{CONTACT}/activities", params={"limit": "5"}, timeout=30)

    assert refused.status_code == 409 and refused.headers["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "CONTACT_HAS_NO_ACCOUNT"
    assert history.status_code == 200 and history.json() == {"items": [], "next_token": None}


def test_an_unknown_route_is_api_gateways_404(api):
    answer = requests.delete(f"{api.url}contacts/{CONTACT}", timeout=30)
    assert (answer.status_code, answer.json()) == (404, {"message": "Not Found"})


def test_a_function_that_fails_is_api_gateways_500(tmp_path):
    (tmp_path / "app.py").write_text("def lambda_handler(event, context):\n    raise RuntimeError('boom')\n")
    runtime = LambdaRuntime([FunctionSpec("BrokenFunction", "broken", tmp_path)])
    route = HttpRoute("BrokenFunction", "GET", "/broken", re.compile("/broken"))
    with LocalHttpApi(runtime, [route]) as api:
        answer = requests.get(f"{api.url}broken", timeout=30)
    assert (answer.status_code, answer.json()) == (500, {"message": "Internal Server Error"})


# --- `python -m local_stack up` serves it: the README's curl story ----------------------------------------


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    process = UpProcess(tmp_path_factory.mktemp("local-stack-api"), "--schedule-seconds", "1", "--seed", "small")
    try:
        process.wait_for(r"cycle 1: ")
        yield process
    finally:
        process.stop()


def test_up_serves_the_api_and_a_local_edit_is_overwritten_by_the_next_salesforce_update(up, capsys):
    def cli(*args: str) -> Any:  # the operator's command line on the running stack (`store` moved there)
        capsys.readouterr()
        assert account_sync(["--local", "--state-dir", str(up.state_dir), "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)

    api = f"http://127.0.0.1:{up.api_port}/"
    up.wait_for(rf"HTTP API \.+ {re.escape(api)}")
    account = up.wait_for(r"(001\w+): exactly").group(1)
    contacts = [c["contact_id"] for c in cli("store", "contacts", "--account", account, "--page-size", "3")["contacts"]]
    session = requests.Session()
    session.trust_env = False

    # a local edit through the first contact reaches the others
    edit = session.post(
        f"{api}contacts/{contacts[0]}/account-edits", json={"field": "Industry", "value": "Edited"}, timeout=30
    )
    assert edit.status_code == 202, edit.text
    eventually(lambda: cli("store", "contact", contacts[2])["contact"]["account_fields"]["Industry"] == "Edited")

    # Salesforce changes the account: the next cycle overwrites the edit, and the history says why
    token = cli_text(capsys, up, "token", "--quiet")
    LocalSalesforce(json.loads((up.state_dir / "stack.json").read_text()), token).update_account(
        account, {"Rating": "Warm"}
    )

    def history() -> list[tuple[str, str, str]]:
        page = session.get(f"{api}contacts/{contacts[2]}/activities", params={"limit": "3"}, timeout=30).json()
        return [(i["attribute_name"], i["new_value"], i["source"]) for i in page["items"]]

    eventually(lambda: ("Rating", "Warm", "salesforce") in history())
    newest, oldest = history()[:2], history()[2]
    assert {(name, source) for name, _, source in newest} == {("Industry", "salesforce"), ("Rating", "salesforce")}
    assert oldest == ("Industry", "Edited", "local")
    assert cli("store", "contact", contacts[2])["contact"]["account_fields"]["Industry"] != "Edited"


def cli_text(capsys: pytest.CaptureFixture[str], up: UpProcess, *args: str) -> str:
    capsys.readouterr()
    assert main([*args, "--state-dir", str(up.state_dir)]) == 0
    return capsys.readouterr().out.strip()
