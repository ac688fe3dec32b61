"""Reading a stream from its start, and resuming after the broker drops the connection."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from schemas.topology import Topology
from services.runtime.broker import Publisher, declare_topology
from services.runtime.streams import StreamReader
from tests.conftest import Installs
from tests.support.broker import close_connections_named
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_reader_reads_in_order_and_resumes_without_rereading(
    amqp_url: str, installs: Installs, prefix: str
) -> None:
    """After a reconnect the reader continues at the next offset: nothing twice, nothing missed."""
    name = f"hookline-test-reader-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": name}, reconnect_interval=0.5
    )
    topology = installs.add(Topology(prefix))
    await declare_topology(connection, topology)
    publisher = await Publisher.open(connection, timeout_s=5)
    stream = topology.webhooks_stream
    seen: list[tuple[int, bytes]] = []
    reader = StreamReader(
        connection,
        stream,
        topology.queues()[stream],
        lambda record: seen.append((record.offset, record.body)),
    )
    try:
        for index in range(5):
            await publisher.publish("", stream, f"{index}".encode())
        await reader.start()
        await eventually(lambda: len(seen) >= 5)

        assert close_connections_named(name) == 1
        await asyncio.sleep(0.5)
        for index in range(5, 8):  # a publish made while reconnecting waits for the connection
            await publisher.publish("", stream, f"{index}".encode())
        await eventually(lambda: len(seen) >= 8, timeout_s=20)
        await asyncio.sleep(0.5)  # anything re-read would have arrived by now
        assert [body for _, body in seen] == [f"{index}".encode() for index in range(8)]
        assert [offset for offset, _ in seen] == sorted({offset for offset, _ in seen})
    finally:
        await reader.stop()
        await publisher.close()
        await connection.close()


async def test_a_reader_reads_far_more_than_its_credit(
    amqp_url: str, installs: Installs, prefix: str
) -> None:
    """With a prefetch of 8 a reader reads 500 records, in order, and those that come later: its
    batched acks give the broker its credit back."""
    connection = await aio_pika.connect_robust(amqp_url)
    topology = installs.add(Topology(prefix))
    await declare_topology(connection, topology)
    publisher = await Publisher.open(connection, timeout_s=5)
    stream = topology.webhooks_stream
    seen: list[bytes] = []
    reader = StreamReader(
        connection, stream, topology.queues()[stream], lambda r: seen.append(r.body), prefetch=8
    )
    try:
        await asyncio.gather(*(publisher.publish("", stream, f"{n}".encode()) for n in range(500)))
        await reader.start()
        await eventually(lambda: len(seen) >= 500)
        for n in range(500, 520):
            await publisher.publish("", stream, f"{n}".encode())
        await eventually(lambda: len(seen) >= 520)
        assert seen == [f"{n}".encode() for n in range(520)]
    finally:
        await reader.stop()
        await publisher.close()
        await connection.close()
