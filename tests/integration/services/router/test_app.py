"""The router in-process on the real broker: the webhooks API and the fan-out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from schemas.deliveries import DeliveryAttempted, DeliveryTask, Outcome, delivery_id_for
from schemas.topology import REASON_HEADER, Topology
from services.router.app import create_app
from services.router.settings import RouterSettings
from tests.conftest import AppServer, Installs
from tests.support.broker import message_count, take_all
from tests.support.proxy import CuttableProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer admin-token"}
RouterFactory = Callable[[], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def settings(amqp_url: str, prefix: str, installs: Installs) -> RouterSettings:
    settings = RouterSettings(amqp_url=amqp_url, prefix=prefix, admin_token="admin-token")
    installs.add(settings.topology)
    return settings


@pytest.fixture
def start_router(settings: RouterSettings, serve_app: AppServer) -> RouterFactory:
    """Starts router replicas on one install; all are stopped after the test."""
    return lambda: serve_app(create_app(settings))


@pytest.fixture
async def router(start_router: RouterFactory) -> TestClient[Any, Any]:
    return await start_router()


async def create_webhook(client: TestClient[Any, Any], **fields: Any) -> dict[str, Any]:
    response = await client.post("/webhooks", json=fields, headers=AUTH)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def publish_event(
    url: str, topology: Topology, body: dict[str, Any], *, routing_key: str | None = None
) -> None:
    """A plain AMQP publish, as an upstream system without the SDK would make it."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topology.events_exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), delivery_mode=2),
            routing_key=routing_key or body["type"],
            mandatory=True,
        )
    finally:
        await connection.close()


async def test_webhook_lifecycle_through_the_api(router: TestClient[Any, Any]) -> None:
    """Create, read, list by state, update, read the secret, delete: the Xurrent API shape."""
    made = await create_webhook(
        router, event="problem.update", uri="https://example.com/hook", description="notes"
    )
    assert made["name"] == "problem.update"  # the name defaults to the event
    assert made["secret"].startswith("whsec_")
    assert made["disabled"] is False
    assert made["last_error"] is None
    webhook_id = made["id"]

    shown = await (await router.get(f"/webhooks/{webhook_id}", headers=AUTH)).json()
    assert "secret" not in shown
    assert shown["description"] == "notes"

    response = await router.patch(
        f"/webhooks/{webhook_id}", json={"disabled": True, "name": "Problem Update"}, headers=AUTH
    )
    assert response.status == 200
    patched = await response.json()
    assert patched["disabled"] is True
    assert patched["name"] == "Problem Update"
    assert patched["updated_at"] > patched["created_at"]

    disabled = await (await router.get("/webhooks/disabled", headers=AUTH)).json()
    enabled = await (await router.get("/webhooks/enabled", headers=AUTH)).json()
    assert [w["id"] for w in disabled] == [webhook_id]
    assert enabled == []

    secret = await (await router.get(f"/webhooks/{webhook_id}/secret", headers=AUTH)).json()
    assert secret == {"secret": made["secret"]}

    assert (await router.delete(f"/webhooks/{webhook_id}", headers=AUTH)).status == 204
    missing = await router.get(f"/webhooks/{webhook_id}", headers=AUTH)
    assert missing.status == 404
    assert (await missing.json())["id"] == webhook_id
    assert await (await router.get("/webhooks", headers=AUTH)).json() == []


