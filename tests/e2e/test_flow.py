"""The whole path with real processes: producer, router and two senders, a real receiver.

Events go in three ways (POST /events, the SDK, a plain AMQP publish) and must come out as signed
POSTs that the independent `standardwebhooks` package verifies, carrying the JSON value sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import aiohttp
import pytest
from standardwebhooks.webhooks import Webhook

from schemas.topology import REASON_HEADER
from services.producer.sdk import Producer
from tests.conftest import RUN_PREFIX
from tests.support.broker import message_count, take_all
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

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
PREFIX = f"{RUN_PREFIX}-e2e"
SCHEDULE = "0.5,0.5"


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A router, a producer and two senders on their own prefix; stopped with SIGTERM after."""
    with running_stack(
        amqp_url,
        PREFIX,
        tmp_path_factory.mktemp("logs"),
        FULL_STACK,
        retry_schedule=SCHEDULE,
        attempt_timeout_s="2",
    ) as stack:
        yield stack


async def create(http: aiohttp.ClientSession, stack: Stack, **fields: Any) -> dict[str, Any]:
    async with http.post(f"{stack.url_of('router')}/webhooks", json=fields, headers=ADMIN) as r:
        assert r.status == 201, await r.text()
        body: dict[str, Any] = await r.json()
        return body


