"""Integration fixtures: moto in-process, with every resource created from template.yaml.

    def test_something(function_env, stack_resources):
        url = stack_resources.queue_url("AccountChangesQueue")   # tables and queues exactly as the template says

* `aws`: `moto.mock_aws()` with fake credentials and us-east-1; yields a boto3 Session for clients.
* `stack_resources`: every table and queue of template.yaml (stage "test"), a `local_stack.Resources`
  (logical id → name, queue URL, ARN).
* `function_env`: the union of every function's environment (table names, queue URLs...) on `os.environ`;
  returns it as a dict.

Add fixtures below, one short docstring each. Tests that need a moto *server* (another process, or the
functions on the local stack) use `local_stack.MotoServer` / `local_stack.stack.LocalStack` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from account_sync.settings import load_settings
from account_sync.wiring import bind_store
from aws_lambda_powertools.utilities import parameters
from local_stack.lambda_runtime import LambdaRuntime
from local_stack.moto_fixes import apply_moto_fixes
from local_stack.moto_server import fake_aws_env, reset_pynamodb_connections
from local_stack.sqs_poller import SqsEventSourcePoller
from local_stack.template import (
    Resources,
    Template,
    create_resources,
    lambda_functions,
    load_template,
    union_environment,
)
from local_stack.triggers import sqs_event_sources
from moto import mock_aws
from salesforce_emulator import SalesforceEmulator, generate_client_keypair

TEST_STAGE = "test"


@pytest.fixture(scope="session")
def sam_template() -> Template:
    """template.yaml, parsed once."""
    return load_template()


@pytest.fixture(scope="session")
def boto3_session() -> boto3.session.Session:
    """One boto3 Session for every test of a worker: its clients share the service models it has read once (a
    new Session reads them again from disk, a tenth of a second a client). Credentials and endpoints are still
    each test's: a client reads them from the environment when it is made."""
    return boto3.session.Session(region_name="us-east-1")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, boto3_session: boto3.session.Session) -> Iterator[boto3.session.Session]:
    """moto in-process: nothing leaves the process, whatever the code under test does."""
    for name, value in fake_aws_env().items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    apply_moto_fixes()
    reset_pynamodb_connections()  # a model's cached client may point at an earlier test's moto server
    with mock_aws():
        yield boto3_session
    reset_pynamodb_connections()


@pytest.fixture
def stack_resources(aws: boto3.session.Session, sam_template: Template) -> Resources:
    """Every table and queue of template.yaml, created on the `aws` moto."""
    return create_resources(sam_template, aws, stage=TEST_STAGE)


@pytest.fixture
def function_env(stack_resources: Resources, sam_template: Template, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every function's environment variables, resolved against `stack_resources`, set on os.environ."""
    environment = union_environment(sam_template, stack_resources)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


# --- the Salesforce emulator ---------------------------------------------------------------------------------

SALESFORCE_CONSUMER_KEY = "3MVG9-account-sync-tests"
SALESFORCE_USER = "integration.user@example.com"


@pytest.fixture(scope="session")
def client_keys() -> tuple[str, str]:
    """(private key PEM, certificate PEM) of the connected app the tests log in with."""
    return generate_client_keypair()


@pytest.fixture
def salesforce(
    client_keys: tuple[str, str], function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SalesforceEmulator]:
    """The Salesforce emulator over HTTPS (pages of 5 records), the connected app's key in Secrets Manager under
    the template's secret name, and the Salesforce functions' environment (token URL, CA bundle) pointed at it."""
    emulator = SalesforceEmulator(
        consumer_key=SALESFORCE_CONSUMER_KEY,
        username=SALESFORCE_USER,
        client_certificate_pem=client_keys[1],
        page_size=5,
    ).start()
    secret = {"consumer_key": SALESFORCE_CONSUMER_KEY, "username": SALESFORCE_USER, "private_key": client_keys[0]}
    boto3.client("secretsmanager").create_secret(
        Name=function_env["SALESFORCE_SECRET_NAME"], SecretString=json.dumps(secret)
    )
    parameters.clear_caches()  # Powertools caches secrets per process, and every test has its own key
    monkeypatch.setenv("SALESFORCE_TOKEN_URL", emulator.token_url)
    monkeypatch.setenv("SALESFORCE_CA_BUNDLE", emulator.ca_bundle)
    yield emulator
    emulator.stop()
    parameters.clear_caches()


# --- the functions and their SQS triggers ----------------------------------------------------------------------


@dataclass
class Triggers:
    """Every function of the template in-process, and one SQS trigger per SQS event, by function logical id."""

    runtime: LambdaRuntime
    pollers: dict[str, SqsEventSourcePoller]


@pytest.fixture
def triggers(
    function_env: dict[str, str], stack_resources: Resources, sam_template: Template, aws: boto3.session.Session
) -> Triggers:
    """The template's functions and SQS triggers on the `aws` moto (a failed message comes back at once:
    visibility 0, and a throttled one too: the consumers' retry visibility starts at 0 s); the store bound for
    the test's own reads."""
    bind_store(load_settings())
    runtime = LambdaRuntime(
        lambda_functions(sam_template, stack_resources), extra_env={"RETRY_VISIBILITY_BASE_SECONDS": "0"}
    )
    sqs = aws.client("sqs")
    pollers = {}
    for source in sqs_event_sources(sam_template, stack_resources):
        assert source.queue_logical_id is not None

        def invoke(event: dict[str, Any], function: str = source.function_logical_id) -> Any:
            return runtime.invoke(function, event).raise_for_error()

        pollers[source.function_logical_id] = SqsEventSourcePoller(
            sqs,
            stack_resources.queue_url(source.queue_logical_id),
            stack_resources.queue_arn(source.queue_logical_id),
            invoke,
            batch_size=source.batch_size,
            report_batch_item_failures=source.report_batch_item_failures,
            visibility_timeout=0,
            name=source.function_logical_id,
        )
    return Triggers(runtime, pollers)
