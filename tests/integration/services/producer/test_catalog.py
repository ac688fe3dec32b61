"""The producer with the example event catalog, on the real broker: a cataloged event whose data
fails its schema is a 400 naming the place, nothing of its request is published, and what is
published carries the mark that spares senders a second check."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from schemas.events import EventIn
from schemas.topology import CATALOG_HEADER
from services.producer.app import create_app
from services.producer.sdk import EventRefused, Producer
from services.producer.settings import ProducerSettings
from tests.conftest import AppServer, Installs
from tests.support.broker import message_count, take_all
from tests.support.catalog import EXAMPLE_CATALOG, PROJECTRAK_UPDATED, RECORD_APPROVAL

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer ingest-token"}


@pytest.fixture
def settings(amqp_url: str, prefix: str, installs: Installs) -> ProducerSettings:
    settings = ProducerSettings(
        amqp_url=amqp_url,
        prefix=prefix,
        ingest_token="ingest-token",
        catalog_path=str(EXAMPLE_CATALOG),
    )
    installs.add(settings.topology)
    return settings


@pytest.fixture
async def producer(settings: ProducerSettings, serve_app: AppServer) -> TestClient[Any, Any]:
    return await serve_app(create_app(settings))


async def refusal(response: Any) -> list[dict[str, str]]:
    assert response.status == 400, await response.text()
    answer = await response.json()
    assert answer["error"] == "invalid event"
    errors: list[dict[str, str]] = answer["errors"]
    return errors


async def test_data_failing_its_schema_is_a_400_naming_the_place(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    data = copy.deepcopy(PROJECTRAK_UPDATED)
    data["data"]["fields"][0]["value"]["current"] = 23
    event = {"type": "projectrak.project.updated", "data": data}
    response = await producer.post("/events", json=event, headers=AUTH)
    assert await refusal(response) == [
        {
            "field": "data.data.fields[0].value.current",
            "message": "23 is not of type 'string', 'null'",
        }
    ]
    assert await message_count(amqp_url, settings.topology.route_queue) == 0


async def test_in_a_batch_each_refusal_has_its_position_and_nothing_is_published(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """The envelope's errors and the catalog's come in one answer, each under its position."""
    events = [
        {"type": "recordApproval", "data": RECORD_APPROVAL},
        {"type": "recordApproval", "data": {**RECORD_APPROVAL, "isControlled": "yes"}},
        {"type": "bad type", "data": {}},
        {"type": "releaseApproval", "data": {"userId": RECORD_APPROVAL["userId"]}},
    ]
    response = await producer.post("/events", json=events, headers=AUTH)
    errors = await refusal(response)
    assert errors[0] == {
        "field": "[1].data.isControlled",
        "message": "'yes' is not of type 'boolean'",
    }
    assert errors[1]["field"] == "[2].type"
    assert errors[2:] == [
        {"field": "[3].data", "message": "'versionId' is a required property"},
        {"field": "[3].data", "message": "'isReleased' is a required property"},
    ]
    assert await message_count(amqp_url, settings.topology.route_queue) == 0


async def test_an_accepted_event_is_marked_as_checked_against_this_catalog(
    producer: TestClient[Any, Any], settings: ProducerSettings, amqp_url: str
) -> None:
    """What the producer checked carries the catalog's digest: senders with the same catalog do
    not check it a second time. An uncataloged type is accepted by default."""
    events = [
        {"type": "recordApproval", "data": RECORD_APPROVAL, "id": "evt_kx"},
        {"type": "order.paid", "data": {"anything": 1}, "id": "evt_other"},
    ]
    response = await producer.post("/events", json=events, headers=AUTH)
    assert response.status == 202, await response.text()
    published = await take_all(amqp_url, settings.topology.route_queue, expect=2)
    digest = settings.event_catalog().digest
    assert {m.message_id: (m.headers or {}).get(CATALOG_HEADER) for m in published} == {
        "evt_kx": digest,
        "evt_other": digest,
    }


async def test_an_uncataloged_type_is_refused_when_set_so(
    settings: ProducerSettings, serve_app: AppServer, amqp_url: str
) -> None:
    refusing = settings.model_copy(update={"uncataloged_events": "refuse"})
    producer = await serve_app(create_app(refusing))
    response = await producer.post("/events", json={"type": "order.paid", "data": {}}, headers=AUTH)
    assert await refusal(response) == [
        {"field": "type", "message": "'order.paid' is not in the event catalog"}
    ]
    response = await producer.post(
        "/events", json={"type": "recordApproval", "data": RECORD_APPROVAL}, headers=AUTH
    )
    assert response.status == 202, await response.text()
    [published] = await take_all(amqp_url, settings.topology.route_queue, expect=1)
    # Another policy, other rules: the mark says which.
    assert (published.headers or {})[CATALOG_HEADER] == refusing.event_catalog().digest
    assert refusing.event_catalog().digest != settings.event_catalog().digest


async def test_the_sdk_refuses_what_its_catalog_refuses_before_publishing(
    settings: ProducerSettings, amqp_url: str
) -> None:
    catalog = settings.event_catalog()
    async with Producer(amqp_url, prefix=settings.prefix, catalog=catalog) as producer:
        with pytest.raises(EventRefused) as raised:
            await producer.publish("recordApproval", {**RECORD_APPROVAL, "isControlled": 1})
        assert raised.value.problems == [("data.isControlled", "1 is not of type 'boolean'")]
        good = EventIn(type="recordApproval", data=RECORD_APPROVAL)
        bad = EventIn(type="milestoneApproval", data={})
        with pytest.raises(EventRefused) as raised:
            await producer.publish_events([good, bad])
        assert [where for where, _ in raised.value.problems] == ["[1].data"] * 3
        assert await message_count(amqp_url, settings.topology.route_queue) == 0
        event_id = await producer.publish("recordApproval", RECORD_APPROVAL)
    [published] = await take_all(amqp_url, settings.topology.route_queue, expect=1)
    assert published.message_id == event_id
    assert (published.headers or {})[CATALOG_HEADER] == catalog.digest
