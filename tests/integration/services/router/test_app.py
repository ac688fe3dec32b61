"""The router in-process on the real broker: the webhooks API, endpoint health and failure mail."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from yarl import URL

from schemas.deliveries import DeliveryAttempted, DeliveryTask, Outcome
from schemas.health import (
    CHECKPOINT_ENCODING,
    CHECKPOINT_KIND,
    HealthCheckpoint,
    decode_checkpoint,
    encode_checkpoint,
)
from schemas.mail import FailureNotice
from schemas.markers import MARKER_KIND
from schemas.topology import Topology
from services.router.app import create_app
from services.router.health import read_latest_checkpoint
from services.router.settings import RouterSettings
from services.runtime.broker import Publisher, declare_topology
from tests.conftest import AppServer
from tests.integration.services.router.conftest import (
    AUTH,
    RouterFactory,
    create_webhook,
    router_state,
)
from tests.support.broker import message_count, read_stream, take_all
from tests.support.metrics import metric_value
from tests.support.smtp import SmtpSink
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    """A real SMTP server on loopback that keeps what it is sent."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


async def test_webhook_lifecycle_through_the_api(router: TestClient[Any, Any]) -> None:
    """Create, read, list by state, update, read the secret, delete: the Xurrent API shape."""
    made = await create_webhook(
        router, event="problem.update", uri="https://example.com/hook", description="notes"
    )
    assert made["name"] == "problem.update"  # the name defaults to the event
    assert made["secret"].startswith("whsec_")
    assert made["disabled"] is False
    assert made["last_error"] is None
    webhook_id = made["id"]

    shown = await (await router.get(f"/webhooks/{webhook_id}", headers=AUTH)).json()
    assert "secret" not in shown
    assert shown["description"] == "notes"

    response = await router.patch(
        f"/webhooks/{webhook_id}", json={"disabled": True, "name": "Problem Update"}, headers=AUTH
    )
    assert response.status == 200
    patched = await response.json()
    assert patched["disabled"] is True
    assert patched["name"] == "Problem Update"
    assert patched["updated_at"] > patched["created_at"]

    disabled = await (await router.get("/webhooks/disabled", headers=AUTH)).json()
    enabled = await (await router.get("/webhooks/enabled", headers=AUTH)).json()
    assert [w["id"] for w in disabled] == [webhook_id]
    assert enabled == []

    secret = await (await router.get(f"/webhooks/{webhook_id}/secret", headers=AUTH)).json()
    assert secret == {"secret": made["secret"]}

    assert (await router.delete(f"/webhooks/{webhook_id}", headers=AUTH)).status == 204
    missing = await router.get(f"/webhooks/{webhook_id}", headers=AUTH)
    assert missing.status == 404
    assert (await missing.json())["id"] == webhook_id
    assert await (await router.get("/webhooks", headers=AUTH)).json() == []


