"""Ordering of Salesforce record versions by SystemModstamp (SPEC: idempotent, ordered apply).

Delivery is at least once and out of order; the only order that counts is the record's SystemModstamp.
"""

from __future__ import annotations

import enum


class VersionVerdict(enum.Enum):
    NEWER = "newer"  # apply it
    SAME = "same"  # a redelivery: finish what may be unfinished, never log twice
    OLDER = "older"  # stale: change nothing, log nothing


def compare_versions(incoming: str, current: str | None) -> VersionVerdict:
    """Both stamps are canonical (`domain.timestamps`), so string order is time order."""
    if current is None or incoming > current:
        return VersionVerdict.NEWER
    if incoming == current:
        return VersionVerdict.SAME
    return VersionVerdict.OLDER
