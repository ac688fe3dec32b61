"""Senders route: each event off the route queue is matched to its webhooks and fanned out, on a
webhook table that is current, once per event id, and an unreadable event is parked."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from schemas.deliveries import ATTEMPTS_KIND, RECORD_IDS_HEADER, attempts_in
from schemas.events import EVENT_IDS_HEADER, EVENTS_KIND
from schemas.topology import CATALOG_HEADER, REASON_HEADER, REPEAT_HEADER
from services.runtime.record_batches import split_ids
from tests.integration.services.sender.conftest import SenderFactory, Upstream
from tests.support.broker import message_count, read_whole_stream, take_all
from tests.support.metrics import metric_value
from tests.support.proxy import CuttableProxy
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def metric(sender: TestClient[Any, Any], name: str) -> float:
    return metric_value(await (await sender.get("/metrics")).text(), name)


async def metric_is(sender: TestClient[Any, Any], name: str, value: float) -> bool:
    return await metric(sender, name) == value


async def test_one_event_reaches_each_matching_webhook_only(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """One event to 50 matching webhooks (exact and patterns) makes 50 deliveries, no others."""
    for n in range(50):
        event = ("ticket.create", "ticket.*", "#", "*.create", "ticket.#")[n % 5]
        await upstream.webhook(f"{receiver.url}/fan/{n}", event=event)
    await upstream.webhook(f"{receiver.url}/other", event="ticket.update")
    await upstream.webhook(f"{receiver.url}/off", event="ticket.create", disabled=True)

    await upstream.publish_event({"type": "ticket.create", "id": "evt_fan", "data": {"n": 1}})
    arrived = await receiver.wait_for(50, timeout_s=20)
    assert sorted(r.path for r in arrived) == sorted(f"/fan/{n}" for n in range(50))
    assert all(r.json()["id"] == "evt_fan" and r.json()["data"] == {"n": 1} for r in arrived)
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 50

    async def counted() -> bool:  # once the event is acked
        return await metric_is(sender, "hookline_deliveries_routed_total", 50)

    await eventually(counted)


async def test_an_accounts_events_reach_its_webhooks_and_those_of_no_account(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """An event of acme reaches acme's webhooks and the ones of no account, never globex's; an
    event of no account reaches only the ones of no account."""
    await upstream.webhook(f"{receiver.url}/acme", event="ticket.*", account="acme")
    await upstream.webhook(f"{receiver.url}/globex", event="ticket.*", account="globex")
    await upstream.webhook(f"{receiver.url}/everyone", event="ticket.*")
    await upstream.publish_event(
        {"type": "ticket.create", "id": "evt_acme", "account": "acme", "data": {}}
    )
    await upstream.publish_event({"type": "ticket.create", "id": "evt_none", "data": {}})
    await receiver.wait_for(3)
    await asyncio.sleep(0.3)
    assert sorted((r.path, r.json()["id"]) for r in receiver.requests) == [
        ("/acme", "evt_acme"),
        ("/everyone", "evt_acme"),
        ("/everyone", "evt_none"),
    ]


async def test_a_repeated_event_id_is_routed_once(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """The same event id twice is one event: the second copy makes no delivery."""
    await upstream.webhook(f"{receiver.url}/paid", event="order.paid")
    for _ in range(2):
        await upstream.publish_event({"type": "order.paid", "id": "evt_same", "data": {}})

    async def both_taken() -> bool:
        return await metric(sender, "hookline_events_duplicate_total") == 1

    await eventually(both_taken)
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.to("/paid")) == 1
    assert await message_count(amqp_url, upstream.settings.topology.route_queue) == 0


async def test_an_events_id_over_amqp_is_its_message_id_when_the_body_has_none(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """Two byte-identical events without an id, published with aio-pika, are two events (each
    publish gets a random message_id); two with one message_id of their own are one."""
    await upstream.webhook(f"{receiver.url}/plain", event="plain.t")
    await upstream.webhook(f"{receiver.url}/own", event="own.t")
    for _ in range(2):
        await upstream.publish_event({"type": "plain.t", "data": {"n": 1}})
    for _ in range(2):
        await upstream.publisher.publish(
            upstream.settings.topology.events_exchange,
            "own.t",
            json.dumps({"type": "own.t", "data": {"n": 1}}).encode(),
            message_id="evt_own",
        )

    async def all_taken() -> bool:
        return await metric(sender, "hookline_events_duplicate_total") == 1

    await eventually(all_taken)
    await receiver.wait_for(3)
    await asyncio.sleep(0.3)
    plain = {request.json()["id"] for request in receiver.to("/plain")}
    assert len(plain) == 2
    assert all(re.fullmatch("[0-9a-f]{32}", event_id) for event_id in plain), plain
    assert [request.json()["id"] for request in receiver.to("/own")] == ["evt_own"]


async def test_an_unreadable_event_is_parked_with_its_reason(
    sender: TestClient[Any, Any], upstream: Upstream, amqp_url: str
) -> None:
    """A message that is not an event goes to quarantine with the field that is wrong."""
    topology = upstream.settings.topology
    await upstream.publish_event({"type": "a.b", "data": "not an object"}, routing_key="a.b")
    [parked] = await take_all(amqp_url, topology.quarantine_queue, expect=1)
    assert "data" in str(parked.headers[REASON_HEADER])
    assert await message_count(amqp_url, topology.route_queue) == 0


async def test_without_its_stream_a_sender_stops_routing_until_it_is_back(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """A deleted webhooks stream pauses routing; once the stream exists again the sender rebuilds
    its table from it (empty now) and routes what waited: to nobody."""
    await upstream.webhook(f"{receiver.url}/lost", event="lost.t")
    topology = upstream.settings.topology
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.queue_delete(topology.webhooks_stream)

    async def paused() -> bool:
        checks = (await (await sender.get("/readyz")).json())["checks"]
        return checks["consuming"] is False and checks["webhooks_synced"] is False

    await eventually(paused)
    await upstream.publish_event({"type": "lost.t", "id": "e1", "data": {}})
    stream = topology.webhooks_stream
    await channel.declare_queue(stream, durable=True, arguments=topology.queues()[stream])
    await connection.close()

    async def ready() -> bool:
        return (await sender.get("/readyz")).status == 200

    await eventually(ready, timeout_s=20)

    async def routed_unmatched() -> bool:
        return await metric(sender, "hookline_events_unmatched_total") == 1

    await eventually(routed_unmatched)
    assert receiver.to("/lost") == []


async def test_after_an_outage_a_sender_catches_up_before_routing(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """A sender cut off from the broker while a webhook was created routes nothing until it has
    read that change: no event is acked as unmatched on a stale table."""
    proxy = CuttableProxy(amqp_url)
    await proxy.start()
    try:
        cut_off = await start_sender(amqp_url=SecretStr(proxy.url), heartbeat_s=1)
        await proxy.cut()
        await upstream.webhook(f"{receiver.url}/race", event="race.t")
        for n in range(20):
            await upstream.publish_event({"type": "race.t", "id": f"e{n}", "data": {}})
        await proxy.restore()
        arrived = await receiver.wait_for(20, path="/race", timeout_s=30)
        assert {r.json()["id"] for r in arrived} == {f"e{n}" for n in range(20)}
        assert await metric(cut_off, "hookline_events_unmatched_total") == 0
    finally:
        await proxy.cut()


async def first_attempts(sender: TestClient[Any, Any], where: str) -> float:
    text = await (await sender.get("/metrics")).text()
    return metric_value(text, f'hookline_first_attempts_total{{where="{where}"}}')


async def test_a_small_fan_outs_first_attempts_are_made_where_it_was_routed(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """Two webhooks: both first attempts are made by the sender that routed the event, without
    the deliver queue; their records are in the log before the event is acked."""
    for name in ("one", "two"):
        await upstream.webhook(f"{receiver.url}/{name}", event="small.t")
    await upstream.publish_event({"type": "small.t", "id": "evt_small", "data": {}})
    arrived = await receiver.wait_for(2)
    assert sorted(r.path for r in arrived) == ["/one", "/two"]
    records = await upstream.outcomes(2)
    assert {(r.attempt, r.outcome) for r in records} == {(1, "delivered")}

    async def counted() -> bool:
        return await first_attempts(sender, "routed_here") == 2

    await eventually(counted)
    assert await first_attempts(sender, "deliver_queue") == 0
    assert await message_count(amqp_url, upstream.settings.topology.route_queue) == 0


async def test_a_first_attempts_slot_comes_free_when_its_call_ends(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """One slot, and record batches at most every 5 s: the third event's call is made where it
    was routed while the second's record still waits for its batch (the slot bounds calls, not
    records). Were the slot held until then, the third would stall and take the deliver queue."""
    sender = await start_sender(route_prefetch=2, record_gather_s=5)
    await upstream.webhook(f"{receiver.url}/slot", event="slot.t")
    await upstream.publish_event({"type": "slot.t", "id": "evt_slot_0", "data": {}})
    await receiver.wait_for(1)
    await upstream.outcomes(1)  # the first record left at once: the next ones wait out 5 s
    for n in (1, 2):
        await upstream.publish_event({"type": "slot.t", "id": f"evt_slot_{n}", "data": {}})
    arrived = await receiver.wait_for(3, timeout_s=4)
    assert sorted(r.json()["id"] for r in arrived) == [f"evt_slot_{n}" for n in range(3)]
    logged = await read_whole_stream(
        upstream.settings.amqp_url.get_secret_value(),
        upstream.settings.topology.delivery_log_stream,
        quiet_s=0.3,
    )
    # The calls came before their records: the second and third are still gathering.
    assert sum(len(attempts_in(m.type, m.body)) for m in logged) == 1

    async def all_made_here() -> bool:
        return await first_attempts(sender, "routed_here") == 3

    await eventually(all_made_here, timeout_s=15)
    assert await first_attempts(sender, "deliver_queue") == 0


async def test_a_failed_first_attempt_is_retried_through_the_retry_queue(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """500 then 200: the first attempt, made where the event was routed, schedules the retry;
    the second attempt comes from the deliver queue with the same webhook-id."""
    await upstream.webhook(f"{receiver.url}/flaky", event="flaky.t")
    receiver.script("/flaky", 500)
    await upstream.publish_event({"type": "flaky.t", "id": "evt_flaky", "data": {}})
    first, second = await receiver.wait_for(2, path="/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    records = await upstream.outcomes(2)
    assert [(r.attempt, r.outcome) for r in records] == [
        (1, "retry_scheduled"),
        (2, "delivered"),
    ]
    assert await first_attempts(sender, "routed_here") == 1


async def test_a_large_fan_out_goes_through_the_deliver_queue(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    sender = await start_sender(first_attempt_fanout=2)
    for n in range(3):
        await upstream.webhook(f"{receiver.url}/wide/{n}", event="wide.t")
    await upstream.publish_event({"type": "wide.t", "id": "evt_wide", "data": {}})
    await receiver.wait_for(3)

    async def counted() -> bool:
        return await first_attempts(sender, "deliver_queue") == 3

    await eventually(counted)
    assert await first_attempts(sender, "routed_here") == 0


async def test_events_wait_for_first_attempt_slots_while_attempts_keep_finishing(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """Four slots (half the route prefetch), events of two deliveries each, answers taking 0.3 s:
    two events are attempted at a time and the rest wait their turn, longer than one attempt, but
    never through the deliver queue, since slots keep coming free."""
    sender = await start_sender(route_prefetch=8)
    for n in range(2):
        await upstream.webhook(f"{receiver.url}/turn/{n}", event="turn.t")
        receiver.delays_s[f"/turn/{n}"] = 0.3
    for n in range(8):
        await upstream.publish_event({"type": "turn.t", "id": f"evt_turn_{n}", "data": {}})
    await receiver.wait_for(16, timeout_s=20)

    async def counted() -> bool:
        return await first_attempts(sender, "routed_here") == 16

    await eventually(counted)
    assert await first_attempts(sender, "deliver_queue") == 0


async def test_events_behind_first_attempts_that_stopped_finishing_take_the_deliver_queue(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """Four slots taken by attempts to an endpoint that went silent for 3 s: the events behind
    them go through the deliver queue once no slot came free for `first_attempt_max_s`."""
    sender = await start_sender(route_prefetch=8, first_attempt_max_s=0.5)
    await upstream.webhook(f"{receiver.url}/stuck", event="stuck.t")
    receiver.delays_s["/stuck"] = 3.0
    for n in range(6):
        await upstream.publish_event({"type": "stuck.t", "id": f"evt_stuck_{n}", "data": {}})
    await receiver.wait_for(6, path="/stuck", timeout_s=20)

    async def counted() -> bool:  # each event is counted once it is acked
        return await first_attempts(sender, "routed_here") == 4

    await eventually(counted)
    assert await first_attempts(sender, "deliver_queue") == 2


async def test_a_repeated_event_whose_first_attempt_is_recorded_is_not_attempted_again(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """A copy of an event that may have been routed already (a redelivery) is not attempted
    where it is routed: its delivery takes the deliver queue, marked, and the sender that takes
    it finds the first attempt recorded."""
    sender = await start_sender(dedupe_window=0)  # so the copy is routed again
    await upstream.webhook(f"{receiver.url}/once", event="once.t")
    await upstream.publish_event({"type": "once.t", "id": "evt_once", "data": {}})
    await receiver.wait_for(1, path="/once")
    await upstream.publisher.publish(
        upstream.settings.topology.events_exchange,
        "once.t",
        b'{"type": "once.t", "id": "evt_once", "data": {}}',
        headers={REPEAT_HEADER: "1"},
    )

    async def dropped() -> bool:
        text = await (await sender.get("/metrics")).text()
        return metric_value(text, "hookline_deliveries_repeat_dropped_total") == 1

    await eventually(dropped, timeout_s=20)
    assert len(receiver.to("/once")) == 1

    async def sent_to_the_deliver_queue() -> bool:
        # Counted once the copy is acked: after its events-stream append, which may still be
        # gathering when its delivery was already taken and dropped.
        return await first_attempts(sender, "deliver_queue") == 1

    await eventually(sent_to_the_deliver_queue)
    assert await first_attempts(sender, "routed_here") == 1


async def test_a_sender_started_later_routes_as_one_that_saw_every_change(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """A sender that rebuilt its table at start routes each type to the enabled webhooks, each in
    its latest state: changed, disabled and deleted ones included."""
    await upstream.webhook(f"{receiver.url}/kept", event="late.*")
    moved = await upstream.webhook(f"{receiver.url}/moved", event="late.a")
    await upstream.change(moved, event="late.b")
    off = await upstream.webhook(f"{receiver.url}/off", event="late.a")
    await upstream.change(off, disabled=True)
    gone = await upstream.webhook(f"{receiver.url}/gone", event="late.a")
    await upstream.delete(gone)
    await start_sender()
    await upstream.publish_event({"type": "late.a", "id": "evt_a", "data": {}})
    await upstream.publish_event({"type": "late.b", "id": "evt_b", "data": {}})
    arrived = await receiver.wait_for(3)
    await asyncio.sleep(0.3)
    assert sorted((r.path, r.json()["id"]) for r in receiver.requests) == [
        ("/kept", "evt_a"),
        ("/kept", "evt_b"),
        ("/moved", "evt_b"),
    ]
    assert len(arrived) == 3


async def test_every_routed_event_is_appended_to_the_events_stream_once(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """Events go into the stream as senders take them: stamped ones as published, others with the
    id and time they were routed with; matched or not; a duplicate once; an unreadable one never.
    Each message lists its events' ids."""
    await upstream.webhook(f"{receiver.url}/a", event="a.*")
    stamped = [
        {"type": "a.b", "id": f"evt_{n}", "time": "2026-11-27T10:00:00+02:00", "data": {"n": n}}
        for n in range(20)
    ]
    for event in stamped:
        await upstream.publish_event(event)
    await upstream.publish_event({"type": "a.b", "data": {"plain": True}})
    await upstream.publish_event({"type": "z.z", "id": "evt_nobody", "data": {}})
    await upstream.publish_event(stamped[0])  # a duplicate
    await upstream.publish_event({"type": "a.b", "data": []})  # unreadable

    await receiver.wait_for(21, path="/a")
    await eventually(lambda: metric_is(sender, "hookline_events_duplicate_total", 1))
    logged = await read_whole_stream(amqp_url, upstream.settings.topology.events_stream)
    events: list[dict[str, Any]] = []
    for message in logged:
        assert message.type == EVENTS_KIND
        batch = json.loads(message.body)
        assert split_ids(message.headers[EVENT_IDS_HEADER]) == [event["id"] for event in batch]
        assert CATALOG_HEADER not in message.headers  # this sender checks no catalog
        events.extend(batch)
    by_id = {event["id"]: event for event in events}
    assert len(events) == len(by_id) == 22
    assert [by_id[event["id"]] for event in stamped] == stamped
    [plain] = [event for event in events if event["data"] == {"plain": True}]
    [delivered] = [r.json() for r in receiver.to("/a") if r.json()["data"] == {"plain": True}]
    assert (plain["id"], plain["time"][:19]) == (delivered["id"], delivered["timestamp"][:19])
    assert by_id["evt_nobody"]["type"] == "z.z"
    # The delivery log's batches list their records' ids too, so readers skip their bodies.
    log = await read_whole_stream(amqp_url, upstream.settings.topology.delivery_log_stream)
    listed = [split_ids(m.headers[RECORD_IDS_HEADER]) for m in log if m.type == ATTEMPTS_KIND]
    assert sum(len(ids or []) for ids in listed) == 21


async def test_an_event_is_acked_only_once_its_append_is_confirmed(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """With the events stream gone, an event is attempted but held, not acked; once the stream is
    back its append goes through and the event is done, attempted once."""
    topology = upstream.settings.topology
    await upstream.webhook(f"{receiver.url}/held", event="held.t")
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(topology.events_stream)
        await upstream.publish_event({"type": "held.t", "id": "evt_held", "data": {}})
        await receiver.wait_for(1, path="/held")
        await asyncio.sleep(1.0)
        assert await metric(sender, "hookline_events_routed_total") == 0
        stream = topology.events_stream
        await channel.declare_queue(stream, durable=True, arguments=topology.queues()[stream])
    finally:
        await connection.close()

    await eventually(lambda: metric_is(sender, "hookline_events_routed_total", 1), timeout_s=20)
    logged = await read_whole_stream(amqp_url, topology.events_stream)
    assert [message.headers[EVENT_IDS_HEADER] for message in logged] == ["evt_held"]
    assert await message_count(amqp_url, topology.route_queue) == 0
    assert len(receiver.to("/held")) == 1