async def test_bad_input_gets_the_failing_fields(router: TestClient[Any, Any]) -> None:
    """Invalid webhooks are refused with 400 naming each wrong field; nothing is created."""
    response = await router.post(
        "/webhooks", json={"event": "problem..update", "uri": "ftp://x"}, headers=AUTH
    )
    assert response.status == 400
    fields = {error["field"] for error in (await response.json())["errors"]}
    assert fields == {"event", "uri"}

    as_json = {**AUTH, "Content-Type": "application/json"}
    response = await router.post("/webhooks", data=b"{not json", headers=as_json)
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["error"]

    made = await create_webhook(router, event="a.b", uri="https://example.com/")
    response = await router.patch(f"/webhooks/{made['id']}", json={"uri": None}, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "uri"
    for disabled in ("yes", 1, "true"):  # only true and false are booleans
        response = await router.patch(
            f"/webhooks/{made['id']}", json={"disabled": disabled}, headers=AUTH
        )
        assert response.status == 400
        assert (await response.json())["errors"][0]["field"] == "disabled"
    assert len(await (await router.get("/webhooks", headers=AUTH)).json()) == 1


async def test_delivery_options_are_set_shown_and_checked_together(
    router: TestClient[Any, Any],
) -> None:
    """format, method, https_only and signed: defaults, set at create, changed by a patch; a
    combination that cannot be sent is a 400 naming the field, and changes nothing."""
    plain = await create_webhook(router, event="a.b", uri="https://example.com/")
    assert (plain["format"], plain["method"], plain["https_only"], plain["signed"]) == (
        "standard",
        "POST",
        False,
        True,
    )
    ketryx = await create_webhook(
        router, event="recordApproval", uri="https://k.example.com/", format="raw", method="GET"
    )
    assert (ketryx["format"], ketryx["method"]) == ("raw", "GET")

    refusals = [
        ({"event": "a.b", "uri": "http://example.com/", "https_only": True}, "uri"),
        (
            {"event": "a.b", "uri": "https://e.com/", "format": "cloudevents", "method": "GET"},
            "method",
        ),
        ({"event": "a.b", "uri": "https://e.com/", "format": "json"}, "format"),
        ({"event": "a.b", "uri": "https://e.com/", "method": "PUT"}, "method"),
        ({"event": "a.b", "uri": "https://e.com/", "signed": "no"}, "signed"),
    ]
    for body, field in refusals:
        response = await router.post("/webhooks", json=body, headers=AUTH)
        assert response.status == 400, body
        assert [e["field"] for e in (await response.json())["errors"]] == [field], body

    url = f"/webhooks/{ketryx['id']}"
    response = await router.patch(url, json={"format": "cloudevents"}, headers=AUTH)
    assert response.status == 400  # it is a GET webhook
    assert (await response.json())["errors"][0]["field"] == "method"
    response = await router.patch(url, json={"format": None}, headers=AUTH)
    assert response.status == 400
    http_hook = await create_webhook(router, event="a.b", uri="http://example.com/")
    response = await router.patch(
        f"/webhooks/{http_hook['id']}", json={"https_only": True}, headers=AUTH
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "uri"

    response = await router.patch(
        url, json={"method": "POST", "format": "cloudevents", "signed": False}, headers=AUTH
    )
    assert response.status == 200
    changed = await response.json()
    assert (changed["format"], changed["method"], changed["signed"]) == (
        "cloudevents",
        "POST",
        False,
    )
    shown = await (await router.get(url, headers=AUTH)).json()
    assert shown["format"] == "cloudevents"


# A target that is not public, in each spelling the sender's resolver or C library would read.
NOT_PUBLIC_TARGETS = [
    "http://169.254.169.254/latest/meta-data",
    "http://10.1.2.3/",
    "http://127.0.0.2/",
    "http://[::ffff:127.0.0.2]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://0x7f000002/",
    "http://2130706434/",
    "http://127.2/",
    "http://0177.0.0.2/",
    "http://localhost./",
]


async def test_targets_that_are_not_public_are_refused_at_create_and_update(
    router: TestClient[Any, Any],
) -> None:
    """422 with the reason, for every spelling; nothing is created, nothing changed."""
    for uri in NOT_PUBLIC_TARGETS:
        response = await router.post("/webhooks", json={"event": "a.b", "uri": uri}, headers=AUTH)
        assert response.status == 422, uri
        [error] = (await response.json())["errors"]
        assert error["field"] == "uri"
        assert "is not a public address" in error["message"], error
    made = await create_webhook(router, event="a.b", uri="https://e.com/")
    for uri in NOT_PUBLIC_TARGETS:
        response = await router.patch(f"/webhooks/{made['id']}", json={"uri": uri}, headers=AUTH)
        assert response.status == 422, uri
    listed = await (await router.get("/webhooks", headers=AUTH)).json()
    assert [webhook["uri"] for webhook in listed] == ["https://e.com/"]


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:18005\\@127.0.0.2:18009/",  # pydantic saw no user information here
        "http://%31%32%37.0.0.2/",  # one parser decoded it, the other sent it to DNS
        "http://e.com:0/",
        "http://e.com/a\x00b",
        "http://user@e.com/",
    ],
)
async def test_targets_the_sender_would_read_otherwise_are_invalid(
    router: TestClient[Any, Any], uri: str
) -> None:
    response = await router.post("/webhooks", json={"event": "a.b", "uri": uri}, headers=AUTH)
    assert response.status == 400
    assert [error["field"] for error in (await response.json())["errors"]] == ["uri"]


