"""The producer SDK on the real broker."""

from __future__ import annotations

import json

import pytest

from schemas.topology import DEFAULT_PARK_DELAYS_S, Topology
from services.producer.sdk import Producer
from tests.conftest import Installs
from tests.support.broker import queue_exists, take_all

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


async def test_the_sdk_declares_no_park_tier(
    amqp_url: str, prefix: str, installs: Installs
) -> None:
    """The SDK cannot know an install's park delays, so it leaves the park tiers to the senders
    instead of adding the default ones (strays where HOOKLINE_PARK_DELAYS says otherwise)."""
    topology = installs.add(Topology(prefix))  # deletes the default tiers, should they be made
    async with Producer(amqp_url, prefix=prefix) as producer:
        await producer.publish("problem.update", {})
    assert await queue_exists(amqp_url, topology.route_queue)
    for delay_s in DEFAULT_PARK_DELAYS_S:
        assert not await queue_exists(amqp_url, topology.park_queue(delay_s)), delay_s


async def test_publish_outside_the_context_is_an_error() -> None:
    """Publishing before entering the context manager says how to use it."""
    producer = Producer()
    with pytest.raises(RuntimeError, match="async with"):
        await producer.publish("a", {})
