"""No signing secret, policy key, token or broker password in any service's log (even at debug
level) or metrics: the whole stack runs at `HOOKLINE_LOG_LEVEL=debug` while a webhook is created
with a secret of its own, an event delivered, the secret rotated and another event delivered,
webhook policies of each kind of key are created and events delivered signed with them, with a
request refused for its token and one refused for what it holds (the secret in its body) on each
API; then every log line and metric of every service is searched."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from schemas.topology import Topology
from schemas.webhook_policies import WebhookPolicyCreated
from tests.conftest import RUN_PREFIX
from tests.support.broker import read_stream
from tests.support.processes import (
    ADMIN_TOKEN,
    FULL_STACK,
    INGEST_TOKEN,
    Stack,
    running_stack,
)
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
ACCOUNT_TOKEN = "e2e-secret-account-token"


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        f"{RUN_PREFIX}-quiet",
        tmp_path_factory.mktemp("logs"),
        FULL_STACK,
        log_level="debug",
        account_tokens=f"acme:{ACCOUNT_TOKEN}",
    ) as stack:
        yield stack


async def test_no_secret_token_or_password_is_logged_at_debug(
    stack: Stack, amqp_url: str, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    own_secret = "whsec_" + base64.b64encode(b"own-secret-bytes-24-long").decode()
    router, producer = stack.url_of("router"), stack.url_of("producer")
    async with http.post(
        f"{router}/webhooks",
        json={"event": "quiet.t", "uri": f"{receiver.url}/quiet", "secret": own_secret},
        headers=ADMIN,
    ) as response:
        assert response.status == 201
        webhook_id = (await response.json())["id"]
    event = {"type": "quiet.t", "data": {"n": 1}}
    async with http.post(f"{producer}/events", json=event, headers=INGEST) as response:
        assert response.status == 202
    await receiver.wait_for(1, path="/quiet", timeout_s=30)
    async with http.post(
        f"{router}/webhooks/{webhook_id}/secret/rotate", headers=ADMIN
    ) as response:
        new_secret = (await response.json())["secret"]
    async with http.post(f"{producer}/events", json=event, headers=INGEST) as response:
        assert response.status == 202
    await receiver.wait_for(2, path="/quiet", timeout_s=30)
    # Policies: an RSA and an EC private key and an HMAC secret, each signing a delivery.
    hmac_secret = ""
    for alg in ("rs256", "es384", "hs256"):
        async with http.post(
            f"{router}/webhook_policies", json={"name": alg, "jwt_alg": alg}, headers=ADMIN
        ) as response:
            assert response.status == 201
            policy = await response.json()
        hmac_secret = policy.get("secret", hmac_secret)
        async with http.post(
            f"{router}/webhooks",
            json={
                "event": "quiet.p",
                "uri": f"{receiver.url}/{alg}",
                "webhook_policy": policy["id"],
            },
            headers=ADMIN,
        ) as response:
            assert response.status == 201
    async with http.post(
        f"{producer}/events", json={"type": "quiet.p", "data": {"n": 3}}, headers=INGEST
    ) as response:
        assert response.status == 202
    for alg in ("rs256", "es384", "hs256"):
        await receiver.wait_for(1, path=f"/{alg}", timeout_s=30)
    stream = Topology(stack.env["HOOKLINE_PREFIX"]).webhooks_stream
    created = await read_stream(amqp_url, stream, expect=3, of_type="webhook_policy.created")
    policy_records = [WebhookPolicyCreated.model_validate_json(body) for body in created]
    for url, path in ((router, "/webhooks"), (producer, "/events")):
        wrong = {"Authorization": f"Bearer {ADMIN_TOKEN}-guess"}
        async with http.post(f"{url}{path}", json={}, headers=wrong) as response:
            assert response.status == 401
    # Refused for what they hold, each with the secret in its body: a request.rejected line each.
    as_json = {**ADMIN, "Content-Type": "application/json"}
    for url, path, headers, body, status in (
        (router, "/webhooks", ADMIN, {"event": "bad event", "secret": own_secret}, 400),
        (
            router,
            "/webhooks",
            ADMIN,
            {"event": "a.b", "uri": "http://10.0.0.1/", "secret": own_secret},
            422,
        ),
        (producer, "/events", INGEST, {"type": "a.b", "data": {"s": new_secret}, "x": 1}, 400),
    ):
        async with http.post(f"{url}{path}", json=body, headers=headers) as response:
            assert response.status == status
    twice = f'{{"secret": "{own_secret}", "secret": "{new_secret}"}}'
    async with http.post(
        f"{router}/webhooks/{webhook_id}/secret/rotate", data=twice, headers=as_json
    ) as response:
        assert response.status == 400
    metrics = []
    for service in stack.services:
        async with http.get(f"{service.url}/metrics") as response:
            metrics.append(await response.text())
    # Stopped first, so that every line is written out.
    codes = await asyncio.to_thread(stack.stop_all)
    assert codes == {name: 0 for name in codes}
    texts = {
        service.name: service.log_path.read_text(errors="replace") for service in stack.services
    }
    assert '"level": "debug"' in texts["router"], "the services did log at debug"
    assert '"level": "debug"' in texts["sender-1"]
    assert "request.unauthorized" in texts["router"]
    assert texts["router"].count("request.rejected") == 3
    assert texts["producer"].count("request.rejected") == 1
    password = urlsplit(amqp_url).password or ""
    secrets = {
        "the webhook's own secret": own_secret.removeprefix("whsec_"),
        "the rotated-in secret": new_secret.removeprefix("whsec_"),
        "the admin token": ADMIN_TOKEN,
        "the ingest token": INGEST_TOKEN,
        "an account token": ACCOUNT_TOKEN,
        "the broker password": f":{password}@",
        "an HMAC policy's secret": hmac_secret,
    }
    for record in policy_records:
        assert record.signing_key is not None
        # Every line of each private key's PEM but its armour and a short last one (the HMAC
        # secret, one line, is searched for above).
        for number, line in enumerate(record.signing_key.strip().splitlines()[1:-1]):
            if len(line) >= 16:
                secrets[f"line {number} of the {record.jwt_alg} policy's private key"] = line
    texts["every service's metrics"] = "\n".join(metrics)
    leaks = [
        f"{what} in {name}'s log"
        for name, text in texts.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert leaks == []
