"""Configuration, read from the environment once per cold start and validated, never at import time."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from account_sync.domain.activity_policy import DEFAULT_ACTIVITY_THRESHOLD

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
# Always read, whatever the configuration says: the sync cannot order or delete without them.
SYSTEM_ACCOUNT_FIELDS = ("Id", "SystemModstamp", "IsDeleted")
MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit for ChangeMessageVisibility (12 hours)


class SettingsError(ValueError):
    """The function's configuration is wrong; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    stage: str
    contacts_table: str
    accounts_table: str
    activities_table: str
    sync_state_table: str
    synced_account_fields: tuple[str, ...]
    account_changes_queue_url: str | None = None
    activity_queue_url: str | None = None
    # The account-changes queue's dead-letter queue and RedrivePolicy maxReceiveCount: the fan-out sets a poison
    # message aside there itself, so that it never takes its message group with it (queue_records.PoisonPolicy).
    account_changes_dlq_url: str | None = None
    account_changes_max_receive_count: int = 5
    # A poison message with an unknown error is set aside at this receive (at most maxReceiveCount - 1).
    unknown_error_receives: int = 4
    # A throttled message is handed back for base x 2^(receive - 1) seconds, at most max (queue_records).
    retry_visibility_base_seconds: int = 2
    retry_visibility_max_seconds: int = 120
    activity_threshold: int = DEFAULT_ACTIVITY_THRESHOLD
    fanout_segment_size: int = 500
    fanout_write_concurrency: int = 16
    # The fetch's SendMessageBatch calls in flight at once (adapters/sqs.py, lanes by message group).
    fetch_send_lanes: int = 8
    # Paused fetch runs that start the next at once, in a row, before one waits for the schedule (0: none).
    fetch_continuation_limit: int = 20
    activity_retention_days: int = 400
    salesforce_secret_name: str | None = None
    salesforce_token_url: str | None = None
    salesforce_api_version: str = "62.0"
    salesforce_ca_bundle: str | None = None
    api_budget_share: float = 0.5
    lookback_seconds: int = 300
    bulk_threshold: int = 10_000
    reconcile_interval_seconds: int = 3600
    reconcile_lookback_seconds: int = 3600
    # Accounts a resync of a window or of everything reads a run (then the next run goes on): its rate.
    resync_records_per_run: int = 50_000
    # Drift detection on the schedule: how often, and how many Accounts a check compares (one SOQL query).
    drift_interval_seconds: int = 3600
    drift_accounts_per_check: int = 20

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            stage=environ.get("STAGE", "dev"),
            contacts_table=_required(environ, "CONTACTS_TABLE"),
            accounts_table=_required(environ, "ACCOUNTS_TABLE"),
            activities_table=_required(environ, "ACTIVITIES_TABLE"),
            sync_state_table=_required(environ, "SYNC_STATE_TABLE"),
            synced_account_fields=parse_field_list(_required(environ, "SYNCED_ACCOUNT_FIELDS")),
            account_changes_queue_url=environ.get("ACCOUNT_CHANGES_QUEUE_URL") or None,
            activity_queue_url=environ.get("ACTIVITY_QUEUE_URL") or None,
            account_changes_dlq_url=environ.get("ACCOUNT_CHANGES_DLQ_URL") or None,
            account_changes_max_receive_count=_int(environ, "ACCOUNT_CHANGES_MAX_RECEIVE_COUNT", 5, minimum=2),
            unknown_error_receives=_int(environ, "UNKNOWN_ERROR_RECEIVES", 4, minimum=1),
            retry_visibility_base_seconds=_int(environ, "RETRY_VISIBILITY_BASE_SECONDS", 2, minimum=0),
            retry_visibility_max_seconds=_int(
                environ, "RETRY_VISIBILITY_MAX_SECONDS", 120, minimum=0, maximum=MAX_VISIBILITY_SECONDS
            ),
            activity_threshold=_int(environ, "ACTIVITY_THRESHOLD", DEFAULT_ACTIVITY_THRESHOLD, minimum=0),
            fanout_segment_size=_int(environ, "FANOUT_SEGMENT_SIZE", 500, minimum=1),
            fanout_write_concurrency=_int(environ, "FANOUT_WRITE_CONCURRENCY", 16, minimum=1),
            fetch_send_lanes=_int(environ, "FETCH_SEND_LANES", 8, minimum=1, maximum=64),
            fetch_continuation_limit=_int(environ, "FETCH_CONTINUATION_LIMIT", 20, minimum=0),
            activity_retention_days=_int(environ, "ACTIVITY_RETENTION_DAYS", 400, minimum=1),
            salesforce_secret_name=environ.get("SALESFORCE_SECRET_NAME") or None,
            salesforce_token_url=environ.get("SALESFORCE_TOKEN_URL") or None,
            salesforce_api_version=environ.get("SALESFORCE_API_VERSION", "62.0"),
            salesforce_ca_bundle=environ.get("SALESFORCE_CA_BUNDLE") or None,
            api_budget_share=_float(environ, "API_BUDGET_SHARE", 0.5, minimum=0.0, maximum=1.0),
            lookback_seconds=_int(environ, "LOOKBACK_SECONDS", 300, minimum=0),
            bulk_threshold=_int(environ, "BULK_THRESHOLD", 10_000, minimum=0),
            reconcile_interval_seconds=_int(environ, "RECONCILE_INTERVAL_SECONDS", 3600, minimum=60),
            reconcile_lookback_seconds=_int(environ, "RECONCILE_LOOKBACK_SECONDS", 3600, minimum=0),
            resync_records_per_run=_int(environ, "RESYNC_RECORDS_PER_RUN", 50_000, minimum=1),
            drift_interval_seconds=_int(environ, "DRIFT_INTERVAL_SECONDS", 3600, minimum=60),
            drift_accounts_per_check=_int(environ, "DRIFT_ACCOUNTS_PER_CHECK", 20, minimum=1),
        )

    def require(self, *names: str) -> None:
        """A function states what it needs at cold start; a missing value fails there, clearly."""
        missing = [name for name in names if getattr(self, name) in (None, "")]
        if missing:
            raise SettingsError(f"missing configuration for {', '.join(sorted(missing))}")


def load_settings() -> Settings:
    """The settings of this function. Handlers call it once per cold start and keep what they build from it
    (the cache lives in the handler module, not here: the layer is shared, the environment is per function)."""
    return Settings.from_environment(os.environ)


def parse_field_list(raw: str) -> tuple[str, ...]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:
        raise SettingsError("SYNCED_ACCOUNT_FIELDS names no field")
    bad = [name for name in names if not _FIELD_NAME.match(name)]
    if bad:
        raise SettingsError(f"SYNCED_ACCOUNT_FIELDS has invalid field names: {', '.join(map(repr, bad))}")
    system = [name for name in names if name in SYSTEM_ACCOUNT_FIELDS]
    if system:
        raise SettingsError(f"SYNCED_ACCOUNT_FIELDS must not list system fields: {', '.join(system)}")
    if len(set(names)) != len(names):
        raise SettingsError("SYNCED_ACCOUNT_FIELDS lists a field twice")
    return tuple(names)


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set")
    return value


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value
