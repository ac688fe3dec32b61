"""The producer SDK on the real broker."""

from __future__ import annotations

import json

import aio_pika
import pytest

from schemas.topology import Topology
from services.producer.sdk import Producer
from tests.conftest import Installs
from tests.support.broker import take_all

pytestmark = pytest.mark.integration


async def test_publish_returns_the_id_once_the_event_is_queued(
    amqp_url: str, prefix: str, installs: Installs
) -> None:
    """On a broker with nothing declared yet, `publish` declares what it needs and is confirmed."""
    topology = installs.add(Topology(prefix))
    async with Producer(amqp_url, prefix=prefix) as producer:
        event_id = await producer.publish(
            "recordApproval", {"userId": "KXU1", "isControlled": True}, object_id="KXREC1"
        )
        given = await producer.publish("problem.update", {}, id="evt_given")
    assert given == "evt_given"
    first, second = await take_all(amqp_url, topology.route_queue, expect=2)
    assert first.message_id == event_id
    assert first.routing_key == "recordApproval"
    body = json.loads(first.body)
    assert body["data"] == {"userId": "KXU1", "isControlled": True}
    assert body["object_id"] == "KXREC1"
    assert second.message_id == "evt_given"


async def test_publish_outside_the_context_is_an_error() -> None:
    """Publishing before entering the context manager says how to use it."""
    producer = Producer()
    with pytest.raises(RuntimeError, match="async with"):
        await producer.publish("a", {})


async def test_the_sdk_declares_no_park_tier_of_its_own(
    amqp_url: str, prefix: str, installs: Installs
) -> None:
    """The SDK declares no park tier: it cannot know the install's delays, and the default tiers
    would be litter in an install with others (HOOKLINE_PARK_DELAYS=0.5,2)."""
    topology = installs.add(Topology(prefix))
    async with Producer(amqp_url, prefix=prefix):
        pass
    assert await queue_exists(amqp_url, topology.route_queue)
    for delay_s in topology.park_tiers_s:
        assert not await queue_exists(amqp_url, topology.park_queue(delay_s))


async def queue_exists(url: str, name: str) -> bool:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()
