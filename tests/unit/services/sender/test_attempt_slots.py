"""AttemptSlots: attempts counted, handed out in order, and a wait that ends once they stall."""

from __future__ import annotations

import asyncio

import pytest

from services.sender.attempt_slots import AttemptSlots


async def test_an_event_takes_one_slot_per_attempt() -> None:
    slots = AttemptSlots(10, stall_s=1.0)
    assert await slots.acquire(4) == 4
    assert await slots.acquire(6) == 6
    assert slots.free == 0
    slots.release(1)
    assert slots.free == 1


async def test_a_fan_out_wider_than_the_capacity_takes_them_all() -> None:
    slots = AttemptSlots(3, stall_s=1.0)
    assert await slots.acquire(10) == 3
    assert slots.free == 0


async def test_a_waiter_gets_its_slots_as_attempts_finish() -> None:
    slots = AttemptSlots(4, stall_s=1.0)
    await slots.acquire(4)
    waiter = asyncio.create_task(slots.acquire(3))
    await asyncio.sleep(0)
    for _ in range(2):
        slots.release(1)
        await asyncio.sleep(0)
        assert not waiter.done()  # two free: not yet enough
    slots.release(1)
    assert await waiter == 3
    assert slots.free == 0


async def test_slots_go_first_come_first_served() -> None:
    slots = AttemptSlots(4, stall_s=1.0)
    await slots.acquire(4)
    wide = asyncio.create_task(slots.acquire(3))
    await asyncio.sleep(0)
    narrow = asyncio.create_task(slots.acquire(1))
    await asyncio.sleep(0)
    slots.release(1)
    await asyncio.sleep(0)
    assert not narrow.done(), "a narrow event behind a wide one must not take its slots"
    slots.release(2)
    assert await wide == 3
    slots.release(1)
    assert await narrow == 1


async def test_a_wait_ends_once_no_slot_came_free_for_the_stall_time() -> None:
    slots = AttemptSlots(1, stall_s=0.05)
    await slots.acquire(1)
    with pytest.raises(TimeoutError):
        await slots.acquire(1)
    slots.release(1)
    assert slots.free == 1, "the waiter that gave up took nothing"


async def test_a_wait_goes_on_while_slots_keep_coming_free() -> None:
    slots = AttemptSlots(6, stall_s=0.1)
    await slots.acquire(6)
    waiter = asyncio.create_task(slots.acquire(6))
    # Three times the stall time in all, with a slot coming free twice as often as that.
    for _ in range(5):
        await asyncio.sleep(0.05)
        slots.release(1)
        await asyncio.sleep(0)
        assert not waiter.done()
    await asyncio.sleep(0.05)
    slots.release(1)
    assert await waiter == 6


async def test_a_waiter_that_gives_up_lets_the_ones_behind_it_through() -> None:
    slots = AttemptSlots(3, stall_s=0.05)
    await slots.acquire(3)
    wide = asyncio.create_task(slots.acquire(3))
    await asyncio.sleep(0)
    slots.release(1)
    narrow = asyncio.create_task(slots.acquire(1))
    with pytest.raises(TimeoutError):
        await wide
    assert await narrow == 1


async def test_a_cancelled_waiter_leaves_no_slot_taken() -> None:
    slots = AttemptSlots(1, stall_s=1.0)
    await slots.acquire(1)
    waiter = asyncio.create_task(slots.acquire(1))
    await asyncio.sleep(0)
    slots.release(1)  # handed to the waiter ...
    waiter.cancel()  # ... which goes away before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.free == 1
