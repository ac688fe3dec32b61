"""Dead letters on a running router: listed from the history, redriven from the real dead queue
into the real deliver queue, nothing removed that was not redriven."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from schemas.deliveries import DELIVERY_TASK, DeliveryAttempted, DeliveryTask, RecordId
from schemas.events import Event
from schemas.topology import REASON_HEADER
from services.router.app import create_app
from services.router.history_api import HISTORY
from services.router.settings import RouterSettings
from services.runtime.broker import Publisher
from services.runtime.record_batches import RecordBatches
from tests.conftest import AppServer
from tests.integration.services.router.conftest import AUTH, create_webhook
from tests.support.broker import message_count, take_all

pytestmark = pytest.mark.integration


class DeadLetters:
    """Puts dead letters where a sender would: the task in the dead queue, its record in the log."""

    def __init__(self, publisher: Publisher, settings: RouterSettings) -> None:
        self.publisher = publisher
        self.topology = settings.topology
        self.records = RecordBatches(publisher, self.topology.delivery_log_stream)

    async def add(
        self, webhook_id: str, n: int, *, reason: str = "500 Internal Server Error"
    ) -> DeliveryTask:
        event = Event(id=f"evt_{webhook_id}_{n}", type="a.b", data={"n": n}, time=datetime.now(UTC))
        task = DeliveryTask(
            delivery_id=f"msg_{webhook_id}_{n}",
            webhook_id=webhook_id,
            webhook_revision=0,
            attempt=3,
            event=event,
        )
        await self.publisher.publish(
            "",
            self.topology.dead_queue,
            task.model_dump_json().encode(),
            message_id=task.delivery_id,
            headers={REASON_HEADER: reason},
        )
        record = DeliveryAttempted(
            delivery_id=task.delivery_id,
            event_id=event.id,
            event_type=event.type,
            webhook_id=webhook_id,
            attempt=3,
            at=datetime.now(UTC) - timedelta(seconds=60 - n),
            outcome="dead_lettered",
            status_code=int(reason[:3]) if reason[:3].isdigit() else None,
            error=reason,
        )
        await self.records.add(str(RecordId.of(record)), record.model_dump_json().encode())
        return task


@pytest.fixture
async def dead_letters(settings: RouterSettings, amqp_url: str) -> AsyncIterator[DeadLetters]:
    connection = await aio_pika.connect_robust(amqp_url)
    publisher = await Publisher.open(connection, timeout_s=5)
    yield DeadLetters(publisher, settings)
    await publisher.close()
    await connection.close()


async def caught_up(client: TestClient[Any, Any]) -> None:
    assert client.app is not None
    async with asyncio.timeout(10):
        await client.app[HISTORY].caught_up()


async def listed(client: TestClient[Any, Any], query: str = "", **headers: str) -> list[str]:
    response = await client.get(f"/dead-letters{query}", headers=headers or AUTH)
    assert response.status == 200, await response.text()
    return [d["delivery_id"] for d in await response.json()]


async def test_dead_letters_are_listed_with_why_and_filtered(
    router: TestClient[Any, Any], dead_letters: DeadLetters
) -> None:
    a = (await create_webhook(router, event="a.b", uri="https://example.com/a"))["id"]
    b = (await create_webhook(router, event="a.b", uri="https://example.com/b"))["id"]
    await dead_letters.add(a, 1)
    await dead_letters.add(a, 2, reason="410 Gone")
    await dead_letters.add(b, 3)
    await caught_up(router)

    assert await listed(router) == [f"msg_{b}_3", f"msg_{a}_2", f"msg_{a}_1"]
    assert await listed(router, f"?webhook_id={a}") == [f"msg_{a}_2", f"msg_{a}_1"]
    assert await listed(router, "?reason=410%20Gone") == [f"msg_{a}_2"]
    [one] = await (await router.get(f"/dead-letters?webhook_id={b}", headers=AUTH)).json()
    assert one["outcome"] == "dead_lettered"
    assert one["attempts"][-1]["error"] == "500 Internal Server Error"
    assert (await router.get("/dead-letters?webhook_id=wh_nope", headers=AUTH)).status == 404
    refused = await router.get("/dead-letters?outcome=delivered", headers=AUTH)
    assert refused.status == 400
    assert (await router.get("/dead-letters")).status == 401


async def test_a_redrive_sends_the_chosen_ones_again_and_leaves_the_rest(
    router: TestClient[Any, Any], dead_letters: DeadLetters, settings: RouterSettings, amqp_url: str
) -> None:
    topology = settings.topology
    a = (await create_webhook(router, event="a.b", uri="https://example.com/a"))["id"]
    b = (await create_webhook(router, event="a.b", uri="https://example.com/b"))["id"]
    off = (await create_webhook(router, event="a.b", uri="https://example.com/c", disabled=True))[
        "id"
    ]
    tasks = {
        "a1": await dead_letters.add(a, 1),
        "a2": await dead_letters.add(a, 2),
        "b3": await dead_letters.add(b, 3),
        "off4": await dead_letters.add(off, 4),
    }
    await dead_letters.publisher.publish("", topology.dead_queue, b"not a delivery")

    response = await router.post("/dead-letters/redrive", json={"webhook_id": a}, headers=AUTH)
    assert response.status == 200, await response.text()
    done = await response.json()
    assert (done["status"], done["total"], done["redriven"], done["kept"]) == ("done", 5, 2, 3)
    assert response.headers["Location"] == f"/dead-letters/redrives/{done['id']}"
    sent = await take_all(amqp_url, topology.deliver_queue, expect=2, timeout_s=10)
    redriven = {m.message_id: DELIVERY_TASK.validate_json(m.body) for m in sent}
    assert set(redriven) == {tasks["a1"].delivery_id, tasks["a2"].delivery_id}
    for task in redriven.values():
        # The next attempt, on a fresh schedule, under the same webhook-id.
        assert (task.attempt, task.schedule_from, task.attempt_of_schedule) == (4, 4, 1)
        assert task.event == tasks["a1" if task.delivery_id.endswith("_1") else "a2"].event
    assert await message_count(amqp_url, topology.dead_queue) == 3

    # Everything else: b's goes, the disabled webhook's and the unreadable one stay.
    response = await router.post("/dead-letters/redrive", headers=AUTH)
    assert (await response.json())["redriven"] == 1
    [again] = await take_all(amqp_url, topology.deliver_queue, expect=1, timeout_s=10)
    assert again.message_id == tasks["b3"].delivery_id
    assert await message_count(amqp_url, topology.dead_queue) == 2

    progress = await router.get(f"/dead-letters/redrives/{done['id']}", headers=AUTH)
    assert (await progress.json())["redriven"] == 2
    assert (await router.get("/dead-letters/redrives/rdr_nope", headers=AUTH)).status == 404


async def test_chosen_deliveries_only(
    router: TestClient[Any, Any], dead_letters: DeadLetters, settings: RouterSettings, amqp_url: str
) -> None:
    a = (await create_webhook(router, event="a.b", uri="https://example.com/a"))["id"]
    chosen = await dead_letters.add(a, 1)
    await dead_letters.add(a, 2)
    response = await router.post(
        "/dead-letters/redrive", json={"delivery_ids": [chosen.delivery_id]}, headers=AUTH
    )
    assert (await response.json())["redriven"] == 1
    [sent] = await take_all(amqp_url, settings.topology.deliver_queue, expect=1, timeout_s=10)
    assert sent.message_id == chosen.delivery_id
    assert await message_count(amqp_url, settings.topology.dead_queue) == 1


async def test_wrong_redrives_are_refused(router: TestClient[Any, Any]) -> None:
    for body, field in [
        ({"webhook": "wh_1"}, "webhook"),
        ({"delivery_ids": []}, "delivery_ids"),
        ({"delivery_ids": "msg_1"}, "delivery_ids"),
    ]:
        response = await router.post("/dead-letters/redrive", json=body, headers=AUTH)
        assert response.status == 400, body
        assert [e["field"] for e in (await response.json())["errors"]] == [field]
    unknown = await router.post("/dead-letters/redrive", json={"webhook_id": "wh_x"}, headers=AUTH)
    assert unknown.status == 404


async def test_a_token_scoped_to_an_account_redrives_only_its_own(
    settings: RouterSettings,
    serve_app: AppServer,
    dead_letters: DeadLetters,
    amqp_url: str,
) -> None:
    scoped = settings.model_copy(update={"account_tokens": SecretStr("acme:acme-token")})
    router = await serve_app(create_app(scoped))
    acme = (await create_webhook(router, event="a.b", uri="https://e.com/a", account="acme"))["id"]
    globex = (await create_webhook(router, event="a.b", uri="https://e.com/g", account="globex"))[
        "id"
    ]
    await dead_letters.add(acme, 1)
    await dead_letters.add(globex, 2)
    await caught_up(router)
    acme_auth = {"Authorization": "Bearer acme-token"}
    assert await listed(router, **acme_auth) == [f"msg_{acme}_1"]
    assert (await router.get(f"/dead-letters?webhook_id={globex}", headers=acme_auth)).status == 404

    response = await router.post("/dead-letters/redrive", headers=acme_auth)
    assert (await response.json())["redriven"] == 1
    [sent] = await take_all(amqp_url, settings.topology.deliver_queue, expect=1, timeout_s=10)
    assert sent.message_id == f"msg_{acme}_1"
    assert await message_count(amqp_url, settings.topology.dead_queue) == 1
