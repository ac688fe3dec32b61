"""The sender's Prometheus metrics; every label comes from a closed set."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.runtime.metrics import LATENCY_BUCKETS_S, ConsumerMetrics


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry, open_circuits: Callable[[], float]) -> None:
        self.events_routed = Counter(
            "hookline_events_routed_total",
            "Events matched and fanned out (including those matching no webhook).",
            registry=registry,
        )
        self.deliveries_routed = Counter(
            "hookline_deliveries_routed_total",
            "Delivery messages published, one per (event, webhook).",
            registry=registry,
        )
        self.events_unmatched = Counter(
            "hookline_events_unmatched_total",
            "Events no enabled webhook subscribed to.",
            registry=registry,
        )
        self.events_duplicate = Counter(
            "hookline_events_duplicate_total",
            "Events dropped because their id was routed already.",
            registry=registry,
        )
        self.fanout_duration = Histogram(
            "hookline_fanout_duration_seconds",
            "From taking an event to every delivery of it confirmed by the broker.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.log_batch_records = Histogram(
            "hookline_delivery_log_batch_records",
            "Attempt records per delivery-log message (records gather while earlier batches are "
            "being confirmed).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        self.first_attempts = Counter(
            "hookline_first_attempts_total",
            "First attempts of routed deliveries, by where they were made: routed_here (by the "
            "sender that routed the event, no deliver-queue hop) or deliver_queue.",
            ["where"],
            registry=registry,
        )
        self.attempts = Counter(
            "hookline_delivery_attempts_total",
            "HTTP attempts made, by what came back: 2xx…5xx, timeout, connect_error, refused "
            "or error.",
            ["status_class"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "hookline_delivery_attempt_duration_seconds",
            "How long one HTTP attempt took, answer or not.",
            ["result"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.outcomes = Counter(
            "hookline_deliveries_total",
            "Delivery attempts settled, by outcome (delivered, retry_scheduled, dead_lettered, "
            "failed, cancelled).",
            ["outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "hookline_delivery_retries_total",
            "Failed attempts re-queued on a retry tier, by tier.",
            ["tier"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "hookline_dead_letters_total",
            "Deliveries that went to the dead-letter queue: out of attempts, or failed for good.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "hookline_deliveries_in_flight",
            "Deliveries this sender is working on now.",
            registry=registry,
        )
        self.consumer = ConsumerMetrics(registry)
        self.parked = Counter(
            "hookline_deliveries_parked_total",
            "Deliveries put aside without an attempt, by reason: endpoint_busy (at its limit of "
            "concurrent attempts in this sender), circuit_open, or recheck (it may repeat an "
            "attempt made before, and waits until that one must have been recorded).",
            ["reason"],
            registry=registry,
        )
        self.circuits_open = Gauge(
            "hookline_circuits_open",
            "Endpoints whose circuit is open (or half-open) in this sender.",
            registry=registry,
        )
        self.circuits_open.set_function(open_circuits)
        self.repeats_dropped = Counter(
            "hookline_deliveries_repeat_dropped_total",
            "Delivery messages not attempted because that attempt was already recorded (a "
            "redelivery after a lost ack, or a copy routed twice).",
            registry=registry,
        )
        self.decisions_reproduced = Counter(
            "hookline_decisions_reproduced_total",
            "Repeated messages whose attempt was recorded but whose retry or dead letter may not "
            "have gone out (the broker went away in between): produced again, not attempted.",
            registry=registry,
        )
        self.not_sent = Counter(
            "hookline_deliveries_not_sent_total",
            "Attempts that made no call because Hookline could not build the request, by reason: "
            "policy_disabled, policy_missing, policy_unusable (the webhook's policy is disabled, "
            "gone, or holds no usable key). Never sent unsigned; they are dead-lettered.",
            ["reason"],
            registry=registry,
        )
        self.webhooks_disabled = Counter(
            "hookline_webhooks_disabled_total",
            "Webhooks this sender disabled because their endpoint answered 410 Gone.",
            registry=registry,
        )
