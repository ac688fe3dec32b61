"""The queue-depth poller: what it sets, drops and counts, against a fake broker."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog
from aio_pika.exceptions import AMQPConnectionError
from prometheus_client import CollectorRegistry

from services.router.metrics import QueueDepthMetrics
from services.router.queue_depths import QueueCounts, QueueDepthPoller
from tests.support.waiting import eventually

QUEUES = {"dead": "hl.dead", "mail": "hl.mail", "retry.5s": "hl.retry.5s"}


class FakeProbe:
    """Answers each queue's counts from a dict (None: no such queue); can fail or hang."""

    def __init__(self) -> None:
        self.answers: dict[str, QueueCounts | None] = {
            name: QueueCounts(0, 0) for name in QUEUES.values()
        }
        self.error: Exception | None = None
        self.hang = False
        self.closed = False

    async def counts(self, queue: str) -> QueueCounts | None:
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return self.answers[queue]

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def probe() -> FakeProbe:
    return FakeProbe()


@pytest.fixture
def poller(probe: FakeProbe, registry: CollectorRegistry) -> QueueDepthPoller:
    return QueueDepthPoller(
        probe, QUEUES, QueueDepthMetrics(registry), interval_s=0.01, timeout_s=0.2
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_poll_sets_each_queue_s_counts_by_role_and_the_time(
    poller: QueueDepthPoller, probe: FakeProbe, registry: CollectorRegistry
) -> None:
    """Messages and consumers are set under the queue's role, and the polled-at time is now."""
    probe.answers["hl.dead"] = QueueCounts(messages=7, consumers=0)
    probe.answers["hl.mail"] = QueueCounts(messages=2, consumers=1)
    before = time.time()
    assert await poller.poll()
    assert sample(registry, "hookline_queue_messages", queue="dead") == 7
    assert sample(registry, "hookline_queue_messages", queue="mail") == 2
    assert sample(registry, "hookline_queue_consumers", queue="mail") == 1
    assert sample(registry, "hookline_queue_consumers", queue="retry.5s") == 0
    polled_at = sample(registry, "hookline_queue_depths_polled_timestamp_seconds")
    assert polled_at is not None
    assert before <= polled_at <= time.time()


async def test_a_missing_queue_is_dropped_and_logged_once(
    poller: QueueDepthPoller, probe: FakeProbe, registry: CollectorRegistry
) -> None:
    """A queue the broker does not have loses its series (no stale number) and one warning is
    logged however many polls miss it; the others are still set; it shows again once back."""
    probe.answers["hl.retry.5s"] = QueueCounts(messages=3, consumers=0)
    assert await poller.poll()
    probe.answers["hl.retry.5s"] = None
    probe.answers["hl.dead"] = QueueCounts(messages=1, consumers=0)
    with structlog.testing.capture_logs() as lines:
        assert await poller.poll()
        assert await poller.poll()
    assert sample(registry, "hookline_queue_messages", queue="retry.5s") is None
    assert sample(registry, "hookline_queue_consumers", queue="retry.5s") is None
    assert sample(registry, "hookline_queue_messages", queue="dead") == 1
    missing = [line for line in lines if line["event"] == "queue_depths.queue_missing"]
    assert [line["queue"] for line in missing] == ["hl.retry.5s"]

    probe.answers["hl.retry.5s"] = QueueCounts(messages=4, consumers=0)
    assert await poller.poll()
    assert sample(registry, "hookline_queue_messages", queue="retry.5s") == 4


async def test_a_poll_that_hangs_is_bounded_and_changes_nothing(
    poller: QueueDepthPoller, probe: FakeProbe, registry: CollectorRegistry
) -> None:
    """A broker that does not answer fails the poll at its bound: counted as a timeout, the last
    counts and their time kept as they were."""
    probe.answers["hl.dead"] = QueueCounts(messages=5, consumers=0)
    assert await poller.poll()
    polled_at = sample(registry, "hookline_queue_depths_polled_timestamp_seconds")
    probe.answers["hl.dead"] = QueueCounts(messages=6, consumers=0)
    probe.hang = True
    async with asyncio.timeout(5):
        assert not await poller.poll()
    assert sample(registry, "hookline_queue_depth_poll_failures_total", reason="timeout") == 1
    assert sample(registry, "hookline_queue_messages", queue="dead") == 5
    assert sample(registry, "hookline_queue_depths_polled_timestamp_seconds") == polled_at


async def test_a_lost_broker_never_ends_the_poller(
    poller: QueueDepthPoller, probe: FakeProbe, registry: CollectorRegistry
) -> None:
    """While the broker is gone every poll fails and is counted, with one warning; once it is
    back the counts are read again and the resumption is logged."""
    probe.error = AMQPConnectionError("connection lost")
    with structlog.testing.capture_logs() as lines:
        await poller.start()
        try:
            await eventually(
                lambda: (
                    (
                        sample(
                            registry, "hookline_queue_depth_poll_failures_total", reason="broker"
                        )
                        or 0
                    )
                    >= 3
                )
            )
            assert sample(registry, "hookline_queue_depths_polled_timestamp_seconds") == 0
            probe.error = None
            probe.answers["hl.dead"] = QueueCounts(messages=9, consumers=0)
            await eventually(lambda: sample(registry, "hookline_queue_messages", queue="dead") == 9)
        finally:
            await poller.stop()
    events = [line["event"] for line in lines if line["event"].startswith("queue_depths.")]
    assert events == ["queue_depths.poll_failed", "queue_depths.poll_resumed"]
    assert probe.closed


async def test_failure_counters_start_at_zero(registry: CollectorRegistry) -> None:
    """Both failure reasons are exported from the start, so a rate over them is never empty."""
    QueueDepthMetrics(registry)
    for reason in ("timeout", "broker"):
        assert sample(registry, "hookline_queue_depth_poll_failures_total", reason=reason) == 0


async def test_stop_before_start_closes_the_probe(
    poller: QueueDepthPoller, probe: FakeProbe
) -> None:
    """A router that fails before its poller started can still stop it."""
    await poller.stop()
    assert probe.closed
