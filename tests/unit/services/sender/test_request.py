"""The HTTP request for one attempt: a signed Standard Webhooks POST."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from schemas.deliveries import DeliveredPayload, DeliveryTask
from schemas.events import Event
from schemas.webhooks import WebhookState, new_secret
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


def test_after_a_rotation_both_secrets_sign_until_the_grace_ends(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    """Two `v1,` signatures, space-separated: a subscriber with the old secret and one with the
    new both verify, with standardwebhooks and with svix; once the grace is over, only the new
    one signs."""
    old, new = new_secret(), new_secret()
    now_s = int(time.time())
    until = datetime.fromtimestamp(now_s + 60, UTC)
    webhook = make_webhook(secret=new, previous_secret=old, previous_secret_until=until)
    request = prepare_request(task_for(make_event(), webhook), webhook, now_s)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    signed = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    for secret in (old, new):
        assert Webhook(secret).verify(request.body, signed)["id"] == "evt_1"
        SvixWebhook(secret).verify(request.body, signed)  # raises unless one signature holds

    later = prepare_request(task_for(make_event(), webhook), webhook, now_s + 60)
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    signed_later = {k: v for k, v in later.headers.items() if k.startswith("webhook-")}
    assert Webhook(new).verify(later.body, signed_later)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(later.body, signed_later)
    with pytest.raises(SvixVerificationError):
        SvixWebhook(old).verify(later.body, signed_later)
