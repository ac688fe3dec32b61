"""The sender's Prometheus metrics; every label comes from a closed set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.runtime.metrics import LATENCY_BUCKETS_S, quarantined_total


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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
            "Delivery messages settled, by outcome (delivered, retry_scheduled, dead_lettered, "
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
            "Deliveries that used up every attempt and went to the dead-letter queue.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "hookline_deliveries_in_flight",
            "Deliveries this sender is working on now.",
            registry=registry,
        )
        self.messages_quarantined = quarantined_total(registry)
