"""The producer's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.runtime.metrics import LATENCY_BUCKETS_S


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_accepted = Counter(
            "hookline_events_accepted_total",
            "Events confirmed by the broker and answered with 202.",
            registry=registry,
        )
        self.requests_rejected = Counter(
            "hookline_ingest_rejected_total",
            "POST /events requests refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.publish_duration = Histogram(
            "hookline_ingest_publish_duration_seconds",
            "From a valid request to all of its events confirmed by the broker.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
