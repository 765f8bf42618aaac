"""Salesforce value formats: datetimes, dates and record Ids."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})$")
_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # in ASCII order


def format_datetime(value: datetime) -> str:
    """Salesforce's response format: ``2026-11-27T20:38:14.000+0000``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str, *, require_zone: bool = False) -> datetime:
    """Parse the ISO 8601 forms Salesforce accepts (``Z``, ``+00:00``, ``+0000``, fractions)."""
    match = _DATETIME.match(text.strip())
    if not match:
        raise ValueError(f"not a datetime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone is None and require_zone:
        raise ValueError(f"datetime without a time zone: {text!r}")
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, UTC)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset_minutes = sign * (int(digits[:2]) * 60 + int(digits[2:]))
        value -= timedelta(minutes=offset_minutes)
    return value


def parse_date(text: str) -> date:
    match = _DATE.match(text.strip())
    if not match:
        raise ValueError(f"not a date: {text!r}")
    return date(int(match[1]), int(match[2]), int(match[3]))


def id_suffix(id15: str) -> str:
    """The 3-character case-safe suffix that turns a 15-character Id into its 18-character form."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX_ALPHABET[bits]
    return suffix


def normalize_id(text: str) -> str | None:
    """The 18-character form of a 15- or 18-character Id, or None when it is not Id-shaped."""
    if not isinstance(text, str) or not _ID.match(text):
        return None
    return text[:15] + id_suffix(text[:15])


def make_id(prefix: str, number: int) -> str:
    """``prefix`` + pod + base-62 counter: Ids of one object sort in creation order as strings."""
    digits = ""
    for _ in range(9):
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    id15 = f"{prefix}Hx0{digits}"
    return id15 + id_suffix(id15)
