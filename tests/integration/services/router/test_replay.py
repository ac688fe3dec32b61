"""Replay on a running router: events read back from the real events stream, sent to the real
deliver queue for the one webhook that asked, within its window."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from schemas.deliveries import DELIVERY_TASK, DeliveryAttempted, RecordId, delivery_id_for
from services.router.history_api import HISTORY
from services.router.settings import RouterSettings
from services.runtime.broker import Publisher
from services.runtime.record_batches import RecordBatches
from tests.integration.services.router.conftest import AUTH, create_webhook
from tests.support.broker import take_all
from tests.support.events_log import append_events
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def event(event_id: str, type_: str, ago: timedelta, **more: Any) -> dict[str, Any]:
    return {"id": event_id, "type": type_, "time": (NOW - ago).isoformat(), "data": {}, **more}


async def log_events(
    publisher: Publisher, settings: RouterSettings, *events: dict[str, Any]
) -> None:
    await append_events(publisher, settings.topology, *events)


async def publish_event(
    publisher: Publisher,
    settings: RouterSettings,
    event_id: str,
    type_: str,
    ago: timedelta,
    **more: Any,
) -> None:
    await log_events(publisher, settings, event(event_id, type_, ago, **more))


async def finished(router: TestClient[Any, Any], location: str) -> dict[str, Any]:
    async def done() -> bool:
        answer = await (await router.get(location, headers=AUTH)).json()
        return bool(answer["status"] != "running")

    await eventually(done, timeout_s=20)
    progress: dict[str, Any] = await (await router.get(location, headers=AUTH)).json()
    return progress


async def test_a_replay_sends_the_windows_matching_events_to_its_webhook(
    router: TestClient[Any, Any], publisher: Publisher, settings: RouterSettings, amqp_url: str
) -> None:
    """Batches as senders append them, and single events as the exchange wrote them up to 0.6:
    an event in the stream twice is sent once, and one that cannot be read is counted."""
    made = await create_webhook(router, event="a.b", uri="https://example.com/h", account="acme")
    hour = timedelta(hours=1)
    await log_events(
        publisher,
        settings,
        event("evt_old", "a.b", 3 * hour, account="acme"),
        event("evt_in", "a.b", hour, account="acme"),
        {"type": "a.b", "data": {}},  # no id nor time: no sender appends that
    )
    await log_events(
        publisher,
        settings,
        event("evt_other_type", "a.c", hour, account="acme"),
        event("evt_other_account", "a.b", hour, account="globex"),
    )
    late = event("evt_late", "a.b", timedelta(minutes=5), account="acme")
    # The 0.6 shape: the exchange writes each event as published; during an upgrade a 0.7
    # sender appends it too.
    stream = settings.topology.events_stream
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.topology.events_exchange)
        queue = await channel.get_queue(stream, ensure=False)
        await queue.bind(exchange, "#")
        try:
            await publisher.publish(
                settings.topology.events_exchange, "a.b", json.dumps(late).encode()
            )
            await publisher.publish(settings.topology.events_exchange, "a.b", b"not json")
        finally:
            await queue.unbind(exchange, "#")
    await log_events(publisher, settings, late)
    # The webhook got evt_late before: the replay sends it as its next attempt, same webhook-id.
    sent_before = DeliveryAttempted(
        delivery_id=delivery_id_for("evt_late", made["id"]),
        event_id="evt_late",
        event_type="a.b",
        webhook_id=made["id"],
        attempt=1,
        at=NOW,
        outcome="delivered",
        status_code=200,
    )
    records = RecordBatches(publisher, settings.topology.delivery_log_stream)
    await records.add(str(RecordId.of(sent_before)), sent_before.model_dump_json().encode())
    assert router.app is not None
    async with asyncio.timeout(10):
        await router.app[HISTORY].caught_up()

    since = (NOW - 2 * hour).isoformat()
    response = await router.post(
        f"/webhooks/{made['id']}/replay", json={"since": since}, headers=AUTH
    )
    assert response.status == 202, await response.text()
    progress = await finished(router, response.headers["Location"])
    assert progress["status"] == "done", progress
    assert (progress["read"], progress["matched"], progress["sent"], progress["unreadable"]) == (
        8,
        2,
        2,
        2,
    )

    queued = await take_all(amqp_url, settings.topology.deliver_queue, expect=2, timeout_s=10)
    tasks = {task.event.id: task for task in (DELIVERY_TASK.validate_json(m.body) for m in queued)}
    assert set(tasks) == {"evt_in", "evt_late"}
    assert all(task.replay == progress["id"] for task in tasks.values())
    assert (tasks["evt_in"].attempt, tasks["evt_in"].schedule_from) == (1, 1)
    assert (tasks["evt_late"].attempt, tasks["evt_late"].schedule_from) == (2, 2)
    assert tasks["evt_late"].delivery_id == sent_before.delivery_id


async def test_an_event_filter_and_until_narrow_the_window(
    router: TestClient[Any, Any], publisher: Publisher, settings: RouterSettings, amqp_url: str
) -> None:
    made = await create_webhook(router, event="a.#", uri="https://example.com/h")
    await publish_event(publisher, settings, "evt_b", "a.b", timedelta(minutes=30))
    await publish_event(publisher, settings, "evt_c", "a.c", timedelta(minutes=30))
    await publish_event(publisher, settings, "evt_b_new", "a.b", timedelta(minutes=1))
    body = {
        "since": (NOW - timedelta(hours=1)).isoformat(),
        "until": (NOW - timedelta(minutes=10)).isoformat(),
        "event": "*.b",
    }
    response = await router.post(f"/webhooks/{made['id']}/replay", json=body, headers=AUTH)
    progress = await finished(router, response.headers["Location"])
    assert (progress["matched"], progress["sent"]) == (1, 1)
    [queued] = await take_all(amqp_url, settings.topology.deliver_queue, expect=1, timeout_s=10)
    assert DELIVERY_TASK.validate_json(queued.body).event.id == "evt_b"


async def test_one_replay_at_a_time_and_wrong_ones_refused(
    router: TestClient[Any, Any], publisher: Publisher, settings: RouterSettings
) -> None:
    made = await create_webhook(router, event="a.b", uri="https://example.com/h")
    for n in range(3):
        await publish_event(publisher, settings, f"evt_{n}", "a.b", timedelta(minutes=5))
    since = (NOW - timedelta(hours=1)).isoformat()
    slow = await router.post(
        f"/webhooks/{made['id']}/replay", json={"since": since, "rate_per_s": 1}, headers=AUTH
    )
    assert slow.status == 202
    busy = await router.post(f"/webhooks/{made['id']}/replay", json={"since": since}, headers=AUTH)
    assert busy.status == 409
    for body, field in [
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": since, "until": (NOW - timedelta(hours=2)).isoformat()}, "body"),
        ({"since": since, "rate_per_s": 0}, "rate_per_s"),
        ({"since": since, "event": "a..b"}, "event"),
    ]:
        refused = await router.post(f"/webhooks/{made['id']}/replay", json=body, headers=AUTH)
        assert refused.status == 400, body
        assert [e["field"] for e in (await refused.json())["errors"]] == [field], body
    missing = await router.post("/webhooks/wh_nope/replay", json={"since": since}, headers=AUTH)
    assert missing.status == 404
    assert (await router.get("/replays/rpl_nope", headers=AUTH)).status == 404


async def test_a_window_from_before_1970_reads_the_stream_from_its_start(
    router: TestClient[Any, Any], publisher: Publisher, settings: RouterSettings, amqp_url: str
) -> None:
    """AMQP timestamps cannot say 0377; such a replay reads the whole stream (schemathesis found
    it crashing the replay and then the router's shutdown)."""
    made = await create_webhook(router, event="a.b", uri="https://example.com/h")
    await publish_event(publisher, settings, "evt_any", "a.b", timedelta(minutes=1))
    response = await router.post(
        f"/webhooks/{made['id']}/replay", json={"since": "0377-08-08T20:14:08Z"}, headers=AUTH
    )
    progress = await finished(router, response.headers["Location"])
    assert (progress["status"], progress["sent"]) == ("done", 1)
    await take_all(amqp_url, settings.topology.deliver_queue, expect=1, timeout_s=10)
