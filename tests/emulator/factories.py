"""Test data factories for the emulator tests: record values, JWT assertions, clients."""

from __future__ import annotations

import itertools
import time

import jwt
import requests
from salesforce_emulator import SalesforceEmulator
from simple_salesforce import Salesforce

CONSUMER_KEY = "3MVG9-test-consumer-key"
USERNAME = "sync@example.com"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_sequence = itertools.count(1)


def account_values(**overrides: object) -> dict:
    number = next(_sequence)
    return {"Name": f"Account {number}", "Industry": "Energy", "BillingCountry": "France", **overrides}


def contact_values(account_id: str | None, **overrides: object) -> dict:
    number = next(_sequence)
    return {
        "AccountId": account_id,
        "FirstName": "Ada",
        "LastName": f"Contact {number}",
        "Email": f"contact{number}@example.com",
        **overrides,
    }


def opportunity_values(account_id: str | None, **overrides: object) -> dict:
    number = next(_sequence)
    return {
        "Name": f"Opportunity {number}",
        "AccountId": account_id,
        "StageName": "Prospecting",
        "CloseDate": "2026-12-31",
        **overrides,
    }


def assertion(
    private_key_pem: str,
    *,
    iss: str = CONSUMER_KEY,
    sub: str = USERNAME,
    aud: str = "https://login.salesforce.com",
    expires_in: int = 180,
    algorithm: str = "RS256",
) -> str:
    claims = {"iss": iss, "sub": sub, "aud": aud, "exp": int(time.time()) + expires_in}
    return jwt.encode(claims, private_key_pem, algorithm=algorithm)


def exchange(session: requests.Session, emulator: SalesforceEmulator, signed: str) -> requests.Response:
    return session.post(emulator.token_url, data={"grant_type": JWT_BEARER, "assertion": signed})


def login(emulator: SalesforceEmulator, private_key_pem: str) -> Salesforce:
    """A real simple-salesforce client, logged in through the JWT bearer flow, trusting the emulator's CA."""
    session = emulator.session()
    response = exchange(session, emulator, assertion(private_key_pem))
    response.raise_for_status()
    token = response.json()
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="62.0"
    )
