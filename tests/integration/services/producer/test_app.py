"""The ingest gateway in-process on the real broker: 202 only for what the broker confirmed."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
import pytest
import structlog
from aiohttp.test_utils import TestClient

from services.producer.app import create_app
from services.producer.settings import ProducerSettings
from tests.conftest import AppServer, Installs
from tests.support.broker import message_count, read_whole_stream, take_all

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer ingest-token"}


@pytest.fixture
def settings(amqp_url: str, prefix: str, installs: Installs) -> ProducerSettings:
    settings = ProducerSettings(
        amqp_url=amqp_url,
        prefix=prefix,
        ingest_token="ingest-token",
        max_batch=5,
        max_body_bytes=4096,
    )
    installs.add(settings.topology)
    return settings


@pytest.fixture
async def producer(settings: ProducerSettings, serve_app: AppServer) -> TestClient[Any, Any]:
    return await serve_app(create_app(settings))


async def test_an_accepted_event_is_on_the_broker_with_its_id(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """202 carries the stamped id; the route queue holds the event, and only it: senders append
    it to the events stream once they route it."""
    event = {"type": "problem.update", "data": {"id": 7, "note": None}, "object_id": 7}
    response = await producer.post("/events", json=event, headers=AUTH)
    assert response.status == 202
    answer = await response.json()
    assert answer["ids"] == [answer["id"]]
    assert answer["id"].startswith("evt_")

    [message] = await take_all(amqp_url, settings.topology.route_queue, expect=1)
    assert message.routing_key == "problem.update"
    assert message.message_id == answer["id"]
    stored = json.loads(message.body)
    assert stored["data"] == {"id": 7, "note": None}
    assert stored["id"] == answer["id"]
    assert stored["time"]
    assert await read_whole_stream(amqp_url, settings.topology.events_stream) == []


async def test_a_batch_is_answered_with_each_events_id_in_order(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """An array is answered with each event's id, its own or a new one, in the order sent, as
    `ids` and as one `{"id": …}` per event; every event is published."""
    events = [
        {"type": "a.b", "data": {}, "id": "evt_x"},
        {"type": "recordApproval", "data": {"userId": "u"}},
        {"type": "a.b", "data": {}, "id": "evt_y"},
    ]
    response = await producer.post("/events", json=events, headers=AUTH)
    assert response.status == 202
    answer = await response.json()
    assert answer["ids"][0] == "evt_x"
    assert answer["ids"][1].startswith("evt_")
    assert answer["ids"][2] == "evt_y"
    assert answer["events"] == [{"id": event_id} for event_id in answer["ids"]]
    assert "id" not in answer
    published = await take_all(amqp_url, settings.topology.route_queue, expect=3)
    assert sorted(message.message_id or "" for message in published) == sorted(answer["ids"])


async def test_a_batch_with_one_id_twice_is_refused_whole(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """Two events of one array with the same id are a 400 naming the repeat's field; nothing is
    published."""
    events = [
        {"type": "a.b", "data": {}, "id": "evt_x"},
        {"type": "a.b", "data": {}},
        {"type": "a.b", "data": {}, "id": "evt_y"},
        {"type": "c.d", "data": {"n": 2}, "id": "evt_x"},
    ]
    with structlog.testing.capture_logs() as lines:
        response = await producer.post("/events", json=events, headers=AUTH)
    assert response.status == 400
    [logged] = [line for line in lines if line["event"] == "request.rejected"]
    assert (logged["path"], logged["status"], logged["error"]) == ("/events", 400, "invalid event")
    answer = await response.json()
    assert answer["errors"] == [
        {"field": "[3].id", "message": "the id 'evt_x' is also the id of [0]"}
    ]
    assert await message_count(amqp_url, settings.topology.route_queue) == 0


async def test_invalid_events_are_refused_naming_each_field(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """400 names every wrong field, by position in a batch; nothing is published."""
    events = [
        {"type": "ok.event", "data": {}},
        {"type": "bad type", "data": {}},
        {"data": [], "extra": 1},
    ]
    response = await producer.post("/events", json=events, headers=AUTH)
    assert response.status == 400
    fields = {error["field"] for error in (await response.json())["errors"]}
    assert fields == {"[1].type", "[2].type", "[2].data", "[2].extra"}

    single = await producer.post(
        "/events", json={"type": "x", "data": {}, "time": "2026-01-01T00:00:00"}, headers=AUTH
    )
    assert single.status == 400
    assert [e["field"] for e in (await single.json())["errors"]] == ["time"]

    as_json = {**AUTH, "Content-Type": "application/json"}
    for body in (b"[]", b"42", b"{oops"):
        assert (await producer.post("/events", data=body, headers=as_json)).status == 400
    too_many = [{"type": "a", "data": {}}] * 6
    assert (await producer.post("/events", json=too_many, headers=AUTH)).status == 400
    assert await message_count(amqp_url, settings.topology.route_queue) == 0


async def test_what_strict_json_refuses_publishes_nothing_of_a_batch(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """A lone surrogate in the third event of a batch (once a 500 after the first two were
    published), NaN, a duplicate key: each a 400 saying why, and nothing is published. A body
    not sent as JSON is a 415."""
    as_json = {**AUTH, "Content-Type": "application/json"}
    ok = b'{"type": "a.b", "data": {}}'
    for bad, reason in [
        (b'{"type": "a.b", "data": {"s": "\\ud800"}}', "lone surrogate"),
        (b'{"type": "a.b", "data": {"n": NaN}}', "NaN"),
        (b'{"type": "a.b", "data": {"n": 1e400}}', "too large"),
        (b'{"type": "a.b", "type": "c.d", "data": {}}', "appears twice"),
    ]:
        batch = b"[%s, %s, %s]" % (ok, ok, bad)
        response = await producer.post("/events", data=batch, headers=as_json)
        assert response.status == 400
        assert reason in (await response.json())["error"]
    as_text = {**AUTH, "Content-Type": "text/plain"}
    response = await producer.post("/events", data=ok, headers=as_text)
    assert response.status == 415
    assert await message_count(amqp_url, settings.topology.route_queue) == 0


async def test_size_and_token_limits(producer: TestClient[Any, Any]) -> None:
    """413 over the body limit, 401 without the ingest token."""
    big = {"type": "a", "data": {"blob": "x" * 5000}}
    response = await producer.post("/events", json=big, headers=AUTH)
    assert response.status == 413
    assert "4096" in (await response.json())["error"]
    assert (await producer.post("/events", json={"type": "a", "data": {}})).status == 401


async def test_no_202_for_an_event_the_broker_did_not_take(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """When the publish is refused (here: the exchange vanished) the answer is 503 with the ids."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.exchange_delete(settings.topology.events_exchange)
    await connection.close()

    response = await producer.post(
        "/events", json={"type": "a", "data": {}, "id": "e1"}, headers=AUTH
    )
    assert response.status == 503
    answer = await response.json()
    assert answer["ids"] == ["e1"]
    assert response.headers["Retry-After"] == "1"
    assert await message_count(amqp_url, settings.topology.route_queue) == 0
