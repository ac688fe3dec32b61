"""Acking a stream consumer's messages in batches, on a stand-in channel."""

from __future__ import annotations

import asyncio
import random
from typing import cast

from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelInvalidStateError

from services.runtime.streams import BatchedAcks


class FakeChannel:
    """Records the acks it sends, each after a wait of its own, as a write to a full queue may
    wait longer than a later one."""

    def __init__(self, *, gone: bool = False, max_wait_s: float = 0.0) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.gone = gone
        self._waits = random.Random(7)
        self._max_wait_s = max_wait_s

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        if self.gone:
            raise ChannelInvalidStateError("closed")
        await asyncio.sleep(self._waits.uniform(0, self._max_wait_s))
        self.acks.append((delivery_tag, multiple))


def as_channel(fake: FakeChannel) -> AbstractChannel:
    return cast(AbstractChannel, fake)


async def test_every_nth_message_acks_all_before_it() -> None:
    """Once `every` messages are unacked, one ack with `multiple` of the newest covers them."""
    fake = FakeChannel()
    acks = BatchedAcks(every=3, idle_s=60)
    for tag in range(1, 8):
        await acks.delivered(as_channel(fake), tag)
    assert fake.acks == [(3, True), (6, True)]
    assert acks.unacked == 1
    acks.stop()


async def test_the_rest_is_acked_once_no_message_came_for_a_while() -> None:
    """Messages short of a batch are acked together `idle_s` after they arrived."""
    fake = FakeChannel()
    acks = BatchedAcks(every=100, idle_s=0.01)
    for tag in (1, 2):
        await acks.delivered(as_channel(fake), tag)
    assert fake.acks == []
    await asyncio.sleep(0.1)
    assert (fake.acks, acks.unacked) == ([(2, True)], 0)


async def test_messages_of_a_closed_channel_are_never_acked_on_the_next() -> None:
    """After a reconnect the old channel's unacked messages are dropped, not acked on the new."""
    old, new = FakeChannel(), FakeChannel()
    acks = BatchedAcks(every=3, idle_s=60)
    await acks.delivered(as_channel(old), 1)
    await acks.delivered(as_channel(old), 2)
    for tag in (1, 2, 3):
        await acks.delivered(as_channel(new), tag)
    assert (old.acks, new.acks) == ([], [(3, True)])
    acks.stop()


async def test_concurrent_acks_go_out_in_order_and_never_twice() -> None:
    """Messages handled concurrently (as a consumer's tasks are) send strictly rising tags, however
    long each send takes."""
    fake = FakeChannel(max_wait_s=0.002)
    acks = BatchedAcks(every=2, idle_s=0.001)
    await asyncio.gather(
        *(acks.delivered(as_channel(fake), tag) for tag in range(1, 200)),
        *(acks.flush() for _ in range(20)),
    )
    await asyncio.sleep(0.05)
    tags = [tag for tag, _ in fake.acks]
    assert tags == sorted(set(tags))
    assert tags[-1] == 199
    assert all(multiple for _, multiple in fake.acks)


async def test_a_channel_gone_while_acking_is_no_error() -> None:
    """An ack on a channel that closed meanwhile is dropped quietly: its messages went with it."""
    acks = BatchedAcks(every=1, idle_s=60)
    await acks.delivered(as_channel(FakeChannel(gone=True)), 1)
    assert acks.unacked == 0


async def test_nothing_is_acked_after_stop() -> None:
    """Stopping cancels the pending idle ack."""
    fake = FakeChannel()
    acks = BatchedAcks(every=100, idle_s=0.01)
    await acks.delivered(as_channel(fake), 1)
    acks.stop()
    await asyncio.sleep(0.05)
    assert fake.acks == []
