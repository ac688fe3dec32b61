"""Nothing lost when processes die or a subscriber is down, on the shared broker.

Every event is counted at a real receiver and in the delivery log (`tests.support.ledger`).
Duplicates are allowed (at-least-once) and must carry the same `webhook-id`; a missing event, a
forked or unfinished retry chain, or anything in dead or quarantine is a failure. One test is a
negative control: it makes a real loss (a purged queue) and shows the count catches it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import aio_pika
import aiohttp
import pytest

from schemas.topology import Topology
from tests.conftest import RUN_PREFIX
from tests.support.broker import close_connections_named, message_count
from tests.support.ledger import Audit, Key, read_delivery_log, settle_and_audit
from tests.support.processes import (
    ADMIN_TOKEN,
    FULL_STACK,
    ServiceProcess,
    Stack,
    post_events,
    running_stack,
)
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PREFIX = f"{RUN_PREFIX}-faults"
# Long enough (15 s) to span a subscriber's outage; nothing else here fails on purpose.
SCHEDULE = (1.0, 2.0, 4.0, 8.0)
PARK_DELAYS = (0.5, 1.0, 2.0)
SETTINGS = {
    "retry_schedule": ",".join(f"{d:g}" for d in SCHEDULE),
    "park_delays": ",".join(f"{d:g}" for d in PARK_DELAYS),
    "attempt_timeout_s": "5",
    "circuit_open_s": "1",
    "circuit_max_open_s": "4",
}
TOPOLOGY = Topology(PREFIX, retry_delays_s=SCHEDULE, park_delays_s=PARK_DELAYS)


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A router, a producer and two senders with a compressed retry schedule."""
    with running_stack(
        amqp_url, PREFIX, tmp_path_factory.mktemp("fault-logs"), FULL_STACK, **SETTINGS
    ) as stack:
        yield stack


def alive(stack: Stack, prefix: str) -> list[ServiceProcess]:
    return [s for s in stack.services if s.name.startswith(prefix) and s.process.poll() is None]