async def test_bad_input_gets_the_failing_fields(router: TestClient[Any, Any]) -> None:
    """Invalid webhooks are refused with 400 naming each wrong field; nothing is created."""
    response = await router.post(
        "/webhooks", json={"event": "problem..update", "uri": "ftp://x"}, headers=AUTH
    )
    assert response.status == 400
    fields = {error["field"] for error in (await response.json())["errors"]}
    assert fields == {"event", "uri"}

    response = await router.post("/webhooks", data=b"{not json", headers=AUTH)
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["error"]

    made = await create_webhook(router, event="a.b", uri="https://example.com/")
    response = await router.patch(f"/webhooks/{made['id']}", json={"uri": None}, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "uri"
    assert len(await (await router.get("/webhooks", headers=AUTH)).json()) == 1


async def test_the_api_needs_the_admin_token(router: TestClient[Any, Any]) -> None:
    """Without the bearer token the API answers 401; health and metrics stay open."""
    assert (await router.get("/webhooks")).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await router.post("/webhooks", json={}, headers=wrong)).status == 401
    assert (await router.get("/healthz")).status == 200
    assert (await router.get("/readyz")).status == 200
    assert (await router.get("/metrics")).status == 200


async def test_one_event_fans_out_to_each_matching_webhook_only(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """One event to 50 matching webhooks (exact and patterns) makes 50 deliveries, no others."""
    topology = settings.topology
    matching = []
    for index in range(50):
        event = ("ticket.create", "ticket.*", "#", "*.create", "ticket.#")[index % 5]
        matching.append(await create_webhook(router, event=event, uri=f"https://e.com/{index}"))
    other = await create_webhook(router, event="ticket.update", uri="https://e.com/other")
    disabled = await create_webhook(
        router, event="ticket.create", uri="https://e.com/off", disabled=True
    )

    await publish_event(
        amqp_url, topology, {"type": "ticket.create", "id": "evt_fan", "data": {"n": 1}}
    )
    messages = await take_all(amqp_url, topology.deliver_queue, expect=50)
    tasks = [DeliveryTask.model_validate_json(message.body) for message in messages]
    assert sorted(task.webhook_id for task in tasks) == sorted(w["id"] for w in matching)
    assert {task.delivery_id for task in tasks} == {
        delivery_id_for("evt_fan", w["id"]) for w in matching
    }
    assert all(task.event.data == {"n": 1} and task.attempt == 1 for task in tasks)
    await asyncio.sleep(0.3)
    assert await message_count(amqp_url, topology.deliver_queue) == 0
    assert other["id"] not in {task.webhook_id for task in tasks}
    assert disabled["id"] not in {task.webhook_id for task in tasks}
    metrics = await (await router.get("/metrics")).text()
    assert "hookline_deliveries_routed_total 50.0" in metrics


async def test_a_repeated_event_id_is_routed_once(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """The same event id twice is one event: the second copy makes no deliveries."""
    await create_webhook(router, event="order.paid", uri="https://e.com/")
    for _ in range(2):
        await publish_event(
            amqp_url, settings.topology, {"type": "order.paid", "id": "evt_same", "data": {}}
        )
    await take_all(amqp_url, settings.topology.deliver_queue, expect=1)
    await asyncio.sleep(0.5)
    assert await message_count(amqp_url, settings.topology.deliver_queue) == 0
    assert await message_count(amqp_url, settings.topology.route_queue) == 0


async def test_an_unreadable_event_is_parked_with_its_reason(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """A message that is not an event goes to quarantine with the field that is wrong."""
    await publish_event(
        amqp_url, settings.topology, {"type": "a.b", "data": "not an object"}, routing_key="a.b"
    )
    [parked] = await take_all(amqp_url, settings.topology.quarantine_queue, expect=1)
    assert "data" in str(parked.headers[REASON_HEADER])
    assert await message_count(amqp_url, settings.topology.route_queue) == 0


async def test_a_test_call_goes_out_even_to_a_disabled_webhook(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """POST /webhooks/:id/test queues a test delivery with object_id 12345."""
    made = await create_webhook(router, event="problem.update", uri="https://e.com/", disabled=True)
    response = await router.post(f"/webhooks/{made['id']}/test", headers=AUTH)
    assert response.status == 204
    [message] = await take_all(amqp_url, settings.topology.deliver_queue, expect=1)
    task = DeliveryTask.model_validate_json(message.body)
    assert task.test is True
    assert task.webhook_id == made["id"]
    assert task.event.object_id == 12345
    assert task.event.type == "problem.update"
    assert (await router.post("/webhooks/wh_nope/test", headers=AUTH)).status == 404


async def test_webhooks_survive_a_restart_and_agree_across_replicas(
    start_router: RouterFactory,
) -> None:
    """A second replica, and a router started after the first stopped, see the same webhooks."""
    first = await start_router()
    made = await create_webhook(first, event="risk.*", uri="https://e.com/r")
    second = await start_router()
    await second.patch(f"/webhooks/{made['id']}", json={"description": "d"}, headers=AUTH)
    await first.close()

    third = await start_router()
    listed = await (await third.get("/webhooks", headers=AUTH)).json()
    assert [(w["id"], w["description"]) for w in listed] == [(made["id"], "d")]


async def test_last_error_comes_from_the_delivery_log(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """A failed attempt in the delivery log shows as the webhook's last_error; success clears it."""
    made = await create_webhook(router, event="a.b", uri="https://e.com/")

    async def log_outcome(outcome: Outcome, error: str | None) -> None:
        record = DeliveryAttempted(
            delivery_id="msg_1",
            event_id="evt_1",
            event_type="a.b",
            webhook_id=made["id"],
            attempt=1,
            at=datetime.now(UTC),
            outcome=outcome,
            error=error,
        )
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(record.model_dump_json().encode(), delivery_mode=2),
            routing_key=settings.topology.delivery_log_stream,
        )
        await connection.close()

    async def last_error() -> str | None:
        body = await (await router.get(f"/webhooks/{made['id']}", headers=AUTH)).json()
        last: str | None = body["last_error"]
        return last

    async def shows(expected: str | None) -> bool:
        return await last_error() == expected

    await log_outcome("retry_scheduled", "404 Not Found")
    await eventually(lambda: shows("404 Not Found"))
    await log_outcome("delivered", None)
    await eventually(lambda: shows(None))


async def test_after_an_outage_the_router_catches_up_before_routing(
    settings: RouterSettings, serve_app: AppServer, amqp_url: str
) -> None:
    """A router cut off from the broker while a webhook was created elsewhere routes nothing
    until it has read that change: no event is acked as unmatched on a stale table."""
    proxy = CuttableProxy(amqp_url)
    await proxy.start()
    try:
        cut_off = await serve_app(
            create_app(
                settings.model_copy(
                    update={
                        "amqp_url": SecretStr(proxy.url),
                        "heartbeat_s": 1,
                    }
                )
            )
        )
        other = await serve_app(create_app(settings))
        await proxy.cut()
        await create_webhook(other, event="race.t", uri="https://e.com/race")
        await other.close()  # only the cut-off router is left to route
        for index in range(20):
            await publish_event(
                amqp_url, settings.topology, {"type": "race.t", "id": f"e{index}", "data": {}}
            )
        await proxy.restore()
        messages = await take_all(amqp_url, settings.topology.deliver_queue, expect=20)
        assert {DeliveryTask.model_validate_json(m.body).event.id for m in messages} == {
            f"e{index}" for index in range(20)
        }
        assert (await cut_off.get("/readyz")).status == 200
    finally:
        await proxy.cut()


async def test_without_its_stream_the_router_refuses_changes_and_is_not_ready(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """If the webhooks stream is deleted, a change is refused with 503 (never a false 201) and
    /readyz says the table is no longer current."""
    connection = await aio_pika.connect(amqp_url)
    await (await connection.channel()).queue_delete(settings.topology.webhooks_stream)
    await connection.close()

    response = await router.post(
        "/webhooks", json={"event": "a.b", "uri": "https://e.com/"}, headers=AUTH
    )
    assert response.status == 503
    assert (await response.json())["error"] == "the broker did not take the change; try again"
    ready = await router.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["webhooks_synced"] is False
