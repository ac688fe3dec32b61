"""The router's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.runtime.metrics import ConsumerMetrics


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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
