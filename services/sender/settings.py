"""The sender's settings."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import ServiceSettings


class SenderSettings(ServiceSettings):
    port: int = Field(default=8002, ge=0, le=65535)
    # Deliveries in flight at once in this process (the consumer's prefetch).
    concurrency: int = Field(default=128, ge=1, le=10_000)
    # Events taken off the route queue at once; each holds its fan-out (and first attempts) until
    # all are confirmed.
    route_prefetch: int = Field(default=128, ge=1, le=10_000)
    # An event with at most this many deliveries has their first attempts made by the sender that
    # routed it, without the deliver queue, for endpoints whose attempts succeeded so far within
    # `first_attempt_max_s`; 0 sends every delivery through the deliver queue. At most half the
    # route prefetch in attempts (a fan-out of ten counts ten) are made this way at once; the
    # events behind them wait their turn while attempts keep finishing.
    first_attempt_fanout: int = Field(default=16, ge=0, le=1000)
    first_attempt_max_s: float = Field(default=1.0, gt=0)
    # Batches of the delivery log and of the events stream start at most this often, so that a
    # moderate load writes a few large stream messages rather than many of two or three records
    # (each is a broker write, and a delivery to every reader of the log). It holds each event up
    # to this much longer before its ack; its deliveries leave as before. 0: no interval.
    record_gather_s: float = Field(default=0.05, ge=0, le=1)
    # Event ids remembered to drop a repeated one (the same id twice is one event).
    dedupe_window: int = Field(default=100_000, ge=0)
    # Events published over AMQP larger than this are parked in quarantine (POST /events has its
    # own, smaller body limit). Each delivery message carries the whole event.
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    # One total deadline per attempt: connect, send, status line and the first 64 KiB.
    attempt_timeout_s: float = Field(default=15.0, gt=0, le=300)
    # How long to wait for the webhook table to reach the revision a router routed with.
    table_wait_s: float = Field(default=10.0, gt=0)
    # Attempts in flight at once to one webhook's endpoint, in this sender; more are parked.
    endpoint_concurrency: int = Field(default=8, ge=1, le=10_000)
    # ... and to an endpoint that answered fast (under 100 ms on average, `endpoint_concurrency`
    # successes in a row): a high-volume subscriber is not held to the cautious limit.
    fast_endpoint_concurrency: int = Field(default=64, ge=1, le=10_000)
    # Consecutive failures that open an endpoint's circuit, and how long it stays open at first
    # (doubling after each failed probe, up to the max).
    circuit_failures: int = Field(default=5, ge=1)
    circuit_open_s: float = Field(default=10.0, gt=0)
    circuit_max_open_s: float = Field(default=300.0, gt=0)
    # Recorded attempts each sender remembers, and how far back it reads the delivery log at start,
    # to tell a repeated message from new work.
    settled_capacity: int = Field(default=100_000, ge=1000)
    settled_lookback_s: float = Field(default=60.0, ge=0)
    # The `iss` claim of the tokens of webhooks that name a webhook policy.
    jwt_issuer: str = Field(default="hookline", min_length=1, max_length=255)
