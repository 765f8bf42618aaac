"""The server clock behind SystemModstamp."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from salesforce_emulator import Clock


def test_stamps_strictly_increase_by_the_millisecond():
    clock = Clock()

    stamps = [clock.stamp() for _ in range(500)]

    assert all(later > earlier for earlier, later in itertools.pairwise(stamps))
    assert all(stamp.microsecond % 1000 == 0 for stamp in stamps)


def test_a_frozen_clock_hands_out_the_same_stamp_and_moves_only_when_advanced():
    clock = Clock()
    clock.freeze_at(datetime(2026, 11, 27, 20, 0, tzinfo=UTC))

    shared = {clock.stamp() for _ in range(3)}
    clock.advance(90)

    assert shared == {datetime(2026, 11, 27, 20, 0, tzinfo=UTC)}
    assert clock.now() == datetime(2026, 11, 27, 20, 1, 30, tzinfo=UTC)


def test_unfreezing_continues_from_the_frozen_instant():
    clock = Clock()
    frozen_at = datetime(2030, 1, 1, tzinfo=UTC)
    clock.freeze_at(frozen_at)

    clock.unfreeze()

    assert frozen_at <= clock.stamp() < frozen_at + timedelta(seconds=5)
    assert not clock.frozen


def test_advancing_an_unfrozen_clock_shifts_it():
    clock = Clock()
    before = clock.now()

    clock.advance(3600)

    assert clock.now() - before >= timedelta(hours=1)


def test_the_clock_never_goes_back_on_request():
    clock = Clock()

    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        clock.freeze_at(datetime(2026, 1, 1))
