"""The event catalog on a running router: `GET /event-types` for any valid token, webhooks of an
exact type the catalog lacks refused when uncataloged types are, and replays that send no event
the catalog refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from schemas.deliveries import DELIVERY_TASK
from services.router.app import create_app
from services.router.settings import RouterSettings
from services.runtime.broker import Publisher
from tests.conftest import AppServer
from tests.integration.services.router.conftest import AUTH, create_webhook
from tests.support.broker import take_all
from tests.support.catalog import EXAMPLE_CATALOG, RECORD_APPROVAL
from tests.support.events_log import append_events
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ACME = {"Authorization": "Bearer acme-token"}


@pytest.fixture
def cataloged(settings: RouterSettings) -> RouterSettings:
    return settings.model_copy(
        update={
            "catalog_path": str(EXAMPLE_CATALOG),
            "account_tokens": SecretStr("acme:acme-token"),
        }
    )


@pytest.fixture
async def router(cataloged: RouterSettings, serve_app: AppServer) -> TestClient[Any, Any]:
    return await serve_app(create_app(cataloged))


async def test_the_catalog_is_listed_for_any_valid_token(router: TestClient[Any, Any]) -> None:
    listed = await router.get("/event-types", headers=AUTH)
    assert listed.status == 200
    types = await listed.json()
    assert len(types) == 89
    assert [t["type"] for t in types] == sorted(t["type"] for t in types)
    assert {t["product"] for t in types} == {"ketryx", "keyclic", "projectrak", "xurrent"}
    record = next(t for t in types if t["type"] == "recordApproval")
    assert set(record) == {"type", "product", "description", "schema", "examples"}
    assert record["schema"]["required"] == ["userId", "itemId", "recordId", "isControlled"]

    # A token of one account reads it too; a wrong token or none does not.
    assert (await router.get("/event-types", headers=ACME)).status == 200
    assert (await router.get("/event-types")).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await router.get("/event-types/recordApproval", headers=wrong)).status == 401

    ketryx = await (await router.get("/event-types?product=ketryx", headers=ACME)).json()
    assert [t["type"] for t in ketryx] == [
        "documentApproval",
        "milestoneApproval",
        "recordApproval",
        "releaseApproval",
        "testPlanApproval",
        "vulnerabilityApproval",
    ]
    assert await (await router.get("/event-types?product=nobody", headers=AUTH)).json() == []


async def test_one_type_is_shown_or_not_found(router: TestClient[Any, Any]) -> None:
    on_file = json.loads((EXAMPLE_CATALOG / "projectrak.json").read_text())
    response = await router.get("/event-types/projectrak.project.updated", headers=ACME)
    assert response.status == 200
    shown = await response.json()
    expected = on_file["events"]["projectrak.project.updated"]
    assert shown == {"type": "projectrak.project.updated", "product": "projectrak", **expected}

    missing = await router.get("/event-types/order.paid", headers=AUTH)
    assert missing.status == 404
    assert await missing.json() == {
        "error": "no such event type in the catalog",
        "type": "order.paid",
    }


async def test_without_a_catalog_the_list_is_empty(
    settings: RouterSettings, serve_app: AppServer
) -> None:
    router = await serve_app(create_app(settings))
    assert await (await router.get("/event-types", headers=AUTH)).json() == []
    assert (await router.get("/event-types/recordApproval", headers=AUTH)).status == 404


async def test_an_exact_type_the_catalog_lacks_is_refused_only_when_set_so(
    cataloged: RouterSettings, router: TestClient[Any, Any], serve_app: AppServer
) -> None:
    uri = "https://example.com/hook"
    # Accepting uncataloged types (the default), any exact type may be subscribed to.
    await create_webhook(router, event="order.paid", uri=uri)

    refusing = await serve_app(
        create_app(cataloged.model_copy(update={"uncataloged_events": "refuse"}))
    )
    response = await refusing.post(
        "/webhooks", json={"event": "order.paid", "uri": uri}, headers=AUTH
    )
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid webhook",
        "errors": [
            {
                "field": "event",
                "message": "'order.paid' is not in the event catalog (see GET /event-types)",
            }
        ],
    }
    made = await create_webhook(refusing, event="recordApproval", uri=uri)
    await create_webhook(refusing, event="order.*", uri=uri)  # a pattern may match types to come
    await create_webhook(refusing, event="#", uri=uri)

    path = f"/webhooks/{made['id']}"
    changed = await refusing.patch(path, json={"event": "order.shipped"}, headers=AUTH)
    assert changed.status == 400
    assert [e["field"] for e in (await changed.json())["errors"]] == ["event"]
    renamed = await refusing.patch(path, json={"name": "approvals"}, headers=AUTH)
    assert renamed.status == 200, await renamed.text()
    moved = await refusing.patch(path, json={"event": "releaseApproval"}, headers=AUTH)
    assert (await moved.json())["event"] == "releaseApproval"


async def test_a_replay_sends_no_event_the_catalog_refuses(
    router: TestClient[Any, Any],
    publisher: Publisher,
    cataloged: RouterSettings,
    amqp_url: str,
) -> None:
    """Events a sender appended without checking them against this catalog (its own was
    another, or none): a replay skips the ones it refuses, counted as unreadable, and sends the
    rest."""
    made = await create_webhook(router, event="recordApproval", uri="https://example.com/h")
    topology = cataloged.topology
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    await append_events(
        publisher,
        topology,
        {"id": "evt_good", "type": "recordApproval", "time": at, "data": RECORD_APPROVAL},
        {
            "id": "evt_bad",
            "type": "recordApproval",
            "time": at,
            "data": {**RECORD_APPROVAL, "isControlled": "yes"},
        },
    )
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    response = await router.post(
        f"/webhooks/{made['id']}/replay", json={"since": since}, headers=AUTH
    )
    assert response.status == 202, await response.text()
    location = response.headers["Location"]

    async def done() -> bool:
        answer = await (await router.get(location, headers=AUTH)).json()
        return bool(answer["status"] != "running")

    await eventually(done, timeout_s=20)
    progress = await (await router.get(location, headers=AUTH)).json()
    assert (progress["status"], progress["matched"], progress["sent"], progress["unreadable"]) == (
        "done",
        1,
        1,
        1,
    )
    [queued] = await take_all(amqp_url, topology.deliver_queue, expect=1, timeout_s=10)
    assert DELIVERY_TASK.validate_json(queued.body).event.id == "evt_good"
