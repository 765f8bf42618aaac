"""The one error type of the emulator: a Salesforce REST API error, with its HTTP status."""

from __future__ import annotations


class SalesforceApiError(Exception):
    """An error Salesforce answers as ``[{"message", "errorCode", "fields"?}]`` with an HTTP status.

    Raised by the store (validation), the SOQL parser and the routes; the server turns it into the
    JSON error body. The in-process API (``SalesforceEmulator.create`` ...) raises it as is.
    """

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None):
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict]:
        error: dict = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]


def not_found(message: str = "The requested resource does not exist") -> SalesforceApiError:
    return SalesforceApiError(404, "NOT_FOUND", message)


def invalid_session() -> SalesforceApiError:
    return SalesforceApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def limit_exceeded() -> SalesforceApiError:
    return SalesforceApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
