"""Metrics more than one service has."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


def quarantined_total(registry: CollectorRegistry) -> Counter:
    return Counter(
        "hookline_messages_quarantined_total",
        "Messages parked in quarantine (unreadable, or crashed their handler too often), by "
        "source queue.",
        ["queue"],
        registry=registry,
    )


# Attempt and fan-out latencies: from a millisecond on loopback to the 15 s attempt deadline.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)


class ConsumerMetrics:
    """How work-queue messages were settled other than by a plain ack, by queue."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.quarantined = quarantined_total(registry)
        self.returned = Counter(
            "hookline_messages_returned_total",
            "Messages given back to their queue because a bounded hold ran out, by reason "
            "(hold_expired: a publish was not confirmed; table_behind: the webhook table did not "
            "reach the routed revision; not_current: the webhooks stream was not followed).",
            ["queue", "reason"],
            registry=registry,
        )
        self.crashes = Counter(
            "hookline_handler_crashes_total",
            "Messages whose handler raised an unexpected error (republished, quarantined after "
            "several in a row).",
            ["queue"],
            registry=registry,
        )
