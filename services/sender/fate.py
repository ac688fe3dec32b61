"""The one place that decides what becomes of a delivery after an attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.deliveries import Outcome
from services.sender.calling import CallResult
from services.sender.not_sent import NotSent
from services.sender.retry import next_delay_s, tier_for

# Statuses whose Retry-After we honour (RFC 9110: 429 Too Many Requests, 503 Unavailable).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# The subscriber says the endpoint is gone for good: the webhook is disabled at once.
GONE = 410


@dataclass(frozen=True, slots=True)
class Decision:
    """What becomes of a delivery: the outcome, the wait before the next attempt, and whether the
    webhook is to be disabled."""

    outcome: Outcome
    delay_s: float | None = None
    reason: str | None = None
    disable: bool = False


def decide(
    result: CallResult | NotSent, *, attempt: int, test: bool, schedule_s: Sequence[float]
) -> Decision:
    """Delivered; retried after the schedule's delay (or a longer Retry-After, up to the longest
    delay); or dead-lettered when no attempt is left or another attempt cannot help.

    A test call is made once: its failure is reported, not retried. A refused or unusable target
    and a 410 Gone are failures for good: dead-lettered at once, and a 410 disables the webhook.
    A call not made (NotSent: the webhook's policy is disabled or gone) is Hookline's failure,
    not the endpoint's, and needs a person: dead-lettered at once, to be redriven once mended.
    """
    if isinstance(result, NotSent):
        return Decision("failed" if test else "dead_lettered", reason=result.reason)
    if result.succeeded:
        return Decision("delivered")
    reason = result.error
    if test:
        return Decision("failed", reason=reason)
    if result.kind in ("refused", "invalid_target"):
        return Decision("dead_lettered", reason=reason)
    if result.status_code == GONE:
        return Decision("dead_lettered", reason=reason, disable=True)
    delay_s = next_delay_s(attempt, schedule_s)
    if delay_s is None:
        return Decision("dead_lettered", reason=reason)
    if result.status_code in RETRY_AFTER_STATUSES and result.retry_after_s is not None:
        delay_s = tier_for(max(delay_s, min(result.retry_after_s, max(schedule_s))), schedule_s)
    return Decision("retry_scheduled", delay_s, reason=reason)


def cancelled(reason: str) -> Decision:
    """Not attempted: the webhook was deleted or disabled since the delivery was routed."""
    return Decision("cancelled", reason=reason)
