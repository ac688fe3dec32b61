"""A work queue's consumer on the real broker: every outcome settled in one place, crashes
counted by us (not by the broker's delivery limit), quarantine with the reason."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry

from schemas.topology import CRASHES_HEADER, REASON_HEADER
from services.runtime import consuming
from services.runtime.consuming import WorkConsumer, may_repeat
from services.runtime.metrics import ConsumerMetrics
from services.runtime.outcomes import Done, GiveBack, Outcome, Unreadable
from tests.integration.services.runtime.conftest import Broker
from tests.support.broker import message_count, take_all
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    body: bytes
    crashes: object
    repeat: bool


async def consume(
    broker: Broker,
    handler: consuming.MessageHandler,
) -> WorkConsumer:
    connection, publisher, topology = broker
    consumer = WorkConsumer(
        connection,
        publisher,
        topology.deliver_queue,
        topology.queues()[topology.deliver_queue],
        handler,
        prefetch=4,
        quarantine_queue=topology.quarantine_queue,
        metrics=ConsumerMetrics(CollectorRegistry()),
        label="deliver",
        hold_s=5,
    )
    await consumer.start()
    return consumer


@pytest.fixture(autouse=True)
def _quick_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consuming, "CRASH_DELAY_S", 0.05)


async def test_a_message_that_keeps_crashing_is_quarantined_with_the_last_line(
    broker: Broker, amqp_url: str
) -> None:
    """Five crashes in a row, counted in a header of our own, then quarantine with the reason."""
    _, publisher, topology = broker
    seen: list[Seen] = []

    async def crash(message: AbstractIncomingMessage) -> Outcome:
        seen.append(Seen(message.body, (message.headers or {}).get(CRASHES_HEADER), False))
        raise ValueError("boom")

    consumer = await consume(broker, crash)
    try:
        await publisher.publish("", topology.deliver_queue, b"poison", message_id="m1")
        [parked] = await take_all(amqp_url, topology.quarantine_queue, expect=1)
    finally:
        await consumer.stop(grace_s=1)
    assert [s.crashes for s in seen] == [None, 1, 2, 3, 4]
    assert parked.body == b"poison"
    assert parked.message_id == "m1"
    assert parked.headers[REASON_HEADER] == "crashed 5 times in a row: ValueError: boom"


async def test_after_a_crash_the_message_comes_back_marked_as_a_possible_repeat(
    broker: Broker,
) -> None:
    """A handler that crashed once sees the message again, flagged so it checks what is done."""
    _, publisher, topology = broker
    seen: list[Seen] = []

    async def crash_once(message: AbstractIncomingMessage) -> Outcome:
        seen.append(Seen(message.body, None, may_repeat(message)))
        if len(seen) == 1:
            raise KeyError("first time")
        return Done()

    consumer = await consume(broker, crash_once)
    try:
        await publisher.publish("", topology.deliver_queue, b"x")
        await eventually(lambda: len(seen) == 2)
    finally:
        await consumer.stop(grace_s=1)
    assert [s.repeat for s in seen] == [False, True]


async def test_given_back_messages_are_redelivered_and_unreadable_ones_quarantined(
    broker: Broker, amqp_url: str
) -> None:
    """GiveBack returns a message to its queue; Unreadable parks it with its reason."""
    _, publisher, topology = broker
    seen: list[tuple[bytes, bool]] = []

    async def handle(message: AbstractIncomingMessage) -> Outcome:
        seen.append((message.body, bool(message.redelivered)))
        if message.body == b"later" and not message.redelivered:
            return GiveBack("hold_expired", "not yet", delay_s=0.05)
        if message.body == b"junk":
            raise Unreadable("not a delivery: junk")
        return Done()

    consumer = await consume(broker, handle)
    try:
        await publisher.publish("", topology.deliver_queue, b"later")
        await publisher.publish("", topology.deliver_queue, b"junk")
        [parked] = await take_all(amqp_url, topology.quarantine_queue, expect=1)
        await eventually(lambda: (b"later", True) in seen)
    finally:
        await consumer.stop(grace_s=1)
    assert parked.headers[REASON_HEADER] == "not a delivery: junk"


async def test_acks_coalesced_never_settle_a_message_still_in_progress(
    broker: Broker, amqp_url: str
) -> None:
    """The first message is held while the ones after it finish and are acked (together where
    they can be); when the consumer stops before the held one is done, only it comes back."""
    _, publisher, topology = broker
    release = asyncio.Event()
    done: list[bytes] = []

    async def handle(message: AbstractIncomingMessage) -> Outcome:
        if message.body == b"0":
            await release.wait()
        done.append(message.body)
        return Done()

    consumer = await consume(broker, handle)
    try:
        for n in range(12):
            await publisher.publish("", topology.deliver_queue, str(n).encode())
        await eventually(lambda: len(done) == 11, timeout_s=10)  # prefetch 4: they flowed on
    finally:
        await consumer.stop(grace_s=0.2)  # the held one is cancelled, not acked
    [back] = await take_all(amqp_url, topology.deliver_queue, expect=1)
    assert back.body == b"0"
    assert sorted(done, key=int) == [str(n).encode() for n in range(1, 12)]
    assert await message_count(amqp_url, topology.deliver_queue) == 0


async def test_many_messages_are_all_acked(broker: Broker, amqp_url: str) -> None:
    """A few hundred messages finishing in bursts leave nothing unacked behind."""
    _, publisher, topology = broker
    seen = 0

    async def handle(_message: AbstractIncomingMessage) -> Outcome:
        nonlocal seen
        await asyncio.sleep(0.001 * (seen % 7))
        seen += 1
        return Done()

    consumer = await consume(broker, handle)
    try:
        await asyncio.gather(
            *(publisher.publish("", topology.deliver_queue, b"x") for _ in range(300))
        )
        await eventually(lambda: seen == 300, timeout_s=20)
    finally:
        await consumer.stop(grace_s=2)
    assert await message_count(amqp_url, topology.deliver_queue) == 0