async def create_webhook(http: aiohttp.ClientSession, stack: Stack, event: str, uri: str) -> str:
    async with http.post(
        f"{stack.url_of('router')}/webhooks",
        json={"event": event, "uri": uri},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as response:
        assert response.status == 201, await response.text()
        webhook_id: str = (await response.json())["id"]
        return webhook_id


def events_of(kind: str, count: int) -> list[dict[str, object]]:
    return [
        {"type": f"{kind}.tick", "id": f"evt_{kind}_{n}", "data": {"n": n}} for n in range(count)
    ]


def expected_of(events: Sequence[dict[str, object]], webhooks: Sequence[str]) -> list[Key]:
    return [(str(event["id"]), webhook) for event in events for webhook in webhooks]


async def settle(
    stack: Stack, receiver: Receiver, expected: Sequence[Key], amqp_url: str, **checks: Any
) -> Audit:
    return await settle_and_audit(
        lambda: receiver.requests,
        expected,
        url=amqp_url,
        topology=TOPOLOGY,
        sender_urls=lambda: [s.url for s in alive(stack, "sender")],
        schedule_s=SCHEDULE,
        **checks,
    )


async def nothing_dead_or_quarantined(amqp_url: str) -> None:
    assert await message_count(amqp_url, TOPOLOGY.dead_queue) == 0
    assert await message_count(amqp_url, TOPOLOGY.quarantine_queue) == 0


async def start(stack: Stack, label: str) -> ServiceProcess:
    """Start a sender without blocking the loop (the receiver runs on it)."""
    return await asyncio.to_thread(stack.start, "sender", label)


KILLS = 5
KILL_EVENTS = 1000  # to two webhooks: 2,000 deliveries


@pytest.mark.timeout(180)
async def test_five_kill_9_of_a_sender_during_2000_deliveries_lose_nothing(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """Killing one of two senders with SIGKILL five times during 2,000 deliveries loses none."""
    # 0.25 s a call, 8 at once per webhook and sender: about 128 deliveries a second, so the
    # 2,000 last long enough for five kills and restarts (about 3 s each) to land among them.
    receiver.delays_s["/kill"] = 0.25
    webhooks = [
        await create_webhook(http, stack, "kill.*", f"{receiver.url}/kill") for _ in range(2)
    ]
    events = events_of("kill", KILL_EVENTS)
    expected = expected_of(events, webhooks)
    for start_at in range(0, KILL_EVENTS, 250):
        await post_events(http, stack.url_of("producer"), events[start_at : start_at + 250])

    def delivered() -> int:
        return len({r.headers["webhook-id"] for r in receiver.to("/kill") if r.status == 200})

    kills_at: list[int] = []
    for kill in range(KILLS):
        # Each kill once the senders delivered 100 more since the last restart.
        since = delivered()

        def progressed(since: int = since) -> bool:
            return delivered() >= min(since + 100, len(expected))

        await eventually(progressed, timeout_s=60)
        victim = alive(stack, "sender")[0]  # the older of the two: each is killed in turn
        kills_at.append(delivered())
        victim.kill()
        await start(stack, f"sender-k{kill}")

    assert all(at < len(expected) for at in kills_at), f"a kill came after the last: {kills_at}"
    result = await settle(stack, receiver, expected, amqp_url, bound_requests=False)
    print(f"\nkills after {kills_at} of {len(expected)} deliveries; {result.summary()}")
    assert not result.problems(), result.explain()
    await nothing_dead_or_quarantined(amqp_url)


@pytest.mark.timeout(120)
async def test_kill_9_of_the_router_mid_stream_loses_nothing(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """Killing the router with SIGKILL while events stream in, and starting another, loses none."""
    receiver.delays_s["/route"] = 0.1
    webhook = await create_webhook(http, stack, "route.*", f"{receiver.url}/route")
    events = events_of("route", 300)

    async def publish_slowly() -> None:
        for start_at in range(0, len(events), 10):
            await post_events(http, stack.url_of("producer"), events[start_at : start_at + 10])
            await asyncio.sleep(0.1)

    publishing = asyncio.create_task(publish_slowly())
    await receiver.wait_for(40, path="/route", timeout_s=30)
    alive(stack, "router")[0].kill()
    await asyncio.to_thread(stack.start, "router", "router-2")
    await publishing
    result = await settle(stack, receiver, expected_of(events, [webhook]), amqp_url)
    print(f"\n{result.summary()}")
    assert not result.problems(), result.explain()
    await nothing_dead_or_quarantined(amqp_url)


@pytest.mark.timeout(120)
async def test_a_loss_is_caught_negative_control(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """Negative control: events purged from the route queue before any sender routed them are
    reported lost, and only they, so the loss count can fail."""
    webhook = await create_webhook(http, stack, "purge.*", f"{receiver.url}/purge")
    for sender in alive(stack, "sender"):
        sender.kill()
    purged = events_of("purge", 30)
    await post_events(http, stack.url_of("producer"), purged)
    await eventually(lambda: _depth_is(amqp_url, TOPOLOGY.route_queue, len(purged)), timeout_s=30)
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        route = await channel.get_queue(TOPOLOGY.route_queue, ensure=False)
        await route.purge()
    finally:
        await connection.close()
    await asyncio.gather(start(stack, "sender-p1"), start(stack, "sender-p2"))
    sentinel: list[dict[str, object]] = [
        {"type": "purge.tick", "id": "evt_purge_sentinel", "data": {}}
    ]
    await post_events(http, stack.url_of("producer"), sentinel)
    await receiver.wait_for(1, path="/purge", timeout_s=30)

    result = await settle(
        stack, receiver, expected_of([*purged, *sentinel], [webhook]), amqp_url, timeout_s=2
    )
    print(f"\n{result.summary()}")
    assert result.lost == sorted(expected_of(purged, [webhook]))
    assert result.problems()[0].startswith("not every delivery arrived")
    assert any(problem.startswith("lost: 30") for problem in result.problems())


async def _depth_is(amqp_url: str, queue: str, depth: int) -> bool:
    return await message_count(amqp_url, queue) == depth


@pytest.mark.timeout(120)
async def test_a_subscriber_down_then_failing_then_healthy_gets_every_event(
    stack: Stack, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """A subscriber that refuses connections, then answers 500, then recovers gets every event
    once it is healthy again, within the schedule (15 s)."""
    receiver = Receiver()
    await receiver.start()
    try:
        webhook = await create_webhook(http, stack, "outage.*", f"{receiver.url}/outage")
        await receiver.down()
        down_since = time.monotonic()
        events = events_of("outage", 40)
        await post_events(http, stack.url_of("producer"), events[:20])
        await asyncio.sleep(2)
        await post_events(http, stack.url_of("producer"), events[20:])
        await asyncio.sleep(max(0.0, 4 - (time.monotonic() - down_since)))
        receiver.always["/outage"] = 500
        await receiver.up()
        await receiver.wait_for(1, path="/outage", timeout_s=20)
        await asyncio.sleep(3)
        del receiver.always["/outage"]

        result = await settle(
            stack,
            receiver,
            expected_of(events, [webhook]),
            amqp_url,
            check_lateness=False,  # attempts refused while it was down never reached it
        )
        print(f"\n{result.summary()}")
        assert not result.problems(), result.explain()
        # It went through both kinds of failure: connections refused, then 500s.
        records = await read_delivery_log(amqp_url, TOPOLOGY)
        errors = {r.error for r in records if r.key[1] == webhook and r.error}
        assert "connect failed: connection refused" in errors, errors
        assert "500 Internal Server Error" in errors, errors
        await nothing_dead_or_quarantined(amqp_url)
    finally:
        await receiver.stop()


async def test_services_reconnect_after_the_broker_drops_their_connections(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """When the broker closes every Hookline connection, each service reconnects by itself: the
    API takes changes again and new events are delivered."""
    running = [s for s in stack.services if s.process.poll() is None]
    dropped = sum(
        close_connections_named(f"hookline-{s.name.split('-')[0]}-{s.process.pid}") for s in running
    )
    assert dropped == len(running)

    async def webhook_created() -> bool:
        async with http.post(
            f"{stack.url_of('router')}/webhooks",
            json={"event": "after.drop", "uri": f"{receiver.url}/after"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as response:
            return response.status == 201

    await eventually(webhook_created, timeout_s=30, poll_s=0.5)
    await post_events(
        http,
        stack.url_of("producer"),
        [{"type": "after.drop", "id": "evt_after_drop", "data": {}}],
        timeout_s=30,
    )
    # a create that timed out may have been stored after all, so there may be two such webhooks
    requests = await receiver.wait_for(1, path="/after", timeout_s=30)
    assert {request.json()["id"] for request in requests} == {"evt_after_drop"}


SLOW_S = 2.5
SLOW_KILLS = 25


@pytest.fixture
def lone_sender_stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A router, a producer and one sender, so deliveries interrupted by a kill can only come
    back to the sender that is killed next."""
    with running_stack(
        amqp_url,
        f"{PREFIX}-lone",
        tmp_path_factory.mktemp("lone-logs"),
        [("router", "router"), ("producer", "producer"), ("sender", "sender-0")],
        **SETTINGS,
        endpoint_concurrency="64",  # every delivery in flight at once: none is parked
    ) as stack:
        yield stack


@pytest.mark.timeout(240)
async def test_25_kill_9_of_a_sender_mid_request_quarantine_nothing(
    lone_sender_stack: Stack, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """25 SIGKILLs of the sender while its calls to a slow subscriber are in flight deliver
    everything and quarantine nothing (channel losses are not crashes)."""
    stack = lone_sender_stack
    receiver = Receiver()
    receiver.delays_s["/slow"] = SLOW_S
    await receiver.start()
    try:
        webhooks = [
            await create_webhook(http, stack, "slow.*", f"{receiver.url}/slow") for _ in range(3)
        ]
        events = events_of("slow", 20)
        seen = len(receiver.requests)
        await post_events(http, stack.url_of("producer"), events)
        rng = random.Random(25)
        for kill in range(SLOW_KILLS):
            # This sender's calls are in flight: none has been answered yet (each takes 2.5 s).
            await receiver.wait_for(seen + 1, timeout_s=30)
            await asyncio.sleep(rng.uniform(0.5, SLOW_S - 1.0))
            alive(stack, "sender")[0].kill()
            seen = len(receiver.requests)  # before the next one starts: it calls at once
            await start(stack, f"sender-{kill + 1}")

        topology = Topology(f"{PREFIX}-lone", retry_delays_s=SCHEDULE, park_delays_s=PARK_DELAYS)
        result = await settle_and_audit(
            lambda: receiver.requests,
            expected_of(events, webhooks),
            url=amqp_url,
            topology=topology,
            sender_urls=lambda: [s.url for s in alive(stack, "sender")],
            schedule_s=SCHEDULE,
            bound_requests=False,  # every kill repeats the calls it cut short
            check_lateness=False,
        )
        print(f"\n{result.summary()}")
        assert not result.problems(), result.explain()
        assert await message_count(amqp_url, topology.quarantine_queue) == 0
        assert await message_count(amqp_url, topology.dead_queue) == 0
        # The same deliveries were cut short again and again: more often than the old limit (20).
        assert result.max_requests > 20
    finally:
        await receiver.stop()
