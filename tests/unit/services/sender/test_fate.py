"""What becomes of a delivery after an attempt: delivered, retried, dead-lettered or failed."""

from __future__ import annotations

import pytest

from services.sender.fate import Decision, decide

SCHEDULE = (5.0, 300.0)


def test_success_is_delivered() -> None:
    """A successful attempt is delivered, whatever the attempt number."""
    for attempt in (1, 3):
        assert decide(succeeded=True, attempt=attempt, test=False, schedule_s=SCHEDULE) == Decision(
            "delivered"
        )


def test_a_failure_with_delays_left_is_retried_after_the_delay() -> None:
    """A failed attempt with delays left is retried after the schedule's delay."""
    assert decide(succeeded=False, attempt=1, test=False, schedule_s=SCHEDULE) == Decision(
        "retry_scheduled", 5.0
    )
    assert decide(succeeded=False, attempt=2, test=False, schedule_s=SCHEDULE) == Decision(
        "retry_scheduled", 300.0
    )


def test_a_failure_after_the_last_delay_is_dead_lettered() -> None:
    """Once every delay was used, a failure goes to the dead-letter queue."""
    decision = decide(succeeded=False, attempt=3, test=False, schedule_s=SCHEDULE)
    assert decision == Decision("dead_lettered")
    assert decide(succeeded=False, attempt=1, test=False, schedule_s=()) == Decision(
        "dead_lettered"
    )


def test_a_failed_test_call_is_never_retried() -> None:
    """A test call is made once: its failure is reported as failed."""
    assert decide(succeeded=False, attempt=1, test=True, schedule_s=SCHEDULE) == Decision("failed")
    assert decide(succeeded=True, attempt=1, test=True, schedule_s=SCHEDULE) == Decision(
        "delivered"
    )


def test_attempt_below_one_raises() -> None:
    """A failed attempt numbered below 1 is a programming error."""
    with pytest.raises(ValueError, match="attempts count from 1"):
        decide(succeeded=False, attempt=0, test=False, schedule_s=SCHEDULE)
