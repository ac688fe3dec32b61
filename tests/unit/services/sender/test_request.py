"""The HTTP request for one attempt: a signed Standard Webhooks POST."""

from __future__ import annotations

import time
from collections.abc import Callable

from standardwebhooks.webhooks import Webhook

from schemas.deliveries import DeliveredPayload, DeliveryTask
from schemas.events import Event
from schemas.webhooks import WebhookState
from services.sender.request import prepare_request


def task_for(event: Event, webhook: WebhookState) -> DeliveryTask:
    return DeliveryTask(
        delivery_id="msg_abc", webhook_id=webhook.id, webhook_revision=3, event=event
    )


def test_prepare_request_posts_the_payload_to_the_uri(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    """The request is a JSON POST of the delivered payload to the webhook's uri."""
    event = make_event(object_id=7, data={"b": None, "a": 1})
    webhook = make_webhook(uri="https://example.com/hook?x=1")
    request = prepare_request(task_for(event, webhook), webhook, int(time.time()))
    assert request.method == "POST"
    assert request.url == "https://example.com/hook?x=1"
    assert request.headers["content-type"] == "application/json"
    assert request.body == DeliveredPayload.of(event, webhook.id).body()


def test_prepare_request_signs_with_the_webhook_secret(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    """The webhook-* headers carry the delivery id and time and verify with the secret."""
    webhook = make_webhook()
    now_s = int(time.time())
    request = prepare_request(task_for(make_event(), webhook), webhook, now_s)
    assert request.headers["webhook-id"] == "msg_abc"
    assert request.headers["webhook-timestamp"] == str(now_s)
    signed = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    assert len(signed) == 3
    payload = Webhook(webhook.secret).verify(request.body, signed)
    assert payload["webhook_id"] == webhook.id
    assert payload["id"] == "evt_1"
