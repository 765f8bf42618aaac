"""SPEC R6: Change Data Value activities are logged unless the account has more contacts than the threshold."""

from __future__ import annotations

import enum

DEFAULT_ACTIVITY_THRESHOLD = 5000


class ActivityLogging(enum.Enum):
    LOGGED = "logged"
    SUPPRESSED = "suppressed"


def activity_logging_for(contact_count: int, threshold: int = DEFAULT_ACTIVITY_THRESHOLD) -> ActivityLogging:
    """Exactly `threshold` contacts: logged. `threshold + 1`: suppressed (the change is still synced)."""
    if contact_count < 0 or threshold < 0:
        raise ValueError("contact count and threshold are never negative")
    return ActivityLogging.LOGGED if contact_count <= threshold else ActivityLogging.SUPPRESSED


def count_limit_for(threshold: int) -> int:
    """How many contacts to count at most to decide: one more than the threshold is enough."""
    return threshold + 1
