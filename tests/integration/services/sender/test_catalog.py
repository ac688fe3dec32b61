"""Events published straight to the broker meet the event catalog where they come in, on the route
queue: a cataloged event whose data fails its schema is parked in quarantine with the place and
the schema's message (never dropped, never a crash), others are routed as usual."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from schemas.topology import CATALOG_HEADER, REASON_HEADER, SOURCE_HEADER
from services.runtime.catalog import EventCatalog
from services.runtime.catalog_files import load_catalog
from tests.integration.services.sender.conftest import SenderFactory, Upstream
from tests.support.broker import message_count, take_all
from tests.support.catalog import EXAMPLE_CATALOG, RECORD_APPROVAL
from tests.support.metrics import metric_value
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration


async def metric(sender: TestClient[Any, Any], series: str) -> float:
    return metric_value(await (await sender.get("/metrics")).text(), series)


async def test_a_cataloged_event_with_bad_data_is_parked_with_its_reason(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    sender = await start_sender(catalog_path=str(EXAMPLE_CATALOG))
    await upstream.webhook(f"{receiver.url}/kx", event="recordApproval")
    await upstream.webhook(f"{receiver.url}/any", event="order.*")
    wrong = {**RECORD_APPROVAL, "isControlled": "yes"}
    del wrong["recordId"]
    await upstream.publish_event({"type": "recordApproval", "id": "evt_bad", "data": wrong})
    await upstream.publish_event(
        {"type": "recordApproval", "id": "evt_good", "data": RECORD_APPROVAL}
    )
    await upstream.publish_event({"type": "order.paid", "id": "evt_uncataloged", "data": {}})

    topology = upstream.settings.topology
    [parked] = await take_all(amqp_url, topology.quarantine_queue, expect=1)
    assert json.loads(parked.body)["id"] == "evt_bad"  # as it was published
    assert parked.headers[REASON_HEADER] == (
        "data does not match the catalog's schema of 'recordApproval': "
        "data.isControlled: 'yes' is not of type 'boolean'; "
        "data: 'recordId' is a required property"
    )
    assert parked.headers[SOURCE_HEADER] == topology.route_queue
    arrived = await receiver.wait_for(2)
    assert sorted((r.path, r.json()["id"]) for r in arrived) == [
        ("/any", "evt_uncataloged"),
        ("/kx", "evt_good"),
    ]
    assert await metric(sender, 'hookline_messages_quarantined_total{queue="route"}') == 1
    assert await metric(sender, 'hookline_handler_crashes_total{queue="route"}') == 0
    assert await message_count(amqp_url, topology.route_queue) == 0


async def test_an_event_the_producer_checked_against_the_same_catalog_is_not_checked_again(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """The producer's mark spares the second check only for the very rules the sender holds:
    under another catalog's digest the same event is checked, and parked."""
    await start_sender(catalog_path=str(EXAMPLE_CATALOG))
    await upstream.webhook(f"{receiver.url}/kx", event="recordApproval")
    digest = EventCatalog(load_catalog(EXAMPLE_CATALOG)).digest
    wrong = {**RECORD_APPROVAL, "isControlled": "yes"}
    for event_id, mark in (("evt_marked", digest), ("evt_other_rules", "sha256:0123")):
        body = {"type": "recordApproval", "id": event_id, "data": wrong}
        await upstream.publisher.publish(
            upstream.settings.topology.events_exchange,
            "recordApproval",
            json.dumps(body).encode(),
            headers={CATALOG_HEADER: mark},
        )
    [parked] = await take_all(amqp_url, upstream.settings.topology.quarantine_queue, expect=1)
    assert json.loads(parked.body)["id"] == "evt_other_rules"
    [arrived] = await receiver.wait_for(1)
    assert arrived.json()["id"] == "evt_marked"


async def test_an_uncataloged_event_is_parked_when_they_are_refused(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    await start_sender(catalog_path=str(EXAMPLE_CATALOG), uncataloged_events="refuse")
    await upstream.webhook(f"{receiver.url}/all", event="#")
    await upstream.publish_event({"type": "order.paid", "id": "evt_unknown", "data": {}})
    await upstream.publish_event(
        {"type": "recordApproval", "id": "evt_known", "data": RECORD_APPROVAL}
    )
    [parked] = await take_all(amqp_url, upstream.settings.topology.quarantine_queue, expect=1)
    assert parked.headers[REASON_HEADER] == "type: 'order.paid' is not in the event catalog"
    [arrived] = await receiver.wait_for(1)
    assert arrived.json()["id"] == "evt_known"
