"""OAuth 2.0 JWT bearer flow (never the SOAP username/password login, which Salesforce is retiring).

The token is cached on the authenticator, which the handler keeps across warm invocations; it is renewed when
Salesforce answers 401 INVALID_SESSION_ID. Key material comes from Secrets Manager and never reaches a log line
or an exception message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from account_sync.ports import SalesforceAuthError, TransientError

ASSERTION_LIFETIME_SECONDS = 180


@dataclass(frozen=True)
class SalesforceCredentials:
    consumer_key: str
    username: str
    private_key: str = field(repr=False)
    audience: str = "https://login.salesforce.com"

    @classmethod
    def from_secret(cls, secret: Any) -> SalesforceCredentials:
        if not isinstance(secret, dict):
            raise SalesforceAuthError("the Salesforce secret must be a JSON object")
        missing = [key for key in ("consumer_key", "username", "private_key") if not secret.get(key)]
        if missing:
            raise SalesforceAuthError(f"the Salesforce secret lacks {', '.join(missing)}")
        return cls(
            consumer_key=secret["consumer_key"],
            username=secret["username"],
            private_key=secret["private_key"],
            audience=secret.get("audience") or "https://login.salesforce.com",
        )


@dataclass(frozen=True)
class AccessToken:
    access_token: str = field(repr=False)
    instance_url: str


class JwtBearerAuthenticator:
    def __init__(
        self,
        credentials: Callable[[], SalesforceCredentials],
        token_url: str,
        session: requests.Session,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self._credentials = credentials
        self._token_url = token_url
        self._session = session
        self._clock = clock
        self._timeout = timeout
        self._token: AccessToken | None = None
        self.tokens_issued = 0

    def token(self, renew: bool = False) -> AccessToken:
        if self._token is None or renew:
            self._token = self._request_token()
            self.tokens_issued += 1
        return self._token

    def _request_token(self) -> AccessToken:
        credentials = self._credentials()
        now = int(self._clock())
        assertion = jwt.encode(
            {
                "iss": credentials.consumer_key,
                "sub": credentials.username,
                "aud": credentials.audience,
                "exp": now + ASSERTION_LIFETIME_SECONDS,
            },
            credentials.private_key,
            algorithm="RS256",
        )
        try:
            response = self._session.post(
                self._token_url,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise TransientError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise TransientError(f"token endpoint answered {response.status_code}")
        body = _json(response)
        if response.status_code != 200 or "access_token" not in body:
            raise SalesforceAuthError(
                f"token request refused ({response.status_code}): {body.get('error', 'unknown_error')}: "
                f"{body.get('error_description', '')}".rstrip(": ")
            )
        return AccessToken(access_token=body["access_token"], instance_url=body["instance_url"])


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
