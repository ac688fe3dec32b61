"""The producer's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
