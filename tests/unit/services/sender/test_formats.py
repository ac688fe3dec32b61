"""Each payload format's body, content type and headers for one delivery."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from schemas.deliveries import DeliveredPayload, DeliveryTask
from schemas.events import Actor, Event
from schemas.webhooks import WebhookState
from services.sender.formats import CLOUDEVENTS_JSON, XURRENT_DELIVERY_HEADER, shape
from tests.support.catalog import PROJECTRAK_UPDATED

MakeEvent = Callable[..., Event]
MakeWebhook = Callable[..., WebhookState]

# Projectrak's example body, from its page: the producer's data is what subscribers get.
PROJECTRAK_DATA = PROJECTRAK_UPDATED


def task_for(event: Event, webhook: WebhookState) -> DeliveryTask:
    return DeliveryTask(
        delivery_id="msg_abc", webhook_id=webhook.id, webhook_revision=3, event=event
    )


def test_standard_is_the_standard_webhooks_envelope(
    make_event: MakeEvent, make_webhook: MakeWebhook
) -> None:
    event = make_event(actor=Actor(id=6, name="Howard Tanner"))
    webhook = make_webhook()
    shaped = shape(task_for(event, webhook), webhook)
    assert shaped.content_type == "application/json"
    assert shaped.headers == {}
    assert shaped.body() == DeliveredPayload.of(event, webhook.id).body()
    assert json.loads(shaped.body())["actor"] == {"id": 6, "name": "Howard Tanner"}


def test_raw_sends_the_producers_data_as_the_whole_body(
    make_event: MakeEvent, make_webhook: MakeWebhook
) -> None:
    """Projectrak's `{"data": {...}}` passes through as is, key order and values kept."""
    event = make_event(type="projectrak.project.updated", data=PROJECTRAK_DATA)
    webhook = make_webhook(format="raw")
    body = shape(task_for(event, webhook), webhook).body()
    assert json.loads(body) == PROJECTRAK_DATA
    assert list(json.loads(body)["data"]) == list(PROJECTRAK_DATA["data"])


def test_keyclic_wraps_the_resource_in_event_and_payload(
    make_event: MakeEvent, make_webhook: MakeWebhook
) -> None:
    report = {"type": "Report", "id": "b0e7e28f-5b91-4c73-875e-8f34aa03553a", "state": "NEW"}
    event = make_event(type="reportCreated", data=report)
    webhook = make_webhook(format="keyclic")
    body = json.loads(shape(task_for(event, webhook), webhook).body())
    assert body == {"event": "reportCreated", "payload": report}


def test_xurrent_has_every_key_its_delivery_header_and_the_actor(
    make_event: MakeEvent, make_webhook: MakeWebhook
) -> None:
    event = make_event(
        type="request.update",
        object_id=812,
        account="wdc",
        actor=Actor(id=6, name="Howard Tanner"),
        data={"subject": "Printer on fire", "status": "in_progress"},
    )
    webhook = make_webhook(format="xurrent", name="Request Update")
    shaped = shape(task_for(event, webhook), webhook)
    assert json.loads(shaped.body()) == {
        "webhook_id": webhook.id,
        "account": "wdc",
        "name": "Request Update",
        "event": "request.update",
        "object_id": 812,
        "person_id": 6,
        "person_name": "Howard Tanner",
        "payload": {"subject": "Printer on fire", "status": "in_progress"},
    }
    assert shaped.headers == {XURRENT_DELIVERY_HEADER: "msg_abc"}


def test_xurrent_keeps_unknown_keys_as_null_and_takes_the_webhooks_account(
    make_event: MakeEvent, make_webhook: MakeWebhook
) -> None:
    webhook = make_webhook(format="xurrent", account="wdc")
    body = json.loads(shape(task_for(make_event(), webhook), webhook).body())
    assert body["account"] == "wdc"
    assert body["object_id"] is None
    assert body["person_id"] is None
    assert body["person_name"] is None


def test_cloudevents_is_a_structured_event_the_sdk_reads(
    make_event: MakeEvent, make_webhook: MakeWebhook
) -> None:
    """The CloudEvents SDK, an independent reader, parses the body as a 1.0 event."""
    event = make_event(type="request.create", source="xurrent", object_id=812, data={"a": [1]})
    webhook = make_webhook(format="cloudevents")
    shaped = shape(task_for(event, webhook), webhook)
    assert shaped.content_type == CLOUDEVENTS_JSON
    parsed = from_http(
        HTTPMessage(headers={"content-type": shaped.content_type}, body=shaped.body()),
        JSONFormat(),
    )
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == event.id
    assert parsed.get_type() == "request.create"
    assert parsed.get_source() == "xurrent"
    assert parsed.get_subject() == "812"
    assert parsed.get_time() == event.time
    assert parsed.get_data() == {"a": [1]}


def test_cloudevents_source_defaults_when_the_event_has_none(
    make_event: MakeEvent, make_webhook: MakeWebhook
) -> None:
    webhook = make_webhook(format="cloudevents")
    body = json.loads(shape(task_for(make_event(), webhook), webhook).body())
    assert body["source"] == "hookline"
    assert "subject" not in body


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("KXREC1N91YGN3JB8PVT4DDFVF4Y64YT", "KXREC1N91YGN3JB8PVT4DDFVF4Y64YT"),
        (True, "true"),
        (False, "false"),
        (12, "12"),
        (1.5, "1.5"),
        (None, "null"),
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),
    ],
)
def test_query_fields_are_strings_as_they_are_and_json_otherwise(
    make_event: MakeEvent, make_webhook: MakeWebhook, value: object, text: str
) -> None:
    webhook = make_webhook(format="raw")
    shaped = shape(task_for(make_event(data={"field": value}), webhook), webhook)
    assert shaped.query() == [("field", text)]
