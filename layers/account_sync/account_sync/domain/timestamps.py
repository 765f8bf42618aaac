"""One canonical form for Salesforce datetimes, so that string order is time order.

Salesforce writes `2026-11-27T20:38:14.000+0000`; the store keeps `2026-11-27T20:38:14.000Z`. Every
SystemModstamp is normalised on the way in, so the conditional writes of the store can compare strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class InvalidTimestamp(ValueError):
    """A datetime that is not ISO-8601 with a time zone."""


def parse_timestamp(value: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise InvalidTimestamp(f"expected an ISO-8601 datetime string, got {value!r}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"  # +0000 -> +00:00 (Python 3.11 needs the colon)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidTimestamp(f"not an ISO-8601 datetime: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidTimestamp(f"datetime without a time zone: {value!r}")
    return parsed.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """`2026-11-27T20:38:14.000Z`: millisecond precision, like SystemModstamp."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utc_now() -> str:
    return format_timestamp(datetime.now(UTC))


def normalize_timestamp(value: str) -> str:
    return format_timestamp(parse_timestamp(value))


def shift(value: str, seconds: float) -> str:
    return format_timestamp(parse_timestamp(value) + timedelta(seconds=seconds))


EPOCH = "1970-01-01T00:00:00.000Z"


def lag_seconds(stamp: str, now: datetime) -> float:
    """Seconds from `stamp` (Salesforce's clock) to `now`, never negative: a Salesforce clock ahead of ours is not
    a sync faster than light. The fan-out's freshness metric (SyncLagSeconds)."""
    return max(0.0, (now - parse_timestamp(stamp)).total_seconds())
