"""Metrics more than one service has."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


def quarantined_total(registry: CollectorRegistry) -> Counter:
    return Counter(
        "hookline_messages_quarantined_total",
        "Messages parked in quarantine because they could not be read, by source queue.",
        ["queue"],
        registry=registry,
    )


# Attempt and fan-out latencies: from a millisecond on loopback to the 15 s attempt deadline.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)
