"""The routing bench runs, small, and counts the deliveries `matches` says there are."""

from __future__ import annotations

from schemas.event_patterns import matches
from tools.bench.routing import event_types, measure, patterns


def test_measure_reports_the_deliveries_of_its_workload() -> None:
    """A small run gives every figure, and one delivery per (pattern, type) that match."""
    result = measure(200, 200)
    assert set(result) == {
        "webhooks",
        "events",
        "ms_per_event",
        "deliveries",
        "build_s",
        "index_bytes_per_webhook",
    }
    assert (result["webhooks"], result["events"]) == (200, 200)
    expected = sum(matches(p, t) for p in patterns(200) for t in event_types(200, 200))
    assert result["deliveries"] == expected
    # Most events match a few broad patterns, and most scoped patterns match no event.
    assert 200 < expected < 200 * 5
