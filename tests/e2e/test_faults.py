"""Nothing lost when processes die: kill -9 a sender and the router while events stream in.

Every event is counted at a real receiver. Duplicates are allowed (at-least-once), and they carry
the same `webhook-id`; a missing event is a failure.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import RUN_PREFIX
from tests.support.broker import close_connections_named, message_count
from tests.support.processes import (
    ADMIN_TOKEN,
    FULL_STACK,
    INGEST_TOKEN,
    Stack,
    running_stack,
)
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PREFIX = f"{RUN_PREFIX}-faults"
BATCHES, PER_BATCH = 30, 10
EVENTS = BATCHES * PER_BATCH


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A router, a producer and two senders slow enough that a kill lands mid-stream."""
    with running_stack(
        amqp_url,
        PREFIX,
        tmp_path_factory.mktemp("fault-logs"),
        FULL_STACK,
        retry_schedule="1,1,1",
        concurrency="8",
    ) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow_receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    server.delays_s["/slow"] = 0.1
    await server.start()
    yield server
    await server.stop()


def url_of(stack: Stack, name: str) -> str:
    return next(s.url for s in stack.services if s.name == name and not s.killed)


async def test_kill_9_of_a_sender_and_the_router_loses_no_event(
    stack: Stack, slow_receiver: Receiver, amqp_url: str
) -> None:
    """All 300 events reach the subscriber although a sender and the router died mid-stream."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url_of(stack, 'router')}/webhooks",
            json={"event": "fault.*", "uri": f"{slow_receiver.url}/slow"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as response:
            assert response.status == 201

        async def publish_slowly() -> None:
            for batch in range(BATCHES):
                events = [
                    {"type": "fault.tick", "id": f"evt_{batch}_{n}", "data": {"n": n}}
                    for n in range(PER_BATCH)
                ]
                async with http.post(
                    f"{url_of(stack, 'producer')}/events",
                    json=events,
                    headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                ) as response:
                    assert response.status == 202, await response.text()
                await asyncio.sleep(0.1)

        publishing = asyncio.create_task(publish_slowly())
        await slow_receiver.wait_for(40, timeout_s=30)
        victims = [s for s in stack.services if s.name in ("sender-1", "router")]
        for victim in victims:
            victim.kill()
        stack.start("router", "router-2")
        await publishing

    def distinct_events() -> set[str]:
        return {request.json()["id"] for request in slow_receiver.requests}

    await eventually(lambda: len(distinct_events()) >= EVENTS, timeout_s=90)
    expected = {f"evt_{batch}_{n}" for batch in range(BATCHES) for n in range(PER_BATCH)}
    assert distinct_events() == expected
    # a repeat is a redelivery of the same delivery, never a new one
    per_event = Counter(request.json()["id"] for request in slow_receiver.requests)
    ids_per_event: dict[str, set[str]] = {}
    for request in slow_receiver.requests:
        ids_per_event.setdefault(request.json()["id"], set()).add(request.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in ids_per_event.values())
    print(f"duplicates after the kills: {sum(per_event.values()) - EVENTS}")
    assert await message_count(amqp_url, f"{PREFIX}.dead") == 0
    assert await message_count(amqp_url, f"{PREFIX}.quarantine") == 0


async def test_services_reconnect_after_the_broker_drops_their_connections(
    stack: Stack, slow_receiver: Receiver
) -> None:
    """When the broker closes every Hookline connection, each service reconnects by itself: the
    API takes changes again and new events are delivered."""
    running = [s for s in stack.services if not s.killed]
    dropped = sum(
        close_connections_named(f"hookline-{s.name.split('-')[0]}-{s.process.pid}") for s in running
    )
    assert dropped == len(running)

    async with aiohttp.ClientSession() as http:

        async def webhook_created() -> bool:
            async with http.post(
                f"{url_of(stack, 'router-2')}/webhooks",
                json={"event": "after.drop", "uri": f"{slow_receiver.url}/after"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as response:
                return response.status == 201

        async def event_accepted() -> bool:
            async with http.post(
                f"{url_of(stack, 'producer')}/events",
                json={"type": "after.drop", "id": "evt_after_drop", "data": {}},
                headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            ) as response:
                return response.status == 202

        await eventually(webhook_created, timeout_s=30, poll_s=0.5)
        await eventually(event_accepted, timeout_s=30, poll_s=0.5)
    # a create that timed out may have been stored after all, so there may be two such webhooks
    requests = await slow_receiver.wait_for(1, path="/after", timeout_s=30)
    assert {request.json()["id"] for request in requests} == {"evt_after_drop"}
