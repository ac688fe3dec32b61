"""The retry schedule: the wait after each failed attempt, and when to give up."""

from __future__ import annotations

import pytest

from services.sender.retry import max_attempts, next_delay_s, tier_for

SCHEDULE = (5.0, 300.0, 1800.0)


def test_max_attempts_is_one_more_than_the_delays() -> None:
    """The first attempt plus one per delay."""
    assert max_attempts(SCHEDULE) == 4
    assert max_attempts(()) == 1


def test_next_delay_follows_the_schedule() -> None:
    """After attempt n fails, the wait is the schedule's n-th delay."""
    assert [next_delay_s(attempt, SCHEDULE) for attempt in (1, 2, 3)] == [5.0, 300.0, 1800.0]


def test_no_delay_after_the_last_attempt() -> None:
    """After the last attempt there is nothing left to wait for."""
    assert next_delay_s(4, SCHEDULE) is None
    assert next_delay_s(1, ()) is None


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    """An attempt number below 1 is a programming error."""
    with pytest.raises(ValueError, match="attempts count from 1"):
        next_delay_s(attempt, SCHEDULE)


@pytest.mark.parametrize(
    ("wait_s", "tier_s"), [(0.0, 1.0), (1.0, 1.0), (1.5, 5.0), (30.0, 30.0), (10_000.0, 300.0)]
)
def test_tier_for_rounds_up_to_a_tier_and_caps_at_the_longest(wait_s: float, tier_s: float) -> None:
    """A wait goes to the shortest tier at least that long, or the longest there is."""
    assert tier_for(wait_s, (300.0, 1.0, 30.0, 5.0)) == tier_s


def test_tier_for_needs_tiers() -> None:
    """Without tiers there is nowhere to wait."""
    with pytest.raises(ValueError, match="no tiers"):
        tier_for(1.0, ())
