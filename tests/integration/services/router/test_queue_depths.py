"""The router's /metrics shows every queue's depth and consumers, read from the real broker."""

from __future__ import annotations

import os
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from services.router.settings import RouterSettings
from tests.support.broker import close_connections_named
from tests.support.metrics import metric_value
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: RouterSettings) -> RouterSettings:
    """The router's settings (conftest), polling queue depths every 0.1 s."""
    return settings.model_copy(update={"queue_metrics_s": 0.1})


async def put(amqp_url: str, queue: str, count: int) -> None:
    """Publish `count` messages straight to `queue`."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for index in range(count):
            await channel.default_exchange.publish(
                aio_pika.Message(f"{index}".encode()), routing_key=queue
            )
    finally:
        await connection.close()


async def metrics_of(router: TestClient[Any, Any]) -> str:
    return await (await router.get("/metrics")).text()


async def shows(router: TestClient[Any, Any], series: str, value: float) -> bool:
    return metric_value(await metrics_of(router), series) == value


async def listed(router: TestClient[Any, Any], series: str) -> bool:
    """Whether /metrics has a sample of `series` at all (metric_value says 0 for an absent one)."""
    return any(line.startswith(f"{series} ") for line in (await metrics_of(router)).splitlines())


async def test_metrics_show_each_queue_s_messages_and_consumers(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """Messages put on the dead and quarantine queues show as their depth; the router's own mail
    consumer shows on the mail queue; the polled-at time follows the clock."""
    topology = settings.topology
    await put(amqp_url, topology.dead_queue, 3)
    await put(amqp_url, topology.quarantine_queue, 2)
    await eventually(lambda: shows(router, 'hookline_queue_messages{queue="dead"}', 3))
    text = await metrics_of(router)
    assert metric_value(text, 'hookline_queue_messages{queue="quarantine"}') == 2
    assert metric_value(text, 'hookline_queue_consumers{queue="mail"}') == 1
    assert metric_value(text, 'hookline_queue_consumers{queue="dead"}') == 0
    assert metric_value(text, 'hookline_queue_messages{queue="deliver"}') == 0
    polled_at = metric_value(text, "hookline_queue_depths_polled_timestamp_seconds")
    assert polled_at > 0
    shown = {
        sample.partition("}")[0].partition('queue="')[2].rstrip('"')
        for sample in text.splitlines()
        if sample.startswith("hookline_queue_messages{")
    }
    assert shown == set(topology.work_queues())  # every work queue, no stream

    await put(amqp_url, topology.dead_queue, 2)  # polled again: the depth follows
    await eventually(lambda: shows(router, 'hookline_queue_messages{queue="dead"}', 5))
    text = await metrics_of(router)
    assert metric_value(text, "hookline_queue_depths_polled_timestamp_seconds") > polled_at


async def test_a_deleted_queue_drops_its_series_and_the_rest_still_polls(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """A queue deleted under the router (a 404 that closes the poll's channel) leaves /metrics;
    the others are still read."""
    topology = settings.topology
    parked = 'hookline_queue_messages{queue="park.1s"}'
    await eventually(lambda: listed(router, parked))
    admin = await aio_pika.connect(amqp_url)
    try:
        await (await admin.channel()).queue_delete(topology.park_queue(1.0))
    finally:
        await admin.close()
    await put(amqp_url, topology.dead_queue, 4)
    await eventually(lambda: shows(router, 'hookline_queue_messages{queue="dead"}', 4))
    text = await metrics_of(router)
    assert parked not in text
    assert 'hookline_queue_consumers{queue="park.1s"}' not in text
    assert 'hookline_queue_messages{queue="park.5s"}' in text
    assert metric_value(text, 'hookline_queue_consumers{queue="mail"}') == 1


async def test_the_poller_outlives_a_lost_connection(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """After the broker drops the router's connection, the poller reads again once the robust
    connection is back."""
    topology = settings.topology
    await put(amqp_url, topology.dead_queue, 1)
    await eventually(lambda: shows(router, 'hookline_queue_messages{queue="dead"}', 1))
    assert close_connections_named(f'"hookline-router-{os.getpid()}"') == 1
    await put(amqp_url, topology.dead_queue, 1)
    await eventually(
        lambda: shows(router, 'hookline_queue_messages{queue="dead"}', 2), timeout_s=30
    )
    # The mail consumer is restored after the channels: polls may see it gone for a moment.
    await eventually(lambda: shows(router, 'hookline_queue_consumers{queue="mail"}', 1))
