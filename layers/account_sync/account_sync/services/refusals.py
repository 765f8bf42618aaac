"""Why a marketing-side action is refused: a stable code for programs, a clear message for people.

The services raise them; the HTTP edge (`account_sync.http_api`) turns each kind into its status, once. A message
names ids and field names, never a person's name or email address.
"""

from __future__ import annotations

from collections.abc import Mapping

from account_sync.ports import AccountSyncError


class Refused(AccountSyncError):
    def __init__(self, code: str, message: str, details: Mapping[str, object] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = dict(details or {})


class InvalidRequest(Refused):
    """The request itself is wrong (shape, types, a field that is not synced): sending it again cannot help."""


class NotFound(Refused):
    """What the request names does not exist in the store."""


class Unprocessable(Refused):
    """Well formed, but it contradicts an earlier request (an Idempotency-Key reused with another body)."""


class UnsupportedMediaType(Refused):
    """The body is not in a format the API reads (it reads JSON)."""


class Conflict(Refused):
    """The request is valid but the state of the store does not allow it (no account, already a contact)."""
