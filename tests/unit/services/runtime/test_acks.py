"""Acks coalesced per loop turn: one frame with `multiple` for a run of tags above the last
settled one, every other ack alone, and never one that covers a message still being worked on."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest
from aio_pika.abc import AbstractIncomingMessage

from services.runtime.acks import AckCoalescer


@dataclass(eq=False)
class FakeChannel:
    is_closed: bool = False
    frames: list[tuple[int, bool]] = field(default_factory=list)
    fails: Exception | None = None


@dataclass
class FakeMessage:
    channel: FakeChannel
    delivery_tag: int

    async def ack(self, multiple: bool = False) -> None:
        if self.channel.fails is not None:
            raise self.channel.fails
        self.channel.frames.append((self.delivery_tag, multiple))


def message(channel: FakeChannel, tag: int) -> AbstractIncomingMessage:
    return FakeMessage(channel, tag)  # type: ignore[return-value]


async def ack_all(acks: AckCoalescer, channel: FakeChannel, *tags: int) -> None:
    """Ack these tags in one loop turn."""
    await asyncio.gather(*(acks.ack(message(channel, tag)) for tag in tags))


async def test_acks_of_one_turn_in_a_run_from_the_start_are_one_frame() -> None:
    acks, channel = AckCoalescer(), FakeChannel()
    await ack_all(acks, channel, 3, 1, 2, 4, 5)
    assert channel.frames == [(5, True)]
    await ack_all(acks, channel, 6)
    assert channel.frames[-1] == (6, False)


async def test_an_ack_above_a_message_in_progress_goes_alone_and_never_covers_it() -> None:
    """Tag 1 is still worked on: 2 and 3 are acked alone, at once. Once 1 is acked, the floor
    moves past all three."""
    acks, channel = AckCoalescer(), FakeChannel()
    await ack_all(acks, channel, 2, 3)
    assert channel.frames == [(2, False), (3, False)]
    await ack_all(acks, channel, 1)
    assert channel.frames[-1] == (1, False)
    await ack_all(acks, channel, 4, 5)
    assert channel.frames[-1] == (5, True)


async def test_a_message_given_back_counts_as_settled_for_the_run() -> None:
    """A nacked tag is not outstanding: a `multiple` ack may pass over it."""
    acks, channel = AckCoalescer(), FakeChannel()
    acks.settled_alone(message(channel, 2))
    await ack_all(acks, channel, 1, 3)
    assert channel.frames == [(3, True)]


async def test_a_new_channel_starts_its_own_count() -> None:
    """After a reconnect tags start at 1 again on the new channel."""
    acks, old = AckCoalescer(), FakeChannel()
    await ack_all(acks, old, 1, 2)
    old.is_closed = True
    new = FakeChannel()
    await ack_all(acks, new, 2)
    assert new.frames == [(2, False)]  # tag 1 of the new channel is not settled
    await ack_all(acks, new, 1, 3)
    assert new.frames[-1] == (3, True)


async def test_every_waiter_of_a_failed_frame_gets_its_error() -> None:
    acks, channel = AckCoalescer(), FakeChannel(fails=ConnectionError("gone"))
    results = await asyncio.gather(
        *(acks.ack(message(channel, tag)) for tag in (1, 2, 4)), return_exceptions=True
    )
    assert [type(result) for result in results] == [ConnectionError] * 3


@pytest.mark.parametrize("tags", [(1,), (1, 2, 3)])
async def test_an_ack_waits_for_nothing_but_the_end_of_its_turn(tags: tuple[int, ...]) -> None:
    acks, channel = AckCoalescer(), FakeChannel()
    asked = [asyncio.ensure_future(acks.ack(message(channel, tag))) for tag in tags]
    for _ in range(3):  # the asks run; their turn ends and the flush starts; the flush writes
        await asyncio.sleep(0)
    assert channel.frames
    await asyncio.gather(*asked)


@dataclass(eq=False)
class StrictChannel:
    """Settles tags as RabbitMQ does, and fails as it would: a tag acked twice, or one that was
    never delivered, is an error; so is a `multiple` ack over a message still being worked on.
    Each frame takes a few loop turns to write, as a real socket write may."""

    delivered: set[int]
    in_progress: set[int]
    is_closed: bool = False
    errors: list[str] = field(default_factory=list)

    async def write(self, tag: int, multiple: bool) -> None:
        for _ in range(random.randint(0, 3)):
            await asyncio.sleep(0)
        if tag not in self.delivered:
            self.errors.append(f"unknown delivery tag {tag}")
            return
        settled = {t for t in self.delivered if t <= tag} if multiple else {tag}
        if busy := settled & self.in_progress:
            self.errors.append(f"ack {tag} (multiple={multiple}) covers {sorted(busy)}")
        self.delivered -= settled


@dataclass
class StrictMessage:
    channel: StrictChannel
    delivery_tag: int

    async def ack(self, multiple: bool = False) -> None:
        await self.channel.write(self.delivery_tag, multiple)

    async def nack(self) -> None:
        await self.channel.write(self.delivery_tag, False)


@pytest.mark.parametrize("seed", range(20))
async def test_acks_and_nacks_finishing_in_any_order_are_each_settled_once(seed: int) -> None:
    """Messages finish after random delays, some are given back; the acks' writes take loop turns
    of their own. Every tag is settled exactly once and no ack covers a message in progress."""
    random.seed(seed)
    tags = range(1, 301)
    channel = StrictChannel(delivered=set(tags), in_progress=set(tags))
    acks = AckCoalescer()

    async def work(tag: int) -> None:
        for _ in range(random.randint(0, 6)):
            await asyncio.sleep(0)
        channel.in_progress.discard(tag)
        message = StrictMessage(channel, tag)
        if random.random() < 0.1:
            await message.nack()
            acks.settled_alone(message)  # type: ignore[arg-type]
        else:
            await acks.ack(message)  # type: ignore[arg-type]

    await asyncio.gather(*(work(tag) for tag in tags))
    assert channel.errors == []
    assert channel.delivered == set()
