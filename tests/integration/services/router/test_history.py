"""The delivery history API on a running router, fed by records written to the real delivery log
as senders write them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from yarl import URL

from schemas.deliveries import DeliveryAttempted, RecordId
from services.router.app import create_app
from services.router.history_api import HISTORY
from services.router.settings import RouterSettings
from services.runtime.broker import Publisher
from services.runtime.record_batches import RecordBatches
from tests.conftest import AppServer
from tests.integration.services.router.conftest import AUTH, create_webhook

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


@pytest.fixture
async def delivery_log(settings: RouterSettings, amqp_url: str) -> AsyncIterator[RecordBatches]:
    """Writes attempt records to the install's delivery log, batched as a sender writes them."""
    connection = await aio_pika.connect_robust(amqp_url)
    publisher = await Publisher.open(connection, timeout_s=5)
    yield RecordBatches(publisher, settings.topology.delivery_log_stream)
    await publisher.close()
    await connection.close()


def attempt(
    webhook_id: str, delivery: str, number: int, seconds: float, outcome: str, **more: Any
) -> DeliveryAttempted:
    return DeliveryAttempted.model_validate(
        {
            "delivery_id": delivery,
            "event_id": f"evt_{delivery}",
            "event_type": more.pop("event_type", "problem.update"),
            "webhook_id": webhook_id,
            "attempt": number,
            "at": T0 + timedelta(seconds=seconds),
            "outcome": outcome,
            **more,
        }
    )


async def log_records(batches: RecordBatches, records: Sequence[DeliveryAttempted]) -> None:
    for record in records:
        await batches.add(str(RecordId.of(record)), record.model_dump_json().encode())


async def caught_up(client: TestClient[Any, Any]) -> None:
    assert client.app is not None
    async with asyncio.timeout(10):
        await client.app[HISTORY].caught_up()


async def test_a_webhooks_deliveries_with_their_attempts_filters_and_pages(
    router: TestClient[Any, Any], delivery_log: RecordBatches
) -> None:
    made = await create_webhook(router, event="problem.update", uri="https://example.com/h")
    other = await create_webhook(router, event="problem.update", uri="https://example.com/o")
    wh = made["id"]
    await log_records(
        delivery_log,
        [
            attempt(
                wh,
                "msg_a",
                1,
                0,
                "retry_scheduled",
                status_code=500,
                error="500 Internal Server Error",
                response_body='{"error": "db down"}',
                duration_s=0.0125,
                next_attempt_in_s=5,
            ),
            attempt(wh, "msg_a", 2, 5, "delivered", status_code=200, duration_s=0.002),
            attempt(
                wh,
                "msg_b",
                1,
                10,
                "dead_lettered",
                status_code=410,
                error="410 Gone",
                event_type="problem.create",
            ),
            attempt(
                wh,
                "msg_c",
                1,
                20,
                "retry_scheduled",
                error="timeout after 15s",
                next_attempt_in_s=60,
            ),
            attempt(other["id"], "msg_d", 1, 30, "delivered", status_code=200),
        ],
    )
    await caught_up(router)

    response = await router.get(f"/webhooks/{wh}/deliveries", headers=AUTH)
    assert response.status == 200
    listed = await response.json()
    assert [d["delivery_id"] for d in listed] == ["msg_c", "msg_b", "msg_a"]
    assert "Link" not in response.headers
    first = listed[2]
    assert first["outcome"] == "delivered"
    assert first["attempt_count"] == 2
    assert first["event_id"] == "evt_msg_a"
    assert first["next_attempt_at"] is None
    assert first["attempts"][0] == {
        "attempt": 1,
        "at": (T0).isoformat().replace("+00:00", "Z"),
        "outcome": "retry_scheduled",
        "status_code": 500,
        "duration_ms": 12.5,
        "error": "500 Internal Server Error",
        "response_body": '{"error": "db down"}',
        "replay": False,
    }
    pending = listed[0]
    assert pending["next_attempt_at"] == (T0 + timedelta(seconds=80)).isoformat().replace(
        "+00:00", "Z"
    )

    one = await router.get("/deliveries/msg_a", headers=AUTH)
    assert one.status == 200
    assert await one.json() == first

    async def ids(query: str) -> list[str]:
        answer = await router.get(f"/webhooks/{wh}/deliveries?{query}", headers=AUTH)
        assert answer.status == 200, await answer.text()
        return [d["delivery_id"] for d in await answer.json()]

    assert await ids("outcome=dead_lettered") == ["msg_b"]
    assert await ids("event_type=problem.create") == ["msg_b"]
    since = (T0 + timedelta(seconds=10)).isoformat()
    assert await ids(f"since={since.replace('+', '%2B')}") == ["msg_c", "msg_b"]
    assert await ids("until=" + (T0 + timedelta(seconds=1)).isoformat().replace("+", "%2B")) == [
        "msg_a"
    ]

    # Pages of two, following the Link header.
    seen: list[str] = []
    url = f"/webhooks/{wh}/deliveries?limit=2"
    while url:
        page = await router.get(url, headers=AUTH)
        seen += [d["delivery_id"] for d in await page.json()]
        url = URL(page.links["next"]["url"]).path_qs if "next" in page.links else ""
    assert seen == ["msg_c", "msg_b", "msg_a"]


