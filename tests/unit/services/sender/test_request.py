"""The HTTP request for one attempt: the body in its format, by POST or GET, signed."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError
from yarl import URL

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


KETRYX_APPROVAL = {
    "userId": "KXUSR1N91YGN3JB8PVT4DDFVF4Y64YT",
    "itemId": "KXITM1N91YGN3JB8PVT4DDFVF4Y64YT",
    "recordId": "KXREC1N91YGN3JB8PVT4DDFVF4Y64YT",
    "isControlled": True,
    "newRecordId": None,
}


def test_a_get_webhook_sends_the_fields_as_query_parameters_and_signs_the_query(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    """Ketryx's GET: no body, the fields after the uri's own query, and a signature a subscriber
    checks with standardwebhooks over the query string it received."""
    event = make_event(type="recordApproval", data=KETRYX_APPROVAL)
    webhook = make_webhook(format="raw", method="GET", uri="https://example.com/k?team=qa")
    now_s = int(time.time())
    request = prepare_request(task_for(event, webhook), webhook, now_s)
    assert request.method == "GET"
    assert request.body == b""
    assert "content-type" not in request.headers
    url = URL(request.url)
    assert url.path == "/k"
    assert list(url.query.items()) == [
        ("team", "qa"),
        ("userId", "KXUSR1N91YGN3JB8PVT4DDFVF4Y64YT"),
        ("itemId", "KXITM1N91YGN3JB8PVT4DDFVF4Y64YT"),
        ("recordId", "KXREC1N91YGN3JB8PVT4DDFVF4Y64YT"),
        ("isControlled", "true"),
        ("newRecordId", "null"),
    ]
    # The libraries' verify() parses the content as JSON, so a GET subscriber signs and compares.
    subscriber = Webhook(webhook.secret)
    sent_at = datetime.fromtimestamp(now_s, UTC)
    expected = subscriber.sign("msg_abc", sent_at, url.raw_query_string)
    assert request.headers["webhook-signature"] == expected
    assert subscriber.sign("msg_abc", sent_at, "team=qa&isControlled=false") != expected


def test_an_unsigned_webhook_keeps_the_id_and_timestamp_headers_only(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    webhook = make_webhook(signed=False)
    now_s = int(time.time())
    request = prepare_request(task_for(make_event(), webhook), webhook, now_s)
    assert request.headers["webhook-id"] == "msg_abc"
    assert request.headers["webhook-timestamp"] == str(now_s)
    assert "webhook-signature" not in request.headers


@pytest.mark.parametrize(
    ("payload_format", "content_type"),
    [
        ("standard", "application/json"),
        ("xurrent", "application/json"),
        ("keyclic", "application/json"),
        ("raw", "application/json"),
        ("cloudevents", "application/cloudevents+json; charset=utf-8"),
    ],
)
def test_every_format_is_signed_over_the_body_it_sends(
    make_event: Callable[..., Event],
    make_webhook: Callable[..., WebhookState],
    payload_format: str,
    content_type: str,
) -> None:
    webhook = make_webhook(format=payload_format, https_only=True)
    request = prepare_request(task_for(make_event(), webhook), webhook, int(time.time()))
    assert request.headers["content-type"] == content_type
    assert request.headers["user-agent"].startswith("Hookline/")
    assert request.https_only
    signed = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    Webhook(webhook.secret).verify(request.body, signed)
