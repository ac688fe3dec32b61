"""The router's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.runtime.metrics import ConsumerMetrics


class QueueDepthMetrics:
    """The broker's own counts of each queue, as the router's last poll read them.

    Labelled by the queue's role, its name without the install's prefix (`deliver`, `retry.5s`,
    `dead`, ...) rather than the full name: the consumers' `queue` label uses the same values
    (`deliver`, `route`, `mail`), and a dashboard works on every install unchanged. One install's
    routers all poll the same queues: take `max`, not `sum`, across them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Gauge(
            "hookline_queue_messages",
            "Messages ready in each queue, by role; messages delivered to a consumer and not yet "
            "acked are not counted (the broker's passive-declare count).",
            ["queue"],
            registry=registry,
        )
        self.consumers = Gauge(
            "hookline_queue_consumers",
            "Consumers of each queue, by role.",
            ["queue"],
            registry=registry,
        )
        self.polled_at = Gauge(
            "hookline_queue_depths_polled_timestamp_seconds",
            "Unix time of the last poll that read every queue's counts; the gauges above are as "
            "old as this.",
            registry=registry,
        )
        self.poll_failures = Counter(
            "hookline_queue_depth_poll_failures_total",
            "Polls of the queue counts that did not finish, by reason (timeout: not within the "
            "bound; broker: the channel or connection was gone).",
            ["reason"],
            registry=registry,
        )
        for reason in ("timeout", "broker"):  # shown at 0 from the start, so rate() sees them
            self.poll_failures.labels(reason=reason)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumer = ConsumerMetrics(registry)
        self.queues = QueueDepthMetrics(registry)
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
