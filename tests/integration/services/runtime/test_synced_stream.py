"""Following a stream with markers: knowing we have read everything written before now, and
starting over when the stream was deleted and is back."""

from __future__ import annotations

import aio_pika
import pytest

from services.runtime.streams import StreamRecord
from services.runtime.synced_stream import SyncedStream
from tests.integration.services.runtime.conftest import Broker
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_caught_up_returns_after_every_record_published_before_it(
    broker: Broker, amqp_url: str
) -> None:
    """Records another client published just before are applied when caught_up returns, and
    markers never reach the state."""
    connection, publisher, topology = broker
    stream = topology.delivery_log_stream
    applied: list[bytes] = []
    follower = SyncedStream(
        connection,
        publisher,
        stream,
        topology.queues()[stream],
        lambda record: applied.append(record.body),
    )
    await follower.start("test")
    other = await aio_pika.connect(amqp_url)
    try:
        channel = await other.channel(publisher_confirms=True)
        for n in range(50):
            await channel.default_exchange.publish(
                aio_pika.Message(f"r{n}".encode(), type="delivery.attempted"), routing_key=stream
            )
        await follower.caught_up()
        assert applied == [f"r{n}".encode() for n in range(50)]
        await follower.caught_up()  # a second round, nothing new: still exactly those
        assert len(applied) == 50
    finally:
        await other.close()
        await follower.stop()


async def test_a_deleted_stream_stops_being_current_and_starts_over_when_back(
    broker: Broker,
) -> None:
    """Losing the stream clears `is_current` and tells; once it exists again the state is reset
    and rebuilt from the new stream's start."""
    connection, publisher, topology = broker
    stream = topology.webhooks_stream
    applied: list[StreamRecord] = []
    events: list[str] = []

    def reset() -> None:
        events.append("reset")
        applied.clear()

    follower = SyncedStream(
        connection,
        publisher,
        stream,
        topology.queues()[stream],
        applied.append,
        on_reset=reset,
        on_lost=lambda: events.append("lost"),
        on_current=lambda: events.append("current"),
    )
    await publisher.publish("", stream, b"old", message_type="webhook.created")
    await follower.start("test")
    assert [r.body for r in applied] == [b"old"]
    channel = await connection.channel()
    try:
        await channel.queue_delete(stream)
        await eventually(lambda: not follower.is_current)
        await channel.declare_queue(stream, durable=True, arguments=topology.queues()[stream])
        await publisher.publish("", stream, b"new", message_type="webhook.created")
        await eventually(lambda: follower.is_current, timeout_s=15)
    finally:
        await channel.close()
        await follower.stop()
    assert events == ["current", "lost", "reset", "current"]
    assert [(r.body, r.offset) for r in applied] == [(b"new", 0)]
