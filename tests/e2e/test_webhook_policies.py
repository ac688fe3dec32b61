"""Webhook policies with real processes: a router, a producer and a sender, and a real receiver
that verifies each token with PyJWT and the public key the create answer showed, as a
subscriber would; and a disabled policy that sends nothing, dead-letters, and blames no
endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import jwt
import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import RUN_PREFIX
from tests.support.processes import ADMIN_TOKEN, INGEST_TOKEN, Stack, running_stack
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        f"{RUN_PREFIX}-policies",
        tmp_path_factory.mktemp("logs"),
        (("router", "router"), ("producer", "producer"), ("sender", "sender-1")),
        retry_schedule="0.5",
        attempt_timeout_s="2",
    ) as stack:
        yield stack


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status in (201, 202), await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=ADMIN) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_tokens_of_rs256_and_es256_policies_verify_at_a_real_receiver(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """Each webhook naming a policy gets `{"jwt": …}`: PyJWT verifies it with the public key of
    the create answer, `aud` is the policy's, `exp` is `iat` plus its lifetime, `kid` names the
    policy, `jti` is the webhook-id, and `data` is the standard body that webhook would get."""
    router, producer = stack.url_of("router"), stack.url_of("producer")
    rs = await post(
        http,
        f"{router}/webhook_policies",
        {"name": "RSA", "jwt_alg": "rs256", "jwt_audience": "https://rs.example.com"},
        ADMIN,
    )
    es = await post(
        http,
        f"{router}/webhook_policies",
        {
            "name": "ECDSA",
            "jwt_alg": "es256",
            "jwt_audience": "https://es.example.com",
            "jwt_claim_expires_in": 120,
        },
        ADMIN,
    )
    hooks = {
        path: await post(
            http,
            f"{router}/webhooks",
            {"event": "problem.update", "uri": f"{receiver.url}{path}", **fields},
            ADMIN,
        )
        for path, fields in (
            ("/rs", {"webhook_policy": rs["id"]}),
            ("/es", {"webhook_policy": es["id"]}),
            ("/plain", {}),
        )
    }
    event = {
        "type": "problem.update",
        "id": "evt_policy_1",
        "object_id": 42,
        "account": "acme",
        "time": "2026-11-25T18:01:18Z",
        "data": {"status": "solved", "n": [1, 2.5, None], "note": "é"},
    }
    await post(http, f"{producer}/events", event, INGEST)
    sent_at = time.time()

    standard = {
        "id": "evt_policy_1",
        "type": "problem.update",
        "timestamp": "2026-11-25T18:01:18Z",
        "object_id": 42,
        "account": "acme",
        "data": {"status": "solved", "n": [1, 2.5, None], "note": "é"},
    }
    [plain] = await receiver.wait_for(1, path="/plain", timeout_s=30)
    assert Webhook(hooks["/plain"]["secret"]).verify(plain.body, plain.headers) == {
        **standard,
        "webhook_id": hooks["/plain"]["id"],
    }
    for path, policy, alg, lifetime_s in (("/rs", rs, "RS256", 60), ("/es", es, "ES256", 120)):
        [request] = await receiver.wait_for(1, path=path, timeout_s=30)
        assert request.headers["content-type"] == "application/json"
        wrapped = Webhook(hooks[path]["secret"]).verify(request.body, request.headers)
        token = wrapped["jwt"]
        assert list(wrapped) == ["jwt"]
        claims = jwt.decode(
            token,
            policy["public_key"],
            algorithms=[alg],
            audience=policy["jwt_audience"],
            issuer="hookline",
            options={"require": ["exp", "iat", "aud", "iss", "jti"]},
        )
        assert claims["exp"] == claims["iat"] + lifetime_s
        assert abs(claims["iat"] - sent_at) < 30
        assert claims["jti"] == request.headers["webhook-id"]
        assert claims["data"] == {**standard, "webhook_id": hooks[path]["id"]}
        assert jwt.get_unverified_header(token)["kid"] == policy["id"]
        with pytest.raises(jwt.InvalidAudienceError):
            jwt.decode(token, policy["public_key"], algorithms=[alg], audience="https://other")


async def test_a_disabled_policy_sends_nothing_dead_letters_and_blames_no_endpoint(
    stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    """While its policy is disabled a webhook is sent nothing, unsigned or otherwise: the
    delivery is a dead letter saying why, to redrive once mended; the webhook's endpoint health
    counts no failure (a failing endpoint's, folded later from the same log, does)."""
    router, producer = stack.url_of("router"), stack.url_of("producer")
    policy = await post(
        http, f"{router}/webhook_policies", {"name": "off", "jwt_alg": "hs256"}, ADMIN
    )
    async with http.patch(
        f"{router}/webhook_policies/{policy['id']}", json={"disabled": True}, headers=ADMIN
    ) as response:
        assert (await response.json())["disabled"] is True
    held = await post(
        http,
        f"{router}/webhooks",
        {"event": "held.t", "uri": f"{receiver.url}/held", "webhook_policy": policy["id"]},
        ADMIN,
    )
    failing = await post(
        http, f"{router}/webhooks", {"event": "probe.t", "uri": f"{receiver.url}/fail"}, ADMIN
    )
    receiver.always["/fail"] = 500
    await post(http, f"{producer}/events", {"type": "held.t", "data": {"n": 1}}, INGEST)

    async def dead_letters() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await get(
            http, f"{router}/dead-letters?webhook_id={held['id']}"
        )
        return found

    async def dead_lettered() -> bool:
        return bool(await dead_letters())

    await eventually(dead_lettered, timeout_s=30)
    [dead] = await dead_letters()
    [attempt] = dead["attempts"]
    assert attempt["error"] == f"webhook policy {policy['id']} is disabled: not sent"
    assert (attempt["status_code"], attempt["duration_ms"]) == (None, None)
    assert receiver.to("/held") == []

    # A later failure of another endpoint, folded from the same delivery log after it.
    await post(http, f"{producer}/events", {"type": "probe.t", "data": {"n": 2}}, INGEST)

    async def probe_folded() -> bool:
        shown = await get(http, f"{router}/webhooks/{failing['id']}")
        return bool(shown["consecutive_failures"] >= 1)

    await eventually(probe_folded, timeout_s=30)
    shown = await get(http, f"{router}/webhooks/{held['id']}")
    assert (shown["consecutive_failures"], shown["last_error"], shown["failing_since"]) == (
        0,
        None,
        None,
    )
    assert (await get(http, f"{router}/webhooks/{failing['id']}"))["last_error"] == (
        "500 Internal Server Error"
    )
