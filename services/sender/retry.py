"""The retry schedule: how long to wait after a failed attempt, and when to give up."""

from __future__ import annotations

from collections.abc import Sequence


def max_attempts(schedule_s: Sequence[float]) -> int:
    """The first attempt plus one per delay in the schedule."""
    return len(schedule_s) + 1


def next_delay_s(attempt: int, schedule_s: Sequence[float]) -> float | None:
    """The wait before the attempt after `attempt` (1-based) failed; None when none is left."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, got {attempt}")
    if attempt > len(schedule_s):
        return None
    return schedule_s[attempt - 1]


def tier_for(wait_s: float, tiers_s: Sequence[float]) -> float:
    """The shortest tier that waits at least `wait_s`, or the longest there is.

    Tiers are queues with a fixed TTL, so a wait is rounded up to one of them.
    """
    if not tiers_s:
        raise ValueError("no tiers to wait in")
    ordered = sorted(tiers_s)
    for tier_s in ordered:
        if tier_s >= wait_s:
            return tier_s
    return ordered[-1]
