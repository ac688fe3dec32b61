"""Publishing with confirms and declaring the topology, on the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from schemas.topology import Topology
from services.runtime.broker import Publisher, PublishFailed, TopologyMismatch, declare_topology
from tests.conftest import Installs
from tests.support.broker import message_count, read_whole_stream, take_all

pytestmark = pytest.mark.integration


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


async def test_declare_topology_is_idempotent(
    connection: AbstractRobustConnection, installs: Installs, prefix: str, amqp_url: str
) -> None:
    """Declaring an install twice succeeds and leaves every queue in place, empty."""
    topology = installs.add(Topology(prefix, retry_delays_s=(0.5, 5)))
    await declare_topology(connection, topology)
    await declare_topology(connection, topology)
    for name in topology.queues():
        if not name.endswith(".log"):  # a stream's count lags; its existence is what we check
            assert await message_count(amqp_url, name) == 0
    assert f"{prefix}.retry.500ms" in topology.queues()


async def test_confirmed_publish_lands_persistent_in_every_bound_queue(
    connection: AbstractRobustConnection, installs: Installs, prefix: str, amqp_url: str
) -> None:
    """A confirmed publish to the events exchange is in the route queue, persistent, with its id."""
    topology = installs.add(Topology(prefix))
    await declare_topology(connection, topology)
    publisher = await Publisher.open(connection, timeout_s=5)
    await publisher.publish(
        topology.events_exchange, "problem.update", b'{"x": 1}', message_id="evt_1"
    )
    await publisher.close()
    [message] = await take_all(amqp_url, topology.route_queue, expect=1)
    assert message.body == b'{"x": 1}'
    assert message.message_id == "evt_1"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_retiring_removes_the_events_streams_binding_of_earlier_versions(
    connection: AbstractRobustConnection, installs: Installs, prefix: str, amqp_url: str
) -> None:
    """An install declared by 0.6 had its events stream bound to the events exchange: a declare
    that retires (routers, producers) unbinds it, one that does not (senders) leaves it, and
    retiring what is not bound is no error."""
    topology = installs.add(Topology(prefix))
    await declare_topology(connection, topology)
    channel = await connection.channel()
    exchange = await channel.get_exchange(topology.events_exchange)
    stream = await channel.get_queue(topology.events_stream, ensure=False)
    await stream.bind(exchange, "#")  # as 0.6 declared it
    publisher = await Publisher.open(connection, timeout_s=5)

    await declare_topology(connection, topology)
    await publisher.publish(topology.events_exchange, "a.b", b'{"n": 1}', message_id="evt_1")
    await declare_topology(connection, topology, retire=True)
    await declare_topology(connection, topology, retire=True)
    await publisher.publish(topology.events_exchange, "a.b", b'{"n": 2}', message_id="evt_2")
    await publisher.close()

    assert [m.message_id for m in await take_all(amqp_url, topology.route_queue, expect=2)] == [
        "evt_1",
        "evt_2",
    ]
    logged = await read_whole_stream(amqp_url, topology.events_stream)
    assert [m.message_id for m in logged] == ["evt_1"]


async def test_unroutable_publish_fails(
    connection: AbstractRobustConnection, installs: Installs, prefix: str
) -> None:
    """A publish no queue takes is an error, not a silent loss."""
    topology = installs.add(Topology(prefix))
    await declare_topology(connection, topology)
    publisher = await Publisher.open(connection, timeout_s=5)
    with pytest.raises(PublishFailed, match="NO_ROUTE"):
        await publisher.publish(topology.deliveries_exchange, "no-such-key", b"{}")
    # the channel survives a returned message and keeps publishing
    await publisher.publish("", topology.dead_queue, b"{}")
    await publisher.close()


async def test_only_missing_leaves_existing_queues_alone(
    connection: AbstractRobustConnection, installs: Installs, prefix: str
) -> None:
    """A client that does not know the install's settings does not clash with them."""
    installed = installs.add(Topology(prefix, events_max_age="1D"))
    await declare_topology(connection, installed)
    with pytest.raises(TopologyMismatch, match=r"events\.log exists with other arguments"):
        await declare_topology(connection, Topology(prefix, events_max_age="7D"))
    await declare_topology(connection, Topology(prefix, events_max_age="7D"), only_missing=True)
