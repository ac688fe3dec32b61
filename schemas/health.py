"""Endpoint health: what the attempts to a webhook say about its endpoint, folded from the delivery
log, and the checkpoints a router writes so the next one starts without replaying that log."""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from schemas.deliveries import DeliveryAttempted


class WebhookHealth(BaseModel):
    """What the attempts to one webhook's endpoint have shown, as of the last one."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="WebhookHealth")

    last_attempt_at: AwareDatetime | None = Field(
        default=None, description="When the latest attempt (test calls included) was made."
    )
    last_success_at: AwareDatetime | None = Field(
        default=None, description="When the latest attempt that got a 2xx was made."
    )
    last_error: str | None = Field(
        default=None,
        description="Why the latest failed attempt failed (at most 1 KiB); a success clears it.",
    )
    consecutive_failures: int = Field(
        default=0, ge=0, description="Failed attempts since the last success (or re-enabling)."
    )
    failing_since: AwareDatetime | None = Field(
        default=None, description="When the first of those consecutive failures happened."
    )


HEALTHY = WebhookHealth()


def health_after(
    health: WebhookHealth, record: DeliveryAttempted, *, reset_at: datetime | None = None
) -> WebhookHealth:
    """The health after one attempt record.

    A success (test calls included) ends a failing streak; a failure starts or extends it, unless
    it is older than the last success or than `reset_at` (when the webhook was enabled again), so
    records folded out of order never revive an old streak. A test call that fails sets
    `last_error` but does not count toward disabling. Cancelled deliveries made no attempt, and
    an attempt that was not sent (Hookline could not build the request: the webhook's policy
    was disabled or gone) made no call: neither says anything about the endpoint.
    """
    if record.outcome == "cancelled" or record.not_sent:
        return health
    at = record.at
    last_attempt_at = at if health.last_attempt_at is None else max(health.last_attempt_at, at)
    if record.outcome == "delivered":
        newer = health.last_success_at is None or at >= health.last_success_at
        if not newer:
            return health.model_copy(update={"last_attempt_at": last_attempt_at})
        ends_streak = health.failing_since is None or at >= health.failing_since
        return health.model_copy(
            update={
                "last_attempt_at": last_attempt_at,
                "last_success_at": at,
                "last_error": None if ends_streak else health.last_error,
                "consecutive_failures": 0 if ends_streak else health.consecutive_failures,
                "failing_since": None if ends_streak else health.failing_since,
            }
        )
    stale = (health.last_success_at is not None and at < health.last_success_at) or (
        reset_at is not None and at < reset_at
    )
    update: dict[str, object] = {"last_attempt_at": last_attempt_at}
    if not stale:
        update["last_error"] = record.error
        if not record.test:
            update["consecutive_failures"] = health.consecutive_failures + 1
            update["failing_since"] = health.failing_since or at
    return health.model_copy(update=update)


def reset_streak(health: WebhookHealth) -> WebhookHealth:
    """The health once the webhook is enabled again: its failing streak starts over."""
    return health.model_copy(update={"consecutive_failures": 0, "failing_since": None})


def should_disable(
    health: WebhookHealth, *, now: datetime, after_s: float, after_failures: int
) -> bool:
    """Failed continuously for `after_s` and at least `after_failures` attempts (both must hold:
    an endpoint that fails only sometimes never gets there)."""
    if health.failing_since is None or health.consecutive_failures < after_failures:
        return False
    return (now - health.failing_since).total_seconds() >= after_s


class HealthCheckpoint(BaseModel):
    """The health of every webhook as folded up to `delivery_log_offset` of the delivery log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["health.checkpoint"] = "health.checkpoint"
    at: AwareDatetime
    delivery_log_offset: int
    webhooks: dict[str, WebhookHealth]


CHECKPOINT_KIND = "health.checkpoint"
# Checkpoints are compressed: they hold one entry per webhook that ever had an attempt.
CHECKPOINT_ENCODING = "deflate"
_CHECKPOINT = TypeAdapter(HealthCheckpoint)


def encode_checkpoint(checkpoint: HealthCheckpoint) -> bytes:
    return zlib.compress(checkpoint.model_dump_json(exclude_defaults=True).encode(), level=6)


def decode_checkpoint(body: bytes, encoding: str | None) -> HealthCheckpoint:
    """A checkpoint from a stream message; ValueError when it is not one."""
    if encoding == CHECKPOINT_ENCODING:
        try:
            body = zlib.decompress(body)
        except zlib.error as error:
            raise ValueError(f"not a deflated checkpoint: {error}") from None
    return _CHECKPOINT.validate_json(body)
