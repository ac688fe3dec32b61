"""Delivery-log records in batches: nothing waits for a batch to fill, records gather while
earlier batches are being confirmed (and, with an interval, until it is over), and each caller
learns how its own batch went."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from schemas.deliveries import ATTEMPTS_KIND, RECORD_IDS_HEADER
from services.runtime.broker import Publisher, PublishFailed, PublishOutcomeUnknown
from services.runtime.record_batches import (
    MAX_BYTES,
    MAX_RECORDS,
    SLOTS,
    RecordBatches,
    join_ids,
    split_ids,
)


class FakePublisher:
    """Holds every publish until `release` says how it went."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.gates: list[asyncio.Future[None]] = []

    async def publish(self, exchange: str, routing_key: str, body: bytes, **kwargs: Any) -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        self.published.append({"key": routing_key, "body": body, **kwargs})
        await gate

    def release(self, n: int, error: Exception | None = None) -> None:
        if error is None:
            self.gates[n].set_result(None)
        else:
            self.gates[n].set_exception(error)


def batches_of(
    publisher: FakePublisher,
    *,
    slots: int = SLOTS,
    max_records: int = MAX_RECORDS,
    max_bytes: int = MAX_BYTES,
    gather_s: float = 0.0,
) -> RecordBatches:
    return RecordBatches(
        cast(Publisher, publisher),
        "p.deliveries.log",
        slots=slots,
        max_records=max_records,
        max_bytes=max_bytes,
        gather_s=gather_s,
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_record_goes_out_at_once_and_waits_for_its_confirm() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher)
    added = asyncio.create_task(batches.add("msg_1/1/delivered/0", b'{"a":1}'))
    await settle()
    [sent] = publisher.published
    assert sent["key"] == "p.deliveries.log"
    assert sent["message_type"] == ATTEMPTS_KIND
    assert sent["headers"] == {RECORD_IDS_HEADER: "msg_1/1/delivered/0"}
    assert json.loads(sent["body"]) == [{"a": 1}]
    assert not added.done()  # not confirmed yet
    publisher.release(0)
    await added


async def test_records_gather_while_the_slots_are_busy() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher, slots=1, max_records=3)
    adds = [asyncio.create_task(batches.add(f"id{n}", b"{}")) for n in range(6)]
    await settle()
    assert len(publisher.published) == 1  # the first took the only slot
    publisher.release(0)
    await settle()
    assert publisher.published[1]["headers"][RECORD_IDS_HEADER] == "id1 id2 id3"
    assert not any(add.done() for add in adds[1:])
    publisher.release(1)
    await settle()
    assert publisher.published[2]["headers"][RECORD_IDS_HEADER] == "id4 id5"
    assert all(add.done() for add in adds[:4])
    assert not adds[4].done()
    publisher.release(2)
    await asyncio.gather(*adds)


async def one_batch_confirmed(publisher: FakePublisher, gather_s: float) -> RecordBatches:
    """Batches with this interval, one of which has just been confirmed."""
    batches = batches_of(publisher, gather_s=gather_s)
    first = asyncio.create_task(batches.add("id0", b"{}"))
    await settle()
    publisher.release(0)
    await first
    return batches


async def test_with_a_gather_interval_records_that_follow_a_batch_leave_together() -> None:
    """The slots are free, yet the records after a batch wait out the interval, together."""
    publisher = FakePublisher()
    batches = await one_batch_confirmed(publisher, gather_s=0.05)
    following = [asyncio.create_task(batches.add(f"id{n}", b"{}")) for n in (1, 2)]
    await settle()
    assert len(publisher.published) == 1  # the interval is not over
    await asyncio.sleep(0.2)
    assert publisher.published[1]["headers"][RECORD_IDS_HEADER] == "id1 id2"
    publisher.release(1)
    await asyncio.gather(*following)


async def test_a_record_after_a_quiet_spell_leaves_at_once() -> None:
    publisher = FakePublisher()
    batches = await one_batch_confirmed(publisher, gather_s=0.02)
    await asyncio.sleep(0.1)
    second = asyncio.create_task(batches.add("id1", b"{}"))
    await settle()
    assert len(publisher.published) == 2
    publisher.release(1)
    await second


