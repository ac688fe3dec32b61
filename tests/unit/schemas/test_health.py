"""Endpoint health folded from attempt records, and the checkpoints that carry it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.deliveries import DeliveryAttempted, Outcome
from schemas.health import (
    CHECKPOINT_ENCODING,
    HEALTHY,
    HealthCheckpoint,
    WebhookHealth,
    decode_checkpoint,
    encode_checkpoint,
    health_after,
    reset_streak,
    should_disable,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def attempt(
    outcome: Outcome, minutes: float, error: str | None = None, *, test: bool = False
) -> DeliveryAttempted:
    return DeliveryAttempted(
        delivery_id="msg_1",
        event_id="evt_1",
        event_type="a.b",
        webhook_id="wh_1",
        attempt=1,
        at=T0 + timedelta(minutes=minutes),
        outcome=outcome,
        error=error,
        test=test,
    )


def fold(*records: DeliveryAttempted, reset_at: datetime | None = None) -> WebhookHealth:
    health = HEALTHY
    for record in records:
        health = health_after(health, record, reset_at=reset_at)
    return health


def test_failures_build_a_streak_and_a_success_ends_it() -> None:
    """Failures count up from the first one's time; a success clears the streak and last_error."""
    failing = fold(attempt("retry_scheduled", 1, "500 A"), attempt("dead_lettered", 2, "503 B"))
    assert (failing.consecutive_failures, failing.failing_since) == (2, T0 + timedelta(minutes=1))
    assert (failing.last_error, failing.last_attempt_at) == ("503 B", T0 + timedelta(minutes=2))
    healed = health_after(failing, attempt("delivered", 3))
    assert healed == WebhookHealth(
        last_attempt_at=T0 + timedelta(minutes=3), last_success_at=T0 + timedelta(minutes=3)
    )


def test_cancelled_deliveries_made_no_attempt() -> None:
    """A cancelled delivery changes nothing."""
    failing = fold(attempt("retry_scheduled", 1, "500"))
    assert health_after(failing, attempt("cancelled", 2, "webhook deleted")) is failing


def test_an_attempt_not_sent_says_nothing_about_the_endpoint() -> None:
    """Hookline could not build the request (the webhook's policy is disabled or gone): no
    call, so no failure of the endpoint's, neither in the streak nor in last_error."""
    not_sent = attempt("dead_lettered", 2, "webhook policy pol_1 is disabled: not sent")
    healthy = fold(attempt("delivered", 1))
    assert health_after(healthy, not_sent.model_copy(update={"not_sent": True})) is healthy
    counted = health_after(healthy, not_sent)  # the same record, had a call been made
    assert counted.consecutive_failures == 1


def test_a_failed_test_call_sets_last_error_but_does_not_count() -> None:
    """A test call an operator made does not push a webhook toward being disabled."""
    health = fold(attempt("failed", 1, "500", test=True))
    assert (health.last_error, health.consecutive_failures, health.failing_since) == (
        "500",
        0,
        None,
    )


def test_records_older_than_the_last_success_do_not_revive_a_streak() -> None:
    """Out-of-order records (two senders) never start a streak before a later success."""
    health = fold(attempt("delivered", 5), attempt("retry_scheduled", 4, "500"))
    assert (health.consecutive_failures, health.last_error) == (0, None)
    assert health.last_attempt_at == T0 + timedelta(minutes=5)


def test_failures_before_the_webhook_was_enabled_again_do_not_count() -> None:
    """A failure older than `reset_at` (the re-enable) does not count toward disabling."""
    health = fold(attempt("retry_scheduled", 1, "500"), reset_at=T0 + timedelta(minutes=2))
    assert health.consecutive_failures == 0
    assert reset_streak(fold(attempt("retry_scheduled", 1, "500"))).failing_since is None


def test_should_disable_needs_both_the_time_and_the_count() -> None:
    """Disabling needs the failing time and the number of failures both."""
    long_few = WebhookHealth(consecutive_failures=3, failing_since=T0)
    short_many = WebhookHealth(consecutive_failures=50, failing_since=T0)
    now = T0 + timedelta(days=6)
    assert not should_disable(long_few, now=now, after_s=5 * 86400, after_failures=20)
    assert not should_disable(
        short_many, now=T0 + timedelta(hours=1), after_s=5 * 86400, after_failures=20
    )
    assert should_disable(short_many, now=now, after_s=5 * 86400, after_failures=20)
    assert not should_disable(HEALTHY, now=now, after_s=0, after_failures=0)


def test_a_checkpoint_round_trips_compressed() -> None:
    """A checkpoint is written deflated and read back the same."""
    checkpoint = HealthCheckpoint(
        at=T0,
        delivery_log_offset=41,
        webhooks={f"wh_{n}": fold(attempt("retry_scheduled", n, "500 x")) for n in range(200)},
    )
    body = encode_checkpoint(checkpoint)
    assert len(body) < len(checkpoint.model_dump_json()) / 4
    assert decode_checkpoint(body, CHECKPOINT_ENCODING) == checkpoint
