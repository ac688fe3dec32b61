"""The quarantine on a running router: messages its own mail consumer could not read, listed
without moving them, redriven to where they came from, discarded on purpose."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from schemas.topology import REASON_HEADER, SOURCE_HEADER
from services.router.app import create_app
from services.router.settings import RouterSettings
from services.runtime.broker import Publisher
from tests.conftest import AppServer
from tests.integration.services.router.conftest import AUTH
from tests.support.broker import message_count, take_all
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def quarantined(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    response = await client.get("/quarantine", headers=AUTH)
    assert response.status == 200, await response.text()
    listed: list[dict[str, Any]] = await response.json()
    assert response.headers["X-Total-Count"] == str(len(listed))
    return listed


async def test_list_redrive_and_discard(
    router: TestClient[Any, Any], publisher: Publisher, settings: RouterSettings, amqp_url: str
) -> None:
    topology = settings.topology
    # Two notices the router's mail consumer cannot read: it quarantines them itself.
    for body in (b"not json", b'{"kind": "nope"}'):
        await publisher.publish("", topology.mail_queue, body, message_id="notice-1")

    async def both_quarantined() -> bool:
        return await message_count(amqp_url, topology.quarantine_queue) == 2

    await eventually(both_quarantined)
    # One that came from the deliver queue (no sender runs here), one from nowhere known.
    await publisher.publish(
        "",
        topology.quarantine_queue,
        b'{"delivery": 1}',
        message_id="msg_1",
        headers={
            REASON_HEADER: "crashed its handler 3 times",
            SOURCE_HEADER: topology.deliver_queue,
        },
    )
    await publisher.publish("", topology.quarantine_queue, b"\x00\xff orphan")

    listed = await quarantined(router)
    assert [q["source_queue"] for q in listed] == [
        topology.mail_queue,
        topology.mail_queue,
        topology.deliver_queue,
        None,
    ]
    assert listed[0]["body"] == "not json"
    assert listed[0]["reason"]
    assert listed[3]["body"] == " \ufffd orphan"  # shown as text, control characters blanked
    assert len({q["id"] for q in listed}) == 4
    # Listing moved nothing: the same messages, in the same order, with the same ids.
    again = await quarantined(router)
    assert [q["id"] for q in again] == [q["id"] for q in listed]
    assert again[0]["times_looked_at"] == listed[0]["times_looked_at"] + 1

    # Discard one on purpose; the rest stay, in their order.
    response = await router.post(
        "/quarantine/discard", json={"ids": [listed[1]["id"]]}, headers=AUTH
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["discarded"] == 1
    assert [q["id"] for q in await quarantined(router)] == [
        listed[0]["id"],
        listed[2]["id"],
        listed[3]["id"],
    ]

    # Redrive the one from the deliver queue: back there as it was, without quarantine headers.
    response = await router.post(
        "/quarantine/redrive", json={"ids": [listed[2]["id"]]}, headers=AUTH
    )
    done = await response.json()
    assert (done["redriven"], done["kept"]) == (1, 2)
    [back] = await take_all(amqp_url, topology.deliver_queue, expect=1, timeout_s=10)
    assert (back.body, back.message_id) == (b'{"delivery": 1}', "msg_1")
    assert REASON_HEADER not in (back.headers or {})
    assert SOURCE_HEADER not in (back.headers or {})

    # Redrive all: the orphan has nowhere to go and stays.
    response = await router.post("/quarantine/redrive", headers=AUTH)
    assert (await response.json())["kept"] >= 1
    progress = await router.get(f"/quarantine/passes/{done['id']}", headers=AUTH)
    assert (await progress.json())["redriven"] == 1

    async def only_the_orphan_left() -> bool:
        # The notice redriven to the mail queue is quarantined again (still unreadable).
        ids = [q["id"] for q in await quarantined(router)]
        return listed[3]["id"] in ids and listed[2]["id"] not in ids

    await eventually(only_the_orphan_left)


async def test_wrong_requests_are_refused(router: TestClient[Any, Any]) -> None:
    assert (await router.get("/quarantine?limit=0", headers=AUTH)).status == 400
    assert (await router.get("/quarantine?limit=1001", headers=AUTH)).status == 400
    no_ids = await router.post("/quarantine/discard", headers=AUTH)
    assert no_ids.status == 400
    assert [e["field"] for e in (await no_ids.json())["errors"]] == ["ids"]
    extra = await router.post("/quarantine/redrive", json={"all": True}, headers=AUTH)
    assert extra.status == 400
    assert (await router.get("/quarantine/passes/qp_nope", headers=AUTH)).status == 404
    assert (await router.get("/quarantine")).status == 401


async def test_a_token_of_one_account_may_not_touch_the_quarantine(
    settings: RouterSettings, serve_app: AppServer
) -> None:
    scoped = settings.model_copy(update={"account_tokens": SecretStr("acme:acme-token")})
    router = await serve_app(create_app(scoped))
    acme = {"Authorization": "Bearer acme-token"}
    assert (await router.get("/quarantine", headers=acme)).status == 403
    assert (await router.post("/quarantine/redrive", headers=acme)).status == 403