async def test_wrong_queries_are_refused_naming_the_parameter(
    router: TestClient[Any, Any],
) -> None:
    made = await create_webhook(router, event="a.b", uri="https://example.com/h")
    for query, field in [
        ("outcome=sent", "outcome"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=bm9wZQ", "cursor"),
        ("since=yesterday", "since"),
        ("until=2026-11-27T06:00:00", "until"),
        ("event_type=", "event_type"),
    ]:
        response = await router.get(f"/webhooks/{made['id']}/deliveries?{query}", headers=AUTH)
        assert response.status == 400, query
        assert [e["field"] for e in (await response.json())["errors"]] == [field], query


async def test_unknown_ids_are_404_and_a_token_is_needed(router: TestClient[Any, Any]) -> None:
    assert (await router.get("/webhooks/wh_nope/deliveries", headers=AUTH)).status == 404
    missing = await router.get("/deliveries/msg_nope", headers=AUTH)
    assert missing.status == 404
    assert (await missing.json())["id"] == "msg_nope"
    assert (await router.get("/deliveries/msg_nope")).status == 401
    assert (await router.get("/webhooks/wh_nope/deliveries")).status == 401


async def test_a_token_scoped_to_an_account_sees_only_its_accounts_history(
    settings: RouterSettings, serve_app: AppServer, delivery_log: RecordBatches
) -> None:
    scoped = settings.model_copy(update={"account_tokens": SecretStr("acme:acme-token")})
    router = await serve_app(create_app(scoped))
    globex = await create_webhook(
        router, event="a.b", uri="https://example.com/g", account="globex"
    )
    acme = await create_webhook(router, event="a.b", uri="https://example.com/a", account="acme")
    await log_records(
        delivery_log,
        [
            attempt(globex["id"], "msg_g", 1, 0, "delivered", status_code=200),
            attempt(acme["id"], "msg_a", 1, 0, "delivered", status_code=200),
        ],
    )
    await caught_up(router)
    acme_auth = {"Authorization": "Bearer acme-token"}
    assert (
        await router.get(f"/webhooks/{globex['id']}/deliveries", headers=acme_auth)
    ).status == 404
    assert (await router.get("/deliveries/msg_g", headers=acme_auth)).status == 404
    assert (await router.get("/deliveries/msg_a", headers=acme_auth)).status == 200
    mine = await router.get(f"/webhooks/{acme['id']}/deliveries", headers=acme_auth)
    assert [d["delivery_id"] for d in await mine.json()] == ["msg_a"]
    assert (await router.get("/deliveries/msg_g", headers=AUTH)).status == 200


async def test_a_router_started_again_reads_on_from_where_its_history_stopped(
    settings: RouterSettings, serve_app: AppServer, delivery_log: RecordBatches
) -> None:
    """The second start resumes after the stored offset instead of reading the whole log, and
    has every delivery from both lives."""
    first = await serve_app(create_app(settings))
    made = await create_webhook(first, event="a.b", uri="https://example.com/h")
    await log_records(delivery_log, [attempt(made["id"], "msg_1", 1, 0, "delivered")])
    await caught_up(first)
    assert first.app is not None
    stored = first.app[HISTORY].stored_offset
    await first.close()

    await log_records(delivery_log, [attempt(made["id"], "msg_2", 1, 1, "delivered")])
    again = await serve_app(create_app(settings))
    assert again.app is not None
    assert again.app[HISTORY].resumed_after == stored
    await caught_up(again)
    listed = await (await again.get(f"/webhooks/{made['id']}/deliveries", headers=AUTH)).json()
    assert [d["delivery_id"] for d in listed] == ["msg_2", "msg_1"]
