"""Salesforce key material from AWS Secrets Manager (Powertools parameters: cached, refreshed every 5 min)."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

from account_sync.adapters.salesforce_auth import SalesforceCredentials
from account_sync.ports import SalesforceAuthError

SECRET_MAX_AGE_SECONDS = 300


def load_salesforce_credentials(secret_name: str) -> SalesforceCredentials:
    try:
        secret = parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise SalesforceAuthError(f"cannot read the Salesforce secret {secret_name!r}") from exc
    except parameters.exceptions.TransformParameterError as exc:
        raise SalesforceAuthError(f"the Salesforce secret {secret_name!r} is not valid JSON") from exc
    return SalesforceCredentials.from_secret(secret)
