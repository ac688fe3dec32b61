"""The producer SDK on the real broker."""

from __future__ import annotations

import json

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
