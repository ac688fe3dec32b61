"""The router's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.runtime.metrics import LATENCY_BUCKETS_S, ConsumerMetrics


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_routed = Counter(
            "hookline_events_routed_total",
            "Events the router matched and fanned out (including those matching no webhook).",
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
        self.consumer = ConsumerMetrics(registry)
        self.webhooks_auto_disabled = Counter(
            "hookline_webhooks_auto_disabled_total",
            "Webhooks this router disabled because their endpoint failed for too long.",
            registry=registry,
        )
        self.mail_digests = Counter(
            "hookline_failure_mail_digests_total",
            "Failure-mail digests, by result (sent, failed).",
            ["result"],
            registry=registry,
        )
        self.health_offset = Gauge(
            "hookline_health_projection_offset",
            "The delivery-log offset the endpoint-health projection has folded up to.",
            registry=registry,
        )
        self.fanout_duration = Histogram(
            "hookline_fanout_duration_seconds",
            "From taking an event to every delivery of it confirmed by the broker.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.webhooks = Gauge(
            "hookline_webhooks",
            "Webhooks in the table, by state.",
            ["state"],
            registry=registry,
        )
        self.test_calls = Counter(
            "hookline_test_calls_total",
            "Test calls requested through POST /webhooks/:id/test.",
            registry=registry,
        )