async def test_events_from_http_sdk_and_amqp_arrive_signed_and_exact(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """Each subscribed webhook gets each event as sent; a non-matching one gets nothing."""
    base = receiver.url
    exact = await create(http, stack, event="problem.update", uri=f"{base}/exact")
    pattern = await create(http, stack, event="problem.*", uri=f"{base}/pattern")
    other = await create(http, stack, event="request.create", uri=f"{base}/other")
    async with http.get(
        f"{stack.url_of('router')}/webhooks/{exact['id']}/secret", headers=ADMIN
    ) as response:
        assert (await response.json())["secret"] == exact["secret"]

    via_http = {
        "type": "problem.update",
        "data": {"id": 1, "status": "solved", "note": None},
        "object_id": 1,
        "source": "itsm",
        "account": "acme",
    }
    async with http.post(
        f"{stack.url_of('producer')}/events", json=via_http, headers=INGEST
    ) as response:
        assert response.status == 202
        http_id = (await response.json())["id"]

    async with Producer(amqp_url, prefix=PREFIX) as producer:
        sdk_id = await producer.publish(
            "problem.create", {"fields": [{"id": 5, "value": 2.5}]}, object_id="PRB-5"
        )

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.get_exchange(f"{PREFIX}.events", ensure=False)
    amqp_event = {"type": "problem.update", "id": "evt_amqp_1", "data": {"emoji": "✓", "n": [1, 2]}}
    await exchange.publish(
        aio_pika.Message(json.dumps(amqp_event).encode(), delivery_mode=2),
        routing_key="problem.update",
        mandatory=True,
    )
    await connection.close()

    await receiver.wait_for(2, path="/exact")
    await receiver.wait_for(3, path="/pattern")
    await asyncio.sleep(1)  # let any stray delivery arrive before counting
    received = {(request.path, request.json()["id"]): request for request in receiver.requests}
    assert set(received) == {
        ("/exact", http_id),
        ("/exact", "evt_amqp_1"),
        ("/pattern", http_id),
        ("/pattern", sdk_id),
        ("/pattern", "evt_amqp_1"),
    }
    secrets = {"/exact": exact["secret"], "/pattern": pattern["secret"]}
    webhook_ids = {"/exact": exact["id"], "/pattern": pattern["id"]}
    for (path, event_id), request in received.items():
        payload = Webhook(secrets[path]).verify(request.body, request.headers)
        assert payload["webhook_id"] == webhook_ids[path]
        assert payload["id"] == event_id
        sent_events: dict[str, dict[str, Any]] = {http_id: via_http, "evt_amqp_1": amqp_event}
        sent = sent_events.get(event_id)
        if sent is not None:
            assert payload["data"] == sent["data"]
            assert payload["type"] == sent["type"]
            assert payload.get("object_id") == sent.get("object_id")
        else:
            assert payload["data"] == {"fields": [{"id": 5, "value": 2.5}]}
            assert payload["object_id"] == "PRB-5"
    assert receiver.to("/other") == []
    assert other["id"] not in {r.json()["webhook_id"] for r in receiver.requests}


# What `data` keeps (README, "What `data` keeps"): its JSON value, re-encoded. Over HTTP the strict
# reading refuses NaN, a key twice and integers past 64 bits; over AMQP the sender takes them.
SENT_OVER_HTTP = rb"""{"type": "values.http", "data": {
    "z": 1, "a": 1.50, "e": 1e2, "small": 1E-7, "large": 1e21,
    "long": 0.1000000000000000055511151231257827, "zero": -0, "negative_zero": -0.0,
    "int": 9223372036854775807, "s": "\u00e9\/\t\u0001 \ud83d\ude00",
    "nested": {"b": [1, 2.0, true, null], "a": {}}
}}"""
DELIVERED_FROM_HTTP = (
    b'{"z":1,"a":1.5,"e":100.0,"small":1e-7,"large":1e+21,"long":0.1,"zero":0,'
    b'"negative_zero":-0.0,"int":9223372036854775807,'
    + '"s":"é/\\t\\u0001 😀",'.encode()
    + b'"nested":{"b":[1,2.0,true,null],"a":{}}}'
)
SENT_OVER_AMQP = (
    b'{"type": "values.amqp", "id": "evt_values", '
    b'"data": {"nan": NaN, "inf": -Infinity, "k": 1, "k": 2, '
    b'"huge": 123456789012345678901234567890}}'
)
DELIVERED_FROM_AMQP = b'{"nan":null,"inf":null,"k":2,"huge":123456789012345678901234567890}'


async def test_data_arrives_as_its_json_value_re_encoded(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """`data` keeps its JSON value and key order, not its bytes: numbers and escapes re-encoded,
    no white space; the same bytes on a first attempt and on a retry from the retry queue."""
    receiver.fail_first["/values"] = 1
    await create(http, stack, event="values.*", uri=f"{receiver.url}/values")
    as_json = {**INGEST, "Content-Type": "application/json"}
    async with http.post(
        f"{stack.url_of('producer')}/events", data=SENT_OVER_HTTP, headers=as_json
    ) as response:
        assert response.status == 202, await response.text()
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.get_exchange(f"{PREFIX}.events", ensure=False)
    await exchange.publish(
        aio_pika.Message(SENT_OVER_AMQP, delivery_mode=2), routing_key="values.amqp", mandatory=True
    )
    await connection.close()

    arrived = await receiver.wait_for(4, path="/values")
    by_type: dict[str, set[bytes]] = {}
    for request in arrived:
        by_type.setdefault(request.json()["type"], set()).add(request.body)
    # Each event's failed first attempt and its retry carry one body; `data` is its last field.
    [from_http] = by_type["values.http"]
    [from_amqp] = by_type["values.amqp"]
    assert from_http.endswith(b'"data":' + DELIVERED_FROM_HTTP + b"}"), from_http
    assert from_amqp.endswith(b'"data":' + DELIVERED_FROM_AMQP + b"}"), from_amqp


async def test_one_event_reaches_fifty_webhooks(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Fan-out: one event to 50 matching webhooks arrives 50 times, once each."""
    made = [
        await create(http, stack, event="fan.out", uri=f"{receiver.url}/fan/{i}") for i in range(50)
    ]
    await create(http, stack, event="fan.in", uri=f"{receiver.url}/fan/none")
    async with http.post(
        f"{stack.url_of('producer')}/events",
        json={"type": "fan.out", "data": {"x": 1}},
        headers=INGEST,
    ) as response:
        assert response.status == 202

    def fanned() -> list[str]:
        return [r.path for r in receiver.requests if r.path.startswith("/fan/")]

    await eventually(lambda: len(fanned()) >= 50, timeout_s=30)
    await asyncio.sleep(1)
    assert sorted(fanned()) == sorted(f"/fan/{i}" for i in range(50))
    assert {r.json()["webhook_id"] for r in receiver.requests if r.path.startswith("/fan/")} == {
        w["id"] for w in made
    }


async def test_retries_then_success_and_dead_letter_after_the_schedule(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """500, 500, 200 is delivered on the third attempt; an always-failing one is dead-lettered
    after three, and its webhook's last_error says why."""
    receiver.script("/flaky", 500, 500, 200)
    receiver.always["/broken"] = 503
    flaky = await create(http, stack, event="retry.me", uri=f"{receiver.url}/flaky")
    broken = await create(http, stack, event="retry.me", uri=f"{receiver.url}/broken")
    async with http.post(
        f"{stack.url_of('producer')}/events",
        json={"type": "retry.me", "data": {}, "id": "evt_retry"},
        headers=INGEST,
    ) as response:
        assert response.status == 202

    flaky_calls = await receiver.wait_for(3, path="/flaky", timeout_s=30)
    assert len({r.headers["webhook-id"] for r in flaky_calls}) == 1
    await receiver.wait_for(3, path="/broken", timeout_s=30)
    [dead] = await take_all(amqp_url, f"{PREFIX}.dead", expect=1, timeout_s=30)
    assert dead.headers[REASON_HEADER] == "503 Service Unavailable"
    await asyncio.sleep(1.5)
    assert len(receiver.to("/flaky")) == 3
    assert len(receiver.to("/broken")) == 3

    async def last_error(webhook_id: str) -> str | None:
        async with http.get(
            f"{stack.url_of('router')}/webhooks/{webhook_id}", headers=ADMIN
        ) as response:
            error: str | None = (await response.json())["last_error"]
            return error

    async def says_why() -> bool:
        return await last_error(broken["id"]) == "503 Service Unavailable"

    await eventually(says_why)
    assert await last_error(flaky["id"]) is None  # its last attempt succeeded


async def test_the_history_says_what_was_sent_when_and_what_came_back(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """ "We never got it": the router's history lists the delivery with each attempt's status and
    answer, under the `webhook-id` the subscriber saw; a test call appears there too."""
    receiver.script("/history", 500)
    made = await create(http, stack, event="history.me", uri=f"{receiver.url}/history")
    router = stack.url_of("router")
    async with http.post(
        f"{stack.url_of('producer')}/events",
        json={"type": "history.me", "data": {"n": 1}, "id": "evt_history"},
        headers=INGEST,
    ) as response:
        assert response.status == 202
    calls = await receiver.wait_for(2, path="/history", timeout_s=30)

    async def history() -> list[dict[str, Any]]:
        async with http.get(f"{router}/webhooks/{made['id']}/deliveries", headers=ADMIN) as r:
            assert r.status == 200
            listed: list[dict[str, Any]] = await r.json()
            return listed

    async def delivered() -> bool:
        listed = await history()
        return bool(listed) and listed[0]["outcome"] == "delivered"

    await eventually(delivered, timeout_s=20)
    [delivery] = await history()
    assert delivery["event_id"] == "evt_history"
    assert delivery["delivery_id"] == calls[0].headers["webhook-id"]
    assert [(a["attempt"], a["status_code"], a["response_body"]) for a in delivery["attempts"]] == [
        (1, 500, "nope"),
        (2, 200, "ok"),
    ]
    assert delivery["attempts"][0]["error"] == "500 Internal Server Error"

    async with http.post(f"{router}/webhooks/{made['id']}/test", headers=ADMIN) as response:
        assert response.status == 204

    async def tested() -> bool:
        return any(d["test"] for d in await history())

    await eventually(tested, timeout_s=20)
    test_call = next(d for d in await history() if d["test"])
    assert test_call["outcome"] == "delivered"
    async with http.get(f"{router}/deliveries/{test_call['delivery_id']}", headers=ADMIN) as r:
        assert (await r.json())["attempts"][0]["status_code"] == 200

    async def last_attempt_is_the_test() -> bool:
        async with http.get(f"{router}/webhooks/{made['id']}", headers=ADMIN) as r:
            shown = await r.json()
        # The history keeps milliseconds; the webhook's health the attempt's own time.
        seen = datetime.fromisoformat(shown["last_attempt_at"] or "1970-01-01T00:00:00Z")
        tested_at = datetime.fromisoformat(test_call["last_attempt_at"])
        return abs(seen - tested_at) < timedelta(milliseconds=1)

    await eventually(last_attempt_is_the_test, timeout_s=20)


async def test_a_redriven_dead_letter_is_delivered_under_its_webhook_id(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """Dead-lettered after its schedule, listed in /dead-letters, redriven once the endpoint is
    back: the subscriber gets it as attempt 4 with the same webhook-id, and the dead queue is
    empty again."""
    receiver.always["/redrive"] = 503
    made = await create(http, stack, event="redrive.me", uri=f"{receiver.url}/redrive")
    router = stack.url_of("router")
    async with http.post(
        f"{stack.url_of('producer')}/events",
        json={"type": "redrive.me", "data": {}, "id": "evt_redrive"},
        headers=INGEST,
    ) as response:
        assert response.status == 202
    failed = await receiver.wait_for(3, path="/redrive", timeout_s=30)

    async def dead_lettered() -> bool:
        query = f"{router}/dead-letters?webhook_id={made['id']}"
        async with http.get(query, headers=ADMIN) as r:
            return len(await r.json()) == 1

    await eventually(dead_lettered, timeout_s=20)
    del receiver.always["/redrive"]
    async with http.post(
        f"{router}/dead-letters/redrive", json={"webhook_id": made["id"]}, headers=ADMIN
    ) as response:
        assert response.status == 200
        assert (await response.json())["redriven"] == 1
    [*_, redriven] = await receiver.wait_for(4, path="/redrive", timeout_s=20)
    assert redriven.headers["webhook-id"] == failed[0].headers["webhook-id"]
    assert redriven.status == 200

    async def delivered_again() -> bool:
        async with http.get(f"{router}/webhooks/{made['id']}/deliveries", headers=ADMIN) as r:
            [delivery] = await r.json()
        return bool(delivery["outcome"] == "delivered" and delivery["attempt_count"] == 4)

    await eventually(delivered_again, timeout_s=20)
    assert await message_count(amqp_url, f"{PREFIX}.dead") == 0


async def test_every_service_serves_metrics_and_logs_json_with_ids(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """/metrics on each service has its counters and no `*_created` series; attempt logs carry
    event, webhook and attempt."""
    wanted = {
        "producer": ["hookline_events_accepted_total"],
        "router": ["hookline_webhooks", "hookline_test_calls_total"],
        "sender-1": [
            "hookline_events_routed_total",
            "hookline_deliveries_routed_total",
            "hookline_deliveries_total",
            "hookline_delivery_attempt_duration_seconds",
            "hookline_delivery_retries_total",
            "hookline_dead_letters_total",
        ],
    }
    for name, metrics in wanted.items():
        async with http.get(f"{stack.url_of(name)}/metrics") as response:
            text = await response.text()
        for metric in metrics:
            assert metric in text, (name, metric)
        assert [line for line in text.splitlines() if "_created" in line] == [], name
    attempts = [
        line
        for s in stack.services
        if s.name.startswith("sender")
        for line in s.log_lines()
        if line.get("event") == "delivery.attempted"
    ]
    assert attempts
    for line in attempts:
        assert {"event_id", "webhook_id", "delivery_id", "attempt", "outcome"} <= set(line)
    assert {line["attempt"] for line in attempts} >= {1, 2, 3}


async def test_logs_are_written_as_json(stack: Stack) -> None:
    """Every line each service wrote is a JSON object (no stray prints, no tracebacks)."""
    for process in stack.services:
        raw = [line for line in process.log_path.read_bytes().splitlines() if line.strip()]
        assert raw, process.name
        assert all(line.startswith(b"{") for line in raw), process.name
