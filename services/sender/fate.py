"""The one place that decides what becomes of a delivery after an attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.deliveries import Outcome
from services.sender.retry import next_delay_s


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    delay_s: float | None = None


def decide(*, succeeded: bool, attempt: int, test: bool, schedule_s: Sequence[float]) -> Decision:
    """Delivered; or retried after the schedule's delay; or dead-lettered when none is left.

    A test call is made once: its failure is reported, not retried.
    """
    if succeeded:
        return Decision("delivered")
    if test:
        return Decision("failed")
    delay_s = next_delay_s(attempt, schedule_s)
    if delay_s is None:
        return Decision("dead_lettered")
    return Decision("retry_scheduled", delay_s)
