"""Hookline as the webhook back end of each product in shared/seeds/: that product's events, with
the names and payloads of its page, published to real services, and checked at a real receiver
as exactly what its subscribers receive today."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import jwt
import pytest
import pytest_asyncio
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook

from tests.conftest import RUN_PREFIX
from tests.support.catalog import EXAMPLE_CATALOG, PROJECTRAK_UPDATED
from tests.support.processes import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    Stack,
    post_events,
    running_stack,
)
from tests.support.receiver import Received, Receiver
from tests.support.tls import LoopbackCertificate, loopback_certificate
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PREFIX = f"{RUN_PREFIX}-seeds"
SERVICES = (("producer", "producer"), ("router", "router"), ("sender", "sender"))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCertificate:
    return loopback_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stack(
    amqp_url: str, tmp_path_factory: pytest.TempPathFactory, certificate: LoopbackCertificate
) -> Iterator[Stack]:
    """A producer, a router and a sender that know the five products' event catalog (and refuse
    other types), and trust the https receiver's certificate."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SSL_CERT_FILE", str(certificate.cert_path))
        with running_stack(
            amqp_url,
            PREFIX,
            tmp_path_factory.mktemp("logs"),
            SERVICES,
            retry_schedule="0.5,0.5",
            catalog_path=str(EXAMPLE_CATALOG),
            uncataloged_events="refuse",
        ) as stack:
            yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls_receiver(certificate: LoopbackCertificate) -> AsyncIterator[Receiver]:
    """A receiver that serves https only, as Projectrak requires of its targets."""
    server = Receiver(ssl_context=certificate.server_context())
    await server.start()
    yield server
    await server.stop()


async def create(http: aiohttp.ClientSession, stack: Stack, **fields: Any) -> dict[str, Any]:
    async with http.post(f"{stack.url_of('router')}/webhooks", json=fields, headers=ADMIN) as r:
        assert r.status == 201, await r.text()
        made: dict[str, Any] = await r.json()
        return made


async def publish(http: aiohttp.ClientSession, stack: Stack, *events: dict[str, Any]) -> None:
    await post_events(http, stack.url_of("producer"), events)


def verified(received: Received, secret: str) -> None:
    """The Standard Webhooks signature holds over what was sent: the body, or a GET's query."""
    headers = {k: v for k, v in received.headers.items() if k.startswith("webhook-")}
    if received.method == "GET":
        sent_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
        expected = Webhook(secret).sign(headers["webhook-id"], sent_at, received.query)
        assert expected in headers["webhook-signature"].split(" ")
    else:
        Webhook(secret).verify(received.body, headers)


# --- Ketryx ---------------------------------------------------------------------------------------

KETRYX_EVENTS: dict[str, dict[str, Any]] = {
    "recordApproval": {
        "userId": "KXUSR1N91YGN3JB8PVT4DDFVF4Y64YT",
        "itemId": "KXITM0K2C9D1ZQ7RM5B6XH3JW8E4FNA",
        "recordId": "KXREC1N91YGN3JB8PVT4DDFVF4Y64YT",
        "isControlled": True,
        "newRecordId": "KXREC2P41HZK8QW0S7VDDF3MA9C2TGB",
    },
    "documentApproval": {
        "userId": "KXUSR1N91YGN3JB8PVT4DDFVF4Y64YT",
        "itemId": "KXITM7W3Q2E9R8T1Y6U5I4O3P2A1SDF",
        "recordId": "KXREC7W3Q2E9R8T1Y6U5I4O3P2A1SDF",
        "isControlled": False,
    },
    "vulnerabilityApproval": {
        "userId": "KXUSR9Z8Y7X6W5V4U3T2S1R0Q9P8O7N",
        "itemId": "KXITM3C4V5B6N7M8L9K0J1H2G3F4D5S",
        "recordId": "KXREC3C4V5B6N7M8L9K0J1H2G3F4D5S",
        "isControlled": True,
        "newRecordId": "KXREC8N7B6V5C4X3Z2L1K0J9H8G7F6D",
    },
    "releaseApproval": {
        "userId": "KXUSR1N91YGN3JB8PVT4DDFVF4Y64YT",
        "versionId": "KXVER4E5R6T7Y8U9I0O1P2A3S4D5F6G",
        "isReleased": True,
        "releaseDate": "2026-11-27T09:30:00.000Z",
    },
    "milestoneApproval": {
        "userId": "KXUSR1N91YGN3JB8PVT4DDFVF4Y64YT",
        "milestoneId": "KXMIL6Y7U8I9O0P1A2S3D4F5G6H7J8K",
        "isFullyApproved": False,
    },
    "testPlanApproval": {
        "userId": "KXUSR1N91YGN3JB8PVT4DDFVF4Y64YT",
        "versionId": "KXVER4E5R6T7Y8U9I0O1P2A3S4D5F6G",
        "testPlanId": "KXTPL2W3E4R5T6Y7U8I9O0P1A2S3D4F",
    },
}
# Ketryx calls each event's URL by POST (the default) or GET, as configured per event.
KETRYX_GET = {"documentApproval", "vulnerabilityApproval", "testPlanApproval"}