async def test_a_full_batch_does_not_wait_for_the_interval() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher, gather_s=3600, max_records=2)
    adds = [asyncio.create_task(batches.add(f"id{n}", b"{}")) for n in range(3)]
    await settle()
    assert [sent["headers"][RECORD_IDS_HEADER] for sent in publisher.published] == [
        "id0",
        "id1 id2",
    ]
    publisher.release(0)
    publisher.release(1)
    await asyncio.gather(*adds)


async def test_closing_sends_what_is_gathering_and_waits_for_it() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher, gather_s=3600)
    adds = [asyncio.create_task(batches.add(f"id{n}", b"{}")) for n in range(2)]
    await settle()
    assert len(publisher.published) == 1
    closed = asyncio.create_task(batches.close())
    await settle()
    assert publisher.published[1]["headers"][RECORD_IDS_HEADER] == "id1"
    assert not closed.done()  # its batch is not confirmed yet
    publisher.release(0)
    publisher.release(1)
    await closed
    await asyncio.gather(*adds)


async def test_a_batch_stays_under_its_byte_bound() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher, slots=1, max_bytes=25)
    adds = [asyncio.create_task(batches.add(f"id{n}", b"x" * 10)) for n in range(4)]
    await settle()
    for n in range(3):
        publisher.release(n)
        await settle()
    await asyncio.gather(*adds)
    sizes = [len(sent["headers"][RECORD_IDS_HEADER].split()) for sent in publisher.published]
    assert sizes == [1, 2, 1]


async def test_every_caller_of_a_failed_batch_gets_its_error() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher, slots=1)
    first = asyncio.create_task(batches.add("id0", b"{}"))
    rest = [asyncio.create_task(batches.add(f"id{n}", b"{}")) for n in (1, 2)]
    await settle()
    publisher.release(0)
    await settle()
    publisher.release(1, PublishFailed("nacked"))
    await first
    for add in rest:
        with pytest.raises(PublishFailed, match="nacked"):
            await add


async def test_a_caller_that_stops_waiting_leaves_its_record_in_the_batch() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher)
    impatient = asyncio.create_task(batches.add("id0", b"{}"))
    await settle()
    impatient.cancel()
    await settle()
    publisher.release(0, PublishFailed("nacked"))  # nobody left to tell: no warning either
    await batches.close()
    assert len(publisher.published) == 1


async def test_closing_while_a_batch_is_cancelled_tells_its_callers() -> None:
    publisher = FakePublisher()
    batches = batches_of(publisher)
    add = asyncio.create_task(batches.add("id0", b"{}"))
    await settle()
    for task in list(batches._in_flight):
        task.cancel()
    with pytest.raises(PublishOutcomeUnknown):
        await add


async def test_each_confirmed_batch_is_told_by_its_size() -> None:
    publisher = FakePublisher()
    sizes: list[int] = []
    batches = RecordBatches(
        cast(Publisher, publisher), "p.deliveries.log", slots=1, on_batch=sizes.append
    )
    adds = [asyncio.create_task(batches.add(f"id{n}", b"{}")) for n in range(3)]
    await settle()
    publisher.release(0)
    await settle()
    publisher.release(1)
    await asyncio.gather(*adds)
    assert sizes == [1, 2]


async def test_a_batch_of_other_records_has_its_kind_ids_header_and_fixed_headers() -> None:
    """The events stream's batches: their own kind and ids header, and a header every batch
    carries."""
    publisher = FakePublisher()
    batches = RecordBatches(
        cast(Publisher, publisher),
        "p.events.log",
        kind="events.batch",
        ids_header="event_ids",
        headers={"x-mark": "m"},
    )
    added = asyncio.create_task(batches.add("evt_1", b"{}"))
    await settle()
    [sent] = publisher.published
    assert sent["message_type"] == "events.batch"
    assert sent["headers"] == {"x-mark": "m", "event_ids": "evt_1"}
    publisher.release(0)
    await added


def test_ids_are_joined_into_one_header_value_and_split_back() -> None:
    """Not an AMQP array, which a stream drops: one string, split on spaces."""
    assert join_ids(["a/1", "b/2"]) == "a/1 b/2"
    assert split_ids("a/1 b/2") == ["a/1", "b/2"]
    assert split_ids(b"a/1") == ["a/1"]
    assert [split_ids(v) for v in (None, "", 7, ["a/1"])] == [None] * 4
