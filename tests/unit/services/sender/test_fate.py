"""What becomes of a delivery after an attempt: delivered, retried, dead-lettered or failed."""

from __future__ import annotations

import pytest

from services.sender.calling import CallKind, CallResult
from services.sender.fate import Decision, decide
from services.sender.not_sent import NotSent

SCHEDULE = (5.0, 300.0, 1800.0)


def answered(status: int, *, retry_after_s: float | None = None) -> CallResult:
    error = None if 200 <= status < 300 else f"{status} Something"
    return CallResult("answered", status, error, 0.1, retry_after_s)


def no_answer(kind: CallKind, error: str) -> CallResult:
    return CallResult(kind, None, error, 0.1)


def test_success_is_delivered() -> None:
    """A successful attempt is delivered, whatever the attempt number."""
    for attempt in (1, 3):
        assert decide(answered(204), attempt=attempt, test=False, schedule_s=SCHEDULE) == Decision(
            "delivered"
        )


def test_a_failure_with_delays_left_is_retried_after_the_delay() -> None:
    """A failed attempt with delays left is retried after the schedule's delay, with its reason."""
    assert decide(answered(500), attempt=1, test=False, schedule_s=SCHEDULE) == Decision(
        "retry_scheduled", 5.0, reason="500 Something"
    )
    timeout = no_answer("timeout", "timeout after 15s")
    assert decide(timeout, attempt=2, test=False, schedule_s=SCHEDULE) == Decision(
        "retry_scheduled", 300.0, reason="timeout after 15s"
    )


def test_a_failure_after_the_last_delay_is_dead_lettered() -> None:
    """Once every delay was used, a failure goes to the dead-letter queue."""
    decision = decide(answered(503), attempt=4, test=False, schedule_s=SCHEDULE)
    assert decision == Decision("dead_lettered", reason="503 Something")
    assert decide(answered(500), attempt=1, test=False, schedule_s=()).outcome == "dead_lettered"


def test_a_failed_test_call_is_never_retried() -> None:
    """A test call is made once: its failure is reported as failed."""
    assert decide(answered(500), attempt=1, test=True, schedule_s=SCHEDULE) == Decision(
        "failed", reason="500 Something"
    )
    assert decide(answered(200), attempt=1, test=True, schedule_s=SCHEDULE) == Decision("delivered")


@pytest.mark.parametrize(
    "result",
    [
        no_answer("refused", "refused: 10.0.0.1 is not a public address"),
        no_answer("invalid_target", "invalid target: bad IDNA"),
    ],
)
def test_a_refused_or_unusable_target_is_dead_lettered_at_once(result: CallResult) -> None:
    """Another attempt cannot help a target that is refused or unusable: no retry."""
    decision = decide(result, attempt=1, test=False, schedule_s=SCHEDULE)
    assert decision == Decision("dead_lettered", reason=result.error)


def test_410_gone_dead_letters_and_disables_the_webhook() -> None:
    """410 Gone: the endpoint is gone for good, the webhook is disabled at once."""
    decision = decide(answered(410), attempt=1, test=False, schedule_s=SCHEDULE)
    assert decision == Decision("dead_lettered", reason="410 Something", disable=True)


def test_a_redirect_is_a_failed_attempt() -> None:
    """A 3xx is not followed: it is a failure, retried like any other."""
    assert decide(answered(302), attempt=1, test=False, schedule_s=SCHEDULE).outcome == (
        "retry_scheduled"
    )


@pytest.mark.parametrize(
    ("status", "retry_after_s", "delay_s"),
    [
        (429, 60.0, 300.0),  # waits at least 60 s: the next tier that long is 300 s
        (503, 1.0, 5.0),  # shorter than the schedule's delay: the schedule wins
        (429, 10 * 86400.0, 1800.0),  # capped at the longest step of the schedule
        (429, None, 5.0),
        (500, 600.0, 5.0),  # only 429 and 503 carry a Retry-After we honour
    ],
)
def test_retry_after_on_429_and_503(
    status: int, retry_after_s: float | None, delay_s: float
) -> None:
    """The next attempt waits at least the Retry-After, rounded up to a tier and capped."""
    result = answered(status, retry_after_s=retry_after_s)
    decision = decide(result, attempt=1, test=False, schedule_s=SCHEDULE)
    assert (decision.outcome, decision.delay_s) == ("retry_scheduled", delay_s)


def test_attempt_below_one_raises() -> None:
    """A failed attempt numbered below 1 is a programming error."""
    with pytest.raises(ValueError, match="attempts count from 1"):
        decide(answered(500), attempt=0, test=False, schedule_s=SCHEDULE)


def test_a_call_not_made_is_dead_lettered_at_once_and_disables_nothing() -> None:
    """The webhook's policy is disabled or gone: Hookline's failure, which no retry mends. It is
    dead-lettered at first attempt (to be redriven once mended), a test call fails, and the
    webhook is never disabled for it."""
    not_sent = NotSent("policy_disabled", "webhook policy pol_1 is disabled: not sent")
    for attempt in (1, 3, 9):
        assert decide(not_sent, attempt=attempt, test=False, schedule_s=SCHEDULE) == Decision(
            "dead_lettered", reason="webhook policy pol_1 is disabled: not sent"
        )
    assert decide(not_sent, attempt=1, test=True, schedule_s=SCHEDULE) == Decision(
        "failed", reason="webhook policy pol_1 is disabled: not sent"
    )