def as_query(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """What a GET subscriber reads: strings as they are, booleans as JSON."""
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()]


async def test_ketryx_approvals_arrive_as_their_fields_by_post_or_get(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """The six approval events, each to its own URL: POST carries the fields as the JSON body,
    GET as query parameters; both signed. Every call is in the delivery log (Ketryx's "system
    logs"), with its status."""
    webhooks = {}
    for event in KETRYX_EVENTS:
        method = "GET" if event in KETRYX_GET else "POST"
        webhooks[event] = await create(
            http,
            stack,
            event=event,
            uri=f"{receiver.url}/ketryx/{event}?project=KXPRJ1",
            format="raw",
            method=method,
        )
    await publish(http, stack, *({"type": t, "data": d} for t, d in KETRYX_EVENTS.items()))

    for event, fields in KETRYX_EVENTS.items():
        (received,) = await receiver.wait_for(1, path=f"/ketryx/{event}")
        verified(received, webhooks[event]["secret"])
        if event in KETRYX_GET:
            assert received.method == "GET"
            assert received.body == b""
            assert parse_qsl(received.query) == [("project", "KXPRJ1"), *as_query(fields)]
        else:
            assert received.method == "POST"
            assert received.headers["content-type"] == "application/json"
            assert received.json() == fields
            assert received.query == "project=KXPRJ1"

    router = stack.url_of("router")
    for event, webhook in webhooks.items():
        url = f"{router}/webhooks/{webhook['id']}/deliveries"

        async def logged(url: str = url, event: str = event) -> bool:
            async with http.get(url, headers=ADMIN) as response:
                deliveries = await response.json()
            return [(d["event_type"], d["outcome"]) for d in deliveries] == [(event, "delivered")]

        await eventually(logged)


# --- Projectrak -----------------------------------------------------------------------------------

# The request body of Projectrak's page: the producer's data, passed through as is.
PROJECTRAK_BODY = PROJECTRAK_UPDATED
PROJECTRAK_EVENT = "projectrak.project.updated"


async def test_projectrak_field_changes_pass_through_over_https_only(
    stack: Stack, tls_receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """An https-only webhook: an http URI is refused; the field-change body arrives over https
    exactly as the producer sent it."""
    async with http.post(
        f"{stack.url_of('router')}/webhooks",
        json={"event": PROJECTRAK_EVENT, "uri": "http://127.0.0.1:9/x", "https_only": True},
        headers=ADMIN,
    ) as refused:
        assert refused.status == 400
        assert [e["field"] for e in (await refused.json())["errors"]] == ["uri"]
    webhook = await create(
        http,
        stack,
        event=PROJECTRAK_EVENT,
        uri=f"{tls_receiver.url}/projectrak",
        format="raw",
        https_only=True,
    )
    await publish(http, stack, {"type": PROJECTRAK_EVENT, "data": PROJECTRAK_BODY})
    (received,) = await tls_receiver.wait_for(1, path="/projectrak")
    assert received.scheme == "https"
    assert received.method == "POST"
    assert received.json() == PROJECTRAK_BODY
    verified(received, webhook["secret"])


# --- Keyclic --------------------------------------------------------------------------------------

REPORT = {
    "type": "Report",
    "id": "b0e7e28f-5b91-4c73-875e-8f34aa03553a",
    "state": "NEW",
    "createdAt": "2018-02-27T10:00:00+02:00",
    "updatedAt": "2018-02-27T10:00:00+02:00",
    "_links": {"feedback": "...", "operations": "...", "organization": "...", "tracking": "..."},
    "_embedded": {"stateTransitions": "...", "tracking": ".."},
}
OPERATION = {
    "type": "Operation",
    "id": "5f1c7c2e-1d3a-4b7e-9a51-3f0d2b8c6e4a",
    "state": "TO_DO",
    "createdAt": "2018-02-27T11:00:00+02:00",
    "updatedAt": "2018-02-27T11:00:00+02:00",
    "_links": {"report": "...", "organization": "..."},
}
KEYCLIC_EVENTS = {
    "reportCreated": REPORT,
    "reportStateChanged": {**REPORT, "state": "ACCEPTED"},
    "operationCreated": OPERATION,
    "operationStateChanged": {**OPERATION, "state": "IN_PROGRESS"},
    "operationRemoved": OPERATION,
}


async def test_keyclic_events_reach_every_webhook_of_their_event(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """The five report and operation events; reportCreated has three webhooks (any number per
    event), each gets `{"event": …, "payload": <the resource>}`."""
    paths = {event: [f"/keyclic/{event}"] for event in KEYCLIC_EVENTS}
    paths["reportCreated"] += ["/keyclic/warehouse", "/keyclic/cmms"]
    for event, event_paths in paths.items():
        for path in event_paths:
            await create(http, stack, event=event, uri=f"{receiver.url}{path}", format="keyclic")
    await publish(http, stack, *({"type": t, "data": d} for t, d in KEYCLIC_EVENTS.items()))
    for event, event_paths in paths.items():
        for path in event_paths:
            (received,) = await receiver.wait_for(1, path=path)
            assert received.json() == {"event": event, "payload": KEYCLIC_EVENTS[event]}


# --- ITRP and Xurrent -----------------------------------------------------------------------------


async def test_itrp_webhooks_get_the_xurrent_body_and_tests_carry_object_12345(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """ITRP's API as its page shows it (create with event and uri, the name defaults to the
    event, list enabled, test: object 12345, and the catalog's example as its payload), and its
    body: who changed which object, and the payload."""
    webhook = await create(
        http, stack, event="problem.update", uri=f"{receiver.url}/itrp", format="xurrent"
    )
    assert webhook["name"] == "problem.update"
    router = stack.url_of("router")
    async with http.get(f"{router}/webhooks/enabled", headers=ADMIN) as listing:
        assert webhook["id"] in [w["id"] for w in await listing.json()]
    async with http.post(f"{router}/webhooks/{webhook['id']}/test", headers=ADMIN) as tested:
        assert tested.status == 204
    (test_call,) = await receiver.wait_for(1, path="/itrp")
    assert test_call.json()["object_id"] == 12345
    # The catalog's example of the type: the subscriber sees the shape it will get.
    async with http.get(f"{router}/event-types/problem.update", headers=ADMIN) as cataloged:
        assert test_call.json()["payload"] == (await cataloged.json())["examples"][0]

    await publish(
        http,
        stack,
        {
            "type": "problem.update",
            "object_id": 812,
            "account": "wdc",
            "actor": {"id": 6, "name": "Howard Tanner"},
            "data": {"id": 812, "subject": "Printer on fire", "status": "solved"},
        },
    )
    _, received = await receiver.wait_for(2, path="/itrp")
    assert received.json() == {
        "webhook_id": webhook["id"],
        "account": "wdc",
        "name": "problem.update",
        "event": "problem.update",
        "object_id": 812,
        "person_id": 6,
        "person_name": "Howard Tanner",
        "payload": {"id": 812, "subject": "Printer on fire", "status": "solved"},
    }
    assert received.headers["x-hookline-delivery"] == received.headers["webhook-id"]
    assert received.headers["user-agent"].startswith("Hookline/")
    verified(received, webhook["secret"])


# --- CloudEvents ----------------------------------------------------------------------------------


async def test_a_cloudevents_webhook_gets_a_structured_event_the_sdk_reads(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    webhook = await create(
        http, stack, event="request.create", uri=f"{receiver.url}/ce", format="cloudevents"
    )
    await publish(
        http,
        stack,
        {"type": "request.create", "source": "xurrent", "object_id": 77, "data": {"id": 77}},
    )
    (received,) = await receiver.wait_for(1, path="/ce")
    event = from_http(HTTPMessage(headers=received.headers, body=received.body), JSONFormat())
    assert (event.get_type(), event.get_source(), event.get_subject()) == (
        "request.create",
        "xurrent",
        "77",
    )
    assert event.get_data() == {"id": 77}
    verified(received, webhook["secret"])


XURRENT_EVENTS = [
    ("request.create", {"id": 70001, "subject": "Laptop does not boot", "status": "assigned"}),
    ("request.status-changed", {"id": 70001, "status": "in_progress"}),
    ("request.note-added", {"id": 70001, "note": "Replaced the battery"}),
    ("request.team-changed", {"id": 70001, "team": {"id": 12, "name": "Desktop Support"}}),
    ("automation_rule", {"rule": "escalate", "request_id": 70001}),
    ("problem.create", {"id": 812, "subject": "Printer on fire"}),
]


async def test_xurrent_noun_verb_events_reach_exact_and_pattern_webhooks(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Xurrent's events are noun.verb (and `automation_rule`): a webhook per exact event, and
    one for every request event, each get the Xurrent body of exactly their events."""
    every_request = await create(
        http, stack, event="request.*", uri=f"{receiver.url}/x/requests", format="xurrent"
    )
    rule = await create(
        http, stack, event="automation_rule", uri=f"{receiver.url}/x/rule", format="xurrent"
    )
    await publish(
        http,
        stack,
        *(
            {
                "type": event,
                "data": data,
                "object_id": data.get("id", 0),
                "account": "wdc",
                "actor": {"id": 6, "name": "Howard Tanner"},
            }
            for event, data in XURRENT_EVENTS
        ),
    )
    requests = await receiver.wait_for(4, path="/x/requests")
    assert sorted(r.json()["event"] for r in requests) == sorted(
        event for event, _ in XURRENT_EVENTS if event.startswith("request.")
    )
    for received in requests:
        body = received.json()
        assert body["name"] == "request.*"
        assert body["payload"] == dict(XURRENT_EVENTS)[body["event"]]
        verified(received, every_request["secret"])
    (fired,) = await receiver.wait_for(1, path="/x/rule")
    assert fired.json()["payload"] == {"rule": "escalate", "request_id": 70001}
    verified(fired, rule["secret"])
    assert receiver.to("/x/requests") == requests  # problem.create went to neither


async def test_xurrent_webhooks_with_a_policy_get_a_jwt_a_subscriber_verifies(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Xurrent's webhook policies: an rs256 policy's public key is shown once, at creation; a
    webhook naming it is sent `{"jwt": …}` whose `data` is the Xurrent body, and PyJWT verifies
    it with that key, audience and expiry."""
    router = stack.url_of("router")
    async with http.post(
        f"{router}/webhook_policies",
        json={
            "name": "Xurrent signing",
            "jwt_alg": "rs256",
            "jwt_audience": "https://subscriber.example.com",
            "jwt_claim_expires_in": 120,
        },
        headers=ADMIN,
    ) as made:
        assert made.status == 201, await made.text()
        policy = await made.json()
    async with http.get(f"{router}/webhook_policies/{policy['id']}", headers=ADMIN) as shown:
        assert "public_key" not in await shown.json()  # shown once
    webhook = await create(
        http,
        stack,
        event="request.status-changed",
        uri=f"{receiver.url}/x/signed",
        format="xurrent",
        webhook_policy=policy["id"],
    )
    await publish(
        http,
        stack,
        {
            "type": "request.status-changed",
            "object_id": 70002,
            "account": "wdc",
            "data": {"id": 70002, "status": "completed"},
        },
    )
    (received,) = await receiver.wait_for(1, path="/x/signed")
    verified(received, webhook["secret"])
    token = received.json()["jwt"]
    claims = jwt.decode(
        token,
        policy["public_key"],
        algorithms=["RS256"],
        audience="https://subscriber.example.com",
        options={"require": ["exp", "iat", "aud"]},
    )
    assert claims["exp"] == claims["iat"] + 120
    assert jwt.get_unverified_header(token)["kid"] == policy["id"]
    assert claims["data"] == {
        "webhook_id": webhook["id"],
        "account": "wdc",
        "name": "request.status-changed",
        "event": "request.status-changed",
        "object_id": 70002,
        "person_id": None,
        "person_name": None,
        "payload": {"id": 70002, "status": "completed"},
    }
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, policy["public_key"], algorithms=["RS256"], audience="https://other")


# --- the catalog ----------------------------------------------------------------------------------


async def test_the_catalog_lists_each_products_events_and_refuses_what_breaks_it(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """`GET /event-types` lists the products' types; an event whose data breaks its type's
    schema, or of a type no product has, is a 400 naming the path; so is a webhook of an
    unknown type."""
    router, producer = stack.url_of("router"), stack.url_of("producer")
    async with http.get(f"{router}/event-types", headers=ADMIN) as listed:
        types = {entry["type"] for entry in await listed.json()}
    assert {*KETRYX_EVENTS, *KEYCLIC_EVENTS, PROJECTRAK_EVENT, "request.update"} <= types
    async with http.get(f"{router}/event-types/recordApproval", headers=ADMIN) as one:
        assert "isControlled" in (await one.json())["schema"]["properties"]

    ingest = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    wrong = {**KETRYX_EVENTS["recordApproval"], "isControlled": "yes"}
    async with http.post(
        f"{producer}/events", json={"type": "recordApproval", "data": wrong}, headers=ingest
    ) as refused:
        assert refused.status == 400
        fields = [e["field"] for e in (await refused.json())["errors"]]
        assert fields == ["data.isControlled"]
    async with http.post(
        f"{producer}/events", json={"type": "recordApproved", "data": {}}, headers=ingest
    ) as unknown:
        assert unknown.status == 400
        assert [e["field"] for e in (await unknown.json())["errors"]] == ["type"]
    async with http.post(
        f"{router}/webhooks",
        json={"event": "recordApproved", "uri": "https://example.com/"},
        headers=ADMIN,
    ) as no_such_event:
        assert no_such_event.status == 400
        assert [e["field"] for e in (await no_such_event.json())["errors"]] == ["event"]
