"""The private broker for fault tests: it keeps confirmed messages and leaves the shared one be.

One node serves the whole module (each start costs seconds); every test first brings it back to
serving AMQP, whatever the test before it did.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from tests.support.broker import message_count, take_all
from tests.support.private_broker import PrivateBroker
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e]

MESSAGES = 200


@pytest.fixture(scope="module")
def module_broker() -> Iterator[PrivateBroker]:
    """One private node for the module, stopped and deleted afterwards."""
    # Under /tmp: the node runs as the rabbitmq user, which cannot enter pytest's tmp_path.
    with PrivateBroker(Path(tempfile.gettempdir())) as broker:
        yield broker


@pytest.fixture
def broker(module_broker: PrivateBroker) -> PrivateBroker:
    """The module's private node, serving AMQP."""
    module_broker.ensure_running()
    return module_broker


async def declare_and_fill(channel: AbstractChannel, queue: str) -> None:
    """A durable quorum queue holding MESSAGES persistent messages, each confirmed."""
    await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    for index in range(MESSAGES):
        await channel.default_exchange.publish(
            aio_pika.Message(f"{index}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue,
        )


async def delete_queue(url: str, queue: str) -> None:
    """Delete a queue, on a connection of its own."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


async def message_count_or_none(url: str, queue: str) -> int | None:
    """A queue's depth, or None if the broker does not accept connections."""
    try:
        return await message_count(url, queue)
    except aio_pika.exceptions.AMQPConnectionError:
        return None


async def message_count_is(url: str, queue: str, expected: int) -> bool:
    """Whether the broker answers and the queue holds exactly `expected` messages."""
    return await message_count_or_none(url, queue) == expected


def node_short_name(connection: AbstractConnection) -> str:
    """The broker's node name before the @, from the cluster name in the connection's handshake.

    The default cluster name is the node name with the machine's full host name after the @.
    """
    assert connection.transport is not None
    name = connection.transport.connection.server_properties["cluster_name"]
    text = name.decode() if isinstance(name, bytes) else str(name)
    return text.split("@")[0]


async def test_kill_and_restart_keep_confirmed_persistent_messages(
    broker: PrivateBroker, prefix: str
) -> None:
    """After SIGKILL and a restart, a durable quorum queue still holds every confirmed message."""
    queue = f"{prefix}-killed"
    connection = await aio_pika.connect(broker.url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_and_fill(channel, queue)
    finally:
        await connection.close()

    await asyncio.to_thread(broker.kill)
    await asyncio.to_thread(broker.restart)

    try:
        taken = await take_all(broker.url, queue, expect=MESSAGES)
        assert sorted(int(message.body) for message in taken) == list(range(MESSAGES))
    finally:
        await delete_queue(broker.url, queue)


async def test_stop_app_and_start_app_keep_messages_and_robust_clients_reconnect(
    broker: PrivateBroker, prefix: str
) -> None:
    """After stop_app and start_app the messages are kept and a robust client publishes again."""
    queue = f"{prefix}-app"
    reconnected = asyncio.Event()
    connection = await aio_pika.connect_robust(broker.url, reconnect_interval=0.5)
    connection.reconnect_callbacks.add(lambda _connection: reconnected.set())
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_and_fill(channel, queue)

        await asyncio.to_thread(broker.stop_app)
        assert await message_count_or_none(broker.url, queue) is None  # the broker is down
        await asyncio.to_thread(broker.start_app)

        async with asyncio.timeout(20):
            await reconnected.wait()
        await channel.default_exchange.publish(
            aio_pika.Message(b"after", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue,
        )
        await eventually(
            lambda: message_count_is(broker.url, queue, MESSAGES + 1), timeout_s=20, poll_s=0.2
        )
    finally:
        await connection.close()
        await delete_queue(broker.url, queue)


async def test_shared_broker_is_untouched(
    broker: PrivateBroker, amqp_url: str, prefix: str
) -> None:
    """While the private node is killed, restarted and app-restarted, the shared one serves on."""
    queue = f"{prefix}-shared"
    private = await aio_pika.connect(broker.url)
    private_name = node_short_name(private)
    await private.close()
    shared = await aio_pika.connect(amqp_url)
    try:
        assert private_name == broker.short_name
        assert node_short_name(shared) != broker.short_name
        shared_channel = await shared.channel(publisher_confirms=True)
        await shared_channel.declare_queue(
            queue, durable=True, arguments={"x-queue-type": "quorum"}
        )

        await asyncio.to_thread(broker.kill)
        await asyncio.to_thread(broker.restart)
        await asyncio.to_thread(broker.stop_app)
        await asyncio.to_thread(broker.start_app)

        # The connection opened before is still open: the shared node never restarted.
        assert not shared.is_closed
        await shared_channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue)
        await eventually(lambda: message_count_is(amqp_url, queue, 1), timeout_s=10, poll_s=0.2)
    finally:
        await delete_queue(amqp_url, queue)
        await shared.close()