async def test_allowed_targets_and_https_only_are_the_operators_choice(
    settings: RouterSettings, serve_app: AppServer
) -> None:
    """HOOKLINE_ALLOWED_TARGETS lets a private network in; HOOKLINE_HTTPS_ONLY keeps plain http
    out."""
    router = await serve_app(
        create_app(settings.model_copy(update={"allowed_targets": "127.0.0.0/8"}))
    )
    made = await create_webhook(router, event="a.b", uri="http://127.0.0.2:9000/hook")
    assert made["uri"] == "http://127.0.0.2:9000/hook"
    response = await router.post(
        "/webhooks", json={"event": "a.b", "uri": "http://10.1.2.3/"}, headers=AUTH
    )
    assert response.status == 422

    strict = await serve_app(create_app(settings.model_copy(update={"https_only": True})))
    response = await strict.post(
        "/webhooks", json={"event": "a.b", "uri": "http://e.com/"}, headers=AUTH
    )
    assert response.status == 422
    assert "only https" in (await response.json())["errors"][0]["message"]
    await create_webhook(strict, event="a.b", uri="https://e.com/")


async def test_a_secret_is_rotated_with_the_old_one_signing_through_the_grace(
    router: TestClient[Any, Any],
) -> None:
    """A create may bring its own secret; a rotation answers the new secret at once and says
    until when the old one signs beside it; a bad secret is a 400 and changes nothing."""
    own = "whsec_" + base64.b64encode(b"k" * 32).decode()
    made = await create_webhook(router, event="a.b", uri="https://e.com/", secret=own)
    assert made["secret"] == own
    path = f"/webhooks/{made['id']}/secret"
    assert await (await router.get(path, headers=AUTH)).json() == {"secret": own}

    before = datetime.now(UTC)
    response = await router.post(f"{path}/rotate", headers=AUTH)  # no body: a generated one
    assert response.status == 200
    rotated = await response.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != own
    expires = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert timedelta(hours=23) < expires - before < timedelta(hours=25)
    assert await (await router.get(path, headers=AUTH)).json() == rotated

    chosen = "whsec_" + base64.b64encode(b"c" * 24).decode()
    response = await router.post(f"{path}/rotate", json={"secret": chosen}, headers=AUTH)
    assert (await response.json())["secret"] == chosen

    response = await router.post(f"{path}/rotate", json={"secret": "whsec_short"}, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "secret"
    assert (await (await router.get(path, headers=AUTH)).json())["secret"] == chosen
    missing = await router.post("/webhooks/wh_nope/secret/rotate", headers=AUTH)
    assert missing.status == 404


async def test_a_token_scoped_to_an_account_sees_and_changes_only_its_webhooks(
    settings: RouterSettings, serve_app: AppServer
) -> None:
    """acme's token creates acme's webhooks (whatever the body says, another account is a 422),
    lists and reads only them, and a globex webhook is a 404 to it; the admin token sees all."""
    scoped = settings.model_copy(
        update={"account_tokens": SecretStr("acme:acme-token, globex:globex-token")}
    )
    router = await serve_app(create_app(scoped))
    acme = {"Authorization": "Bearer acme-token"}
    globex = {"Authorization": "Bearer globex-token"}

    response = await router.post(
        "/webhooks", json={"event": "a.b", "uri": "https://e.com/a"}, headers=acme
    )
    assert response.status == 201
    acme_hook = await response.json()
    assert acme_hook["account"] == "acme"
    response = await router.post(
        "/webhooks",
        json={"event": "a.b", "uri": "https://e.com/x", "account": "globex"},
        headers=acme,
    )
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "account"
    globex_hook = await (
        await router.post(
            "/webhooks", json={"event": "a.b", "uri": "https://e.com/g"}, headers=globex
        )
    ).json()
    shared = await create_webhook(router, event="a.b", uri="https://e.com/s")
    assert shared["account"] is None

    listed = await (await router.get("/webhooks", headers=acme)).json()
    assert [webhook["id"] for webhook in listed] == [acme_hook["id"]]
    foreign = f"/webhooks/{globex_hook['id']}"
    for method, path in [
        ("GET", foreign),
        ("PATCH", foreign),
        ("DELETE", foreign),
        ("GET", f"{foreign}/secret"),
        ("POST", f"{foreign}/secret/rotate"),
        ("POST", f"{foreign}/test"),
        ("GET", f"/webhooks/{shared['id']}"),
    ]:
        body = {"name": "mine now"} if method == "PATCH" else None
        response = await router.request(method, path, json=body, headers=acme)
        assert response.status == 404, (method, path)
    everything = await (await router.get("/webhooks", headers=AUTH)).json()
    assert {webhook["id"] for webhook in everything} == {
        acme_hook["id"],
        globex_hook["id"],
        shared["id"],
    }
    assert (await router.get(foreign, headers=AUTH)).status == 200


async def test_listings_come_in_pages_with_links_as_xurrent_gives_them(
    router: TestClient[Any, Any],
) -> None:
    """45 webhooks: 20 a page by default, newest first; Link and X-Pagination-* lead through all
    of them, each once; a wrong `per_page` is a 400 naming it."""
    made = [
        (await create_webhook(router, event="a.b", uri=f"https://e.com/{n}"))["id"]
        for n in range(45)
    ]
    response = await router.get("/webhooks", headers=AUTH)
    assert len(await response.json()) == 20
    assert response.headers["X-Pagination-Total-Entries"] == "45"
    assert response.headers["X-Pagination-Total-Pages"] == "3"
    listed: list[str] = []
    url: str | None = "/webhooks?per_page=7"
    while url is not None:
        response = await router.get(url, headers=AUTH)
        listed += [webhook["id"] for webhook in await response.json()]
        following = response.links.get("next")
        url = str(URL(str(following["url"])).relative()) if following else None
    assert listed == made[::-1]

    response = await router.get("/webhooks?per_page=101", headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "per_page"
    beyond = await router.get("/webhooks?page=9", headers=AUTH)
    assert await beyond.json() == []


async def test_the_api_needs_the_admin_token(router: TestClient[Any, Any]) -> None:
    """Without the bearer token the API answers 401; health and metrics stay open."""
    assert (await router.get("/webhooks")).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await router.post("/webhooks", json={}, headers=wrong)).status == 401
    assert (await router.get("/healthz")).status == 200
    assert (await router.get("/readyz")).status == 200
    assert (await router.get("/metrics")).status == 200


async def test_a_test_call_goes_out_even_to_a_disabled_webhook(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """POST /webhooks/:id/test queues a test delivery with object_id 12345."""
    made = await create_webhook(router, event="problem.update", uri="https://e.com/", disabled=True)
    response = await router.post(f"/webhooks/{made['id']}/test", headers=AUTH)
    assert response.status == 204
    [message] = await take_all(amqp_url, settings.topology.deliver_queue, expect=1)
    task = DeliveryTask.model_validate_json(message.body)
    assert task.test is True
    assert task.webhook_id == made["id"]
    assert task.event.object_id == 12345
    assert task.event.type == "problem.update"
    assert (await router.post("/webhooks/wh_nope/test", headers=AUTH)).status == 404


async def test_webhooks_survive_a_restart_and_agree_across_replicas(
    start_router: RouterFactory,
) -> None:
    """A second replica, and a router started after the first stopped, see the same webhooks."""
    first = await start_router()
    made = await create_webhook(first, event="risk.*", uri="https://e.com/r")
    second = await start_router()
    await second.patch(f"/webhooks/{made['id']}", json={"description": "d"}, headers=AUTH)
    await first.close()

    third = await start_router()
    listed = await (await third.get("/webhooks", headers=AUTH)).json()
    assert [(w["id"], w["description"]) for w in listed] == [(made["id"], "d")]


async def test_a_router_started_later_counts_webhooks_as_one_that_saw_every_change(
    start_router: RouterFactory,
) -> None:
    """A router that rebuilt its table at start counts the enabled and disabled webhooks as the
    router that made the changes does."""
    first = await start_router()
    await create_webhook(first, event="late.*", uri="https://e.com/kept")
    moved = await create_webhook(first, event="late.a", uri="https://e.com/moved")
    await first.patch(f"/webhooks/{moved['id']}", json={"event": "late.b"}, headers=AUTH)
    off = await create_webhook(first, event="late.a", uri="https://e.com/off")
    await first.patch(f"/webhooks/{off['id']}", json={"disabled": True}, headers=AUTH)
    gone = await create_webhook(first, event="late.a", uri="https://e.com/gone")
    await first.delete(f"/webhooks/{gone['id']}", headers=AUTH)

    second = await start_router()
    for client in (first, second):
        metrics = await (await client.get("/metrics")).text()
        assert metric_value(metrics, 'hookline_webhooks{state="enabled"}') == 2
        assert metric_value(metrics, 'hookline_webhooks{state="disabled"}') == 1


async def log_outcome(
    url: str,
    topology: Topology,
    webhook_id: str,
    outcome: Outcome,
    error: str | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """One attempt record in the delivery log, as a sender writes it."""
    record = DeliveryAttempted(
        delivery_id="msg_1",
        event_id="evt_1",
        event_type="a.b",
        webhook_id=webhook_id,
        attempt=1,
        at=at or datetime.now(UTC),
        outcome=outcome,
        error=error,
    )
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(record.model_dump_json().encode(), delivery_mode=2, type=record.kind),
            routing_key=topology.delivery_log_stream,
        )
    finally:
        await connection.close()


async def shown(client: TestClient[Any, Any], webhook_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await (await client.get(f"/webhooks/{webhook_id}", headers=AUTH)).json()
    return body


async def test_endpoint_health_comes_from_the_delivery_log(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """Failed attempts show as last_error, a count and a start; a success clears them."""
    made = await create_webhook(router, event="a.b", uri="https://e.com/")
    topology = settings.topology
    await log_outcome(amqp_url, topology, made["id"], "retry_scheduled", "404 Not Found")
    await log_outcome(amqp_url, topology, made["id"], "retry_scheduled", "500 Server Error")

    async def failing_twice() -> bool:
        failures: int = (await shown(router, made["id"]))["consecutive_failures"]
        return failures == 2

    await eventually(failing_twice)
    body = await shown(router, made["id"])
    assert body["last_error"] == "500 Server Error"
    assert body["failing_since"] is not None
    assert body["last_attempt_at"] is not None
    assert body["last_success_at"] is None
    await log_outcome(amqp_url, topology, made["id"], "delivered")

    async def healed() -> bool:
        return (await shown(router, made["id"]))["last_error"] is None

    await eventually(healed)
    body = await shown(router, made["id"])
    assert (body["consecutive_failures"], body["failing_since"]) == (0, None)
    assert body["last_success_at"] == body["last_attempt_at"]


async def test_a_router_starts_from_the_latest_health_checkpoint(
    settings: RouterSettings, serve_app: AppServer, amqp_url: str
) -> None:
    """A new router loads the checkpoint another wrote and reads the delivery log only after it,
    so its start does not replay the log."""
    first = await serve_app(create_app(settings.model_copy(update={"health_checkpoint_s": 0.2})))
    made = await create_webhook(first, event="a.b", uri="https://e.com/")
    for _ in range(3):
        await log_outcome(amqp_url, settings.topology, made["id"], "retry_scheduled", "503 x")
    view = router_state(first).health

    async def checkpointed() -> bool:
        bodies = await read_stream(
            amqp_url, settings.topology.health_stream, expect=1, of_type="health.checkpoint"
        )
        return decode_checkpoint(bodies[0], "deflate").webhooks.get(made["id"]) is not None

    await eventually(lambda: view.get(made["id"]).consecutive_failures == 3)
    await eventually(checkpointed, timeout_s=10)
    covered = view.offset
    await first.close()

    second = await serve_app(create_app(settings))
    second_view = router_state(second).health
    assert second_view.loaded_offset == covered
    assert (await shown(second, made["id"]))["consecutive_failures"] == 3


async def test_a_webhook_failing_too_long_is_disabled_and_its_owners_mailed(
    settings: RouterSettings, serve_app: AppServer, amqp_url: str, smtp: SmtpSink
) -> None:
    """Past the failing time and count, the webhook is disabled with its reason, and the
    addresses in mail_exceptions_to get one digest; one failing every other time is not."""
    router = await serve_app(
        create_app(
            settings.model_copy(
                update={
                    "disable_after_s": 2.0,
                    "disable_after_failures": 3,
                    "smtp_url": SecretStr(smtp.url),
                    "mail_gather_s": 0.2,
                }
            )
        )
    )
    doomed = await create_webhook(
        router, event="a.b", uri="https://e.com/d", mail_exceptions_to="ops@example.com"
    )
    flapping = await create_webhook(router, event="a.b", uri="https://e.com/f")
    start = datetime.now(UTC)
    for second in range(5):
        at = start + timedelta(seconds=second)
        await log_outcome(
            amqp_url, settings.topology, doomed["id"], "retry_scheduled", "503 x", at=at
        )
        outcome: Outcome = "delivered" if second % 2 else "retry_scheduled"
        await log_outcome(amqp_url, settings.topology, flapping["id"], outcome, "503 x", at=at)

    async def disabled() -> bool:
        return bool((await shown(router, doomed["id"]))["disabled"])

    await eventually(disabled)
    body = await shown(router, doomed["id"])
    assert body["disabled_reason"].startswith("failed continuously since")
    assert "(3 attempts in a row)" in body["disabled_reason"]
    [mail] = await smtp.wait_for(1)
    assert mail.recipients == ["ops@example.com"]
    assert mail.subject == '[Hookline] webhook "a.b": disabled'
    assert doomed["id"] in mail.text
    assert (await shown(router, flapping["id"]))["disabled"] is False

    await router.patch(f"/webhooks/{doomed['id']}", json={"disabled": False}, headers=AUTH)
    body = await shown(router, doomed["id"])
    assert (body["disabled"], body["disabled_reason"], body["consecutive_failures"]) == (
        False,
        None,
        0,
    )


async def test_dead_letters_are_mailed_as_one_digest_per_webhook(
    settings: RouterSettings, serve_app: AppServer, amqp_url: str, smtp: SmtpSink
) -> None:
    """Notices of dead letters for one webhook arrive as one mail listing each of them."""
    router = await serve_app(
        create_app(
            settings.model_copy(
                update={"smtp_url": SecretStr(smtp.url), "mail_gather_s": 0.5, "mail_digest_s": 60}
            )
        )
    )
    made = await create_webhook(
        router, event="a.b", uri="https://e.com/", mail_exceptions_to="a@example.com, b@example.com"
    )
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    for n in range(3):
        notice = FailureNotice(
            kind="dead_lettered",
            webhook_id=made["id"],
            at=datetime.now(UTC),
            reason="503 Service Unavailable",
            delivery_id=f"msg_{n}",
            event_id=f"evt_{n}",
            event_type="a.b",
            attempts=8,
        )
        await channel.default_exchange.publish(
            aio_pika.Message(notice.model_dump_json().encode(), delivery_mode=2),
            routing_key=settings.topology.mail_queue,
        )
    await connection.close()
    [mail] = await smtp.wait_for(1)
    assert sorted(mail.recipients) == ["a@example.com", "b@example.com"]
    assert mail.subject == '[Hookline] webhook "a.b": 3 deliveries dead-lettered'
    assert all(f"evt_{n}" in mail.text for n in range(3))

    async def queue_empty() -> bool:
        return await message_count(amqp_url, settings.topology.mail_queue) == 0

    await eventually(queue_empty)  # acked only once the mail was taken


async def test_without_its_stream_the_router_refuses_changes_and_is_not_ready(
    router: TestClient[Any, Any], settings: RouterSettings, amqp_url: str
) -> None:
    """If the webhooks stream is deleted, a change is refused with 503 (never a false 201) and
    /readyz soon says the table is no longer current."""
    connection = await aio_pika.connect(amqp_url)
    await (await connection.channel()).queue_delete(settings.topology.webhooks_stream)
    await connection.close()

    response = await router.post(
        "/webhooks", json={"event": "a.b", "uri": "https://e.com/"}, headers=AUTH
    )
    assert response.status == 503
    assert (await response.json())["error"] == "the broker did not take the change; try again"

    async def not_ready() -> bool:
        # The broker cancels the stream's consumer on its own time, after the refused publish.
        ready = await router.get("/readyz")
        return ready.status == 503 and (await ready.json())["checks"]["webhooks_synced"] is False

    await eventually(not_ready, timeout_s=10)


async def test_the_latest_checkpoint_is_found_behind_many_markers(
    settings: RouterSettings, amqp_url: str
) -> None:
    """Routers that started since the last checkpoint left only markers at the stream's end:
    the search looks further back and finds the newest checkpoint."""
    topology = settings.topology
    connection = await aio_pika.connect_robust(amqp_url)
    publisher = await Publisher.open(connection, timeout_s=5)
    try:
        await declare_topology(connection, topology)
        for offset in (7, 8):
            checkpoint = HealthCheckpoint(
                at=datetime.now(UTC), delivery_log_offset=offset, webhooks={}
            )
            await publisher.publish(
                "",
                topology.health_stream,
                encode_checkpoint(checkpoint),
                message_type=CHECKPOINT_KIND,
                content_encoding=CHECKPOINT_ENCODING,
            )
        for _ in range(40):
            await publisher.publish("", topology.health_stream, b"{}", message_type=MARKER_KIND)
        found = await read_latest_checkpoint(connection, publisher, topology)
        assert found is not None
        assert found.delivery_log_offset == 8
    finally:
        await publisher.close()
        await connection.close()
