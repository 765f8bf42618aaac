"""OAuth 2.0 JWT bearer flow (``POST /services/oauth2/token``) and the access tokens it issues."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import jwt

from .certificates import public_key_from_pem

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass
class OAuthError(Exception):
    """An OAuth error: ``{"error", "error_description"}`` with HTTP 400, like Salesforce's token endpoint."""

    error: str
    description: str
    status: int = 400

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class Auth:
    def __init__(
        self,
        *,
        consumer_key: str,
        username: str,
        certificate_pem: str,
        org_id: str,
        user_id: str,
        session_seconds: float = 7200,
    ):
        self.consumer_key = consumer_key
        self.username = username
        self.org_id = org_id
        self.user_id = user_id
        self._public_key = public_key_from_pem(certificate_pem)
        self._session_seconds = session_seconds
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # access token -> expiry (monotonic seconds)

    def exchange(self, form: dict[str, str], instance_url: str) -> dict:
        """Answer a token request, or raise :class:`OAuthError`."""
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        assertion = form.get("assertion")
        if not assertion:
            raise OAuthError("invalid_grant", "invalid assertion")
        audiences = [*LOGIN_AUDIENCES, instance_url]
        audiences += [f"{aud}/" for aud in audiences]
        try:
            claims = jwt.decode(
                assertion,
                self._public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["exp", "iss", "sub", "aud"], "verify_iss": False},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise OAuthError("invalid_grant", "invalid assertion: the JWT has expired (exp)") from None
        except jwt.InvalidAudienceError:
            raise OAuthError("invalid_grant", "audience is invalid") from None
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims["iss"] != self.consumer_key:
            raise OAuthError("invalid_grant", "client identifier invalid")
        if claims["sub"] != self.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        token = f"{self.org_id}!{secrets.token_urlsafe(72)}"
        with self._lock:
            self._tokens[token] = time.monotonic() + self._session_seconds
        issued_at = str(int(time.time() * 1000))
        identity = f"https://login.salesforce.com/id/{self.org_id}/{self.user_id}"
        signature = hmac.new(self._secret, (identity + issued_at).encode(), hashlib.sha256).digest()
        return {
            "access_token": token,
            "scope": "api",
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(signature).decode(),
        }

    def is_valid(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a live access token (``Bearer`` or ``OAuth``)."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            return False
        with self._lock:
            expiry = self._tokens.get(token.strip())
        return expiry is not None and expiry > time.monotonic()

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()
