"""Security: no credential, token, private key or personal data in a log line or an error, over a whole run.

A full sync through the three handlers (fetch over HTTPS with the JWT bearer flow, fan-out, activity log), with
the faults that make the code talk about what went wrong: a session expired mid-run and renewed, a token request
refused, a malformed queue message, a throttled write. Everything the functions print (Powertools' JSON lines and
EMF metrics), every log record with all its fields and traceback, and every error Lambda would return are
scanned for the key, the tokens and assertions issued during the run, the connected app's identity, and the
contacts' names and email addresses. Ids, counts and field names are what logs may hold.
"""

from __future__ import annotations

import json
import logging
import re

import boto3
import jwt
from account_sync.adapters import salesforce_auth
from account_sync.adapters.salesforce_auth import JwtBearerAuthenticator
from aws_lambda_powertools.utilities import parameters
from salesforce_emulator import generate_client_keypair

from tests.integration.conftest import SALESFORCE_CONSUMER_KEY as CONSUMER_KEY
from tests.integration.conftest import SALESFORCE_USER as INTEGRATION_USER
from tests.integration.guarantees.conftest import SCHEDULE_EVENT, point_runtime_at
from tests.integration.guarantees.faults import Fault, client_error, table

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PEOPLE = [("Ada", "Lovelace", "ada.lovelace@example.org"), ("Grace", "Hopper", "grace.hopper@example.net")]


def record_text(record: logging.LogRecord) -> str:
    """A log record as a log line could show it: its message, every extra field, its traceback."""
    fields = {name: value for name, value in vars(record).items() if name not in ("args", "msg", "exc_info")}
    text = [record.getMessage(), json.dumps(fields, default=str)]
    if record.exc_info:
        text.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(text)


def test_a_whole_run_with_its_failures_logs_no_secret_and_no_personal_data(
    salesforce, pipeline, faults, client_keys, function_env, caplog, capsys, monkeypatch
):
    # the levels a deployed function logs at: its own logger at POWERTOOLS_LOG_LEVEL, the libraries' at WARNING
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="account-sync")
    issued: list[str] = []  # every access token and JWT assertion of the run
    request_token = JwtBearerAuthenticator._request_token
    encode = jwt.encode

    def recording_request_token(self):
        token = request_token(self)
        issued.append(token.access_token)
        return token

    monkeypatch.setattr(JwtBearerAuthenticator, "_request_token", recording_request_token)
    monkeypatch.setattr(salesforce_auth.jwt, "encode", lambda *a, **k: issued.append(encode(*a, **k)) or issued[-1])
    point_runtime_at(pipeline.runtime, salesforce)
    errors = []

    # given accounts with contacts (names, emails) in Salesforce
    account_ids = salesforce.bulk_create("Account", [{"Name": "Acme", "Industry": "Energy"}, {"Name": "Globex"}])
    salesforce.bulk_create(
        "Contact",
        [
            {"FirstName": first, "LastName": last, "Email": email, "AccountId": account_ids[n]}
            for n, (first, last, email) in enumerate(PEOPLE)
        ],
    )
    # when they sync, then change with a session expiring on the way and a throttled activity write
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).error is None
    pipeline.drain()
    salesforce.update("Account", account_ids[0], {"Industry": "Retail"})
    salesforce.faults.expire_sessions()
    faults.add(
        Fault(
            "dynamodb",
            "BatchWriteItem",
            client_error("ProvisionedThroughputExceededException"),
            when=table("-activities"),
            times=6,
        )
    )
    assert pipeline.invoke("fetch_changes", SCHEDULE_EVENT).error is None
    pipeline.queue_raw('{"type": "contact_changes", "schema": 1, "versions": [{"email": 42}]}', group=account_ids[0])
    pipeline.drain()
    # and a run whose token request is refused (the connected app's secret was replaced by a wrong one)
    other_key, _ = generate_client_keypair()
    boto3.client("secretsmanager").put_secret_value(
        SecretId=function_env["SALESFORCE_SECRET_NAME"],
        SecretString=json.dumps(
            {"consumer_key": "3MVG9-other", "username": INTEGRATION_USER, "private_key": other_key}
        ),
    )
    parameters.clear_caches()
    pipeline.runtime.reset("fetch_changes")
    refused = pipeline.invoke("fetch_changes", SCHEDULE_EVENT)
    errors.append(json.dumps(refused.error))
    assert refused.error["errorType"] == "SalesforceAuthError"

    # then nothing printed, logged or returned holds a secret or a person's data
    output = capsys.readouterr()
    scanned = "\n".join([output.out, output.err, *errors, *(record_text(r) for r in caplog.records)])
    assert "change applied" in scanned and "activities written" in scanned  # the run was logged
    secrets = [client_keys[0], other_key, *issued, CONSUMER_KEY]
    secret_lines = [line for secret in secrets for line in secret.splitlines() if len(line) > 20]
    assert issued and all(line not in scanned for line in secret_lines)
    assert "PRIVATE KEY" not in scanned and "Bearer " not in scanned and "eyJ" not in scanned
    for first, last, email in PEOPLE:
        assert first not in scanned and last not in scanned and email not in scanned
    assert EMAIL.findall(scanned) == []  # the integration user's address included
