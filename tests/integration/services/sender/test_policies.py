"""The sender in-process on the real broker, delivering to webhooks that name a webhook policy:
`{"jwt": …}` signed with the policy's key; and never the body unsigned when the policy cannot
sign."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook

from schemas.deliveries import DeliveredPayload, DeliveryTask
from schemas.topology import REASON_HEADER
from schemas.webhook_policies import JwtAlg, WebhookPolicyCreated, WebhookPolicyUpdated
from services.router.policy_keys import PolicyKey, new_policy_key
from tests.integration.services.sender.conftest import SenderFactory, Upstream
from tests.support.broker import take_all
from tests.support.metrics import metric_value
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration


async def add_policy(upstream: Upstream, policy_id: str, alg: JwtAlg, **fields: Any) -> PolicyKey:
    """A policy in the stream, as the router writes it; the key, as its create answer shows."""
    key = new_policy_key(alg)
    await upstream.log.append(
        WebhookPolicyCreated(
            at=datetime.now(UTC),
            policy_id=policy_id,
            name=policy_id,
            jwt_alg=alg,
            jwt_claim_expires_in=fields.pop("jwt_claim_expires_in", 60),
            signing_key=key.signing_key,
            **fields,
        )
    )
    return key


async def test_a_webhook_naming_a_policy_gets_a_token_signed_with_its_key(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """The subscriber gets `{"jwt": …}`, Standard Webhooks signed as ever; the token verifies
    with the public key, and its `data` is the body the webhook would otherwise get."""
    key = await add_policy(
        upstream, "pol_es", "es256", jwt_audience="https://sub.example.com", jwt_claim_expires_in=45
    )
    webhook = await upstream.webhook(f"{receiver.url}/jwt", webhook_policy="pol_es")
    task = await upstream.deliver(webhook, data={"a": [1, None], "b": {"c": "é"}})
    [request] = await receiver.wait_for(1, path="/jwt")
    assert request.headers["content-type"] == "application/json"
    wrapped = Webhook(webhook.secret).verify(request.body, request.headers)
    assert list(wrapped) == ["jwt"]
    assert key.public_key is not None
    claims = jwt.decode(
        wrapped["jwt"],
        key.public_key,
        algorithms=["ES256"],
        audience="https://sub.example.com",
        issuer="hookline",
    )
    assert claims["data"] == json.loads(DeliveredPayload.of(task.event, webhook.id).body())
    assert claims["exp"] - claims["iat"] == 45
    assert claims["jti"] == request.headers["webhook-id"] == task.delivery_id
    assert jwt.get_unverified_header(wrapped["jwt"])["kid"] == "pol_es"
    [record] = await upstream.outcomes(1)
    assert (record.outcome, record.status_code, record.not_sent) == ("delivered", 200, None)


async def test_a_policy_disabled_or_gone_sends_nothing_and_blames_no_endpoint(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """Disabled, or named but gone: no call at all (never the body unsigned); the delivery is
    dead-lettered at once saying why, a test call fails; the endpoint's circuit is untouched
    (one counted failure would open it here), and once the policy is enabled again the same
    endpoint is called at once."""
    sender = await start_sender(circuit_failures=1, circuit_open_s=60.0)
    await add_policy(upstream, "pol_off", "rs256", disabled=True)
    off = await upstream.webhook(f"{receiver.url}/off", webhook_policy="pol_off")
    gone = await upstream.webhook(f"{receiver.url}/gone", webhook_policy="pol_gone")
    tasks = [
        await upstream.deliver(off),
        await upstream.deliver(gone),
        await upstream.deliver(off, test=True),
    ]
    records = await upstream.outcomes(3)
    by_delivery = {record.delivery_id: record for record in records}
    assert [
        (
            by_delivery[task.delivery_id].outcome,
            by_delivery[task.delivery_id].error,
            by_delivery[task.delivery_id].not_sent,
            by_delivery[task.delivery_id].status_code,
            by_delivery[task.delivery_id].duration_s,
        )
        for task in tasks
    ] == [
        ("dead_lettered", "webhook policy pol_off is disabled: not sent", True, None, None),
        ("dead_lettered", "webhook policy pol_gone does not exist: not sent", True, None, None),
        ("failed", "webhook policy pol_off is disabled: not sent", True, None, None),
    ]
    assert receiver.requests == []  # a call comes before its record: none was made
    dead = await take_all(amqp_url, upstream.settings.topology.dead_queue, expect=2)
    assert sorted(
        (DeliveryTask.model_validate_json(message.body).webhook_id, message.headers[REASON_HEADER])
        for message in dead
    ) == sorted(
        [
            (off.id, "webhook policy pol_off is disabled: not sent"),
            (gone.id, "webhook policy pol_gone does not exist: not sent"),
        ]
    )
    metrics = await (await sender.get("/metrics")).text()
    assert (
        metric_value(metrics, 'hookline_deliveries_not_sent_total{reason="policy_disabled"}') == 2
    )
    assert metric_value(metrics, 'hookline_deliveries_not_sent_total{reason="policy_missing"}') == 1
    assert metric_value(metrics, 'hookline_deliveries_total{outcome="dead_lettered"}') == 2
    assert metric_value(metrics, "hookline_circuits_open") == 0
    assert "hookline_delivery_attempts_total{" not in metrics

    await upstream.log.append(
        WebhookPolicyUpdated(at=datetime.now(UTC), policy_id="pol_off", changes={"disabled": False})
    )
    enabled = upstream.log.table.get(off.id)
    assert enabled is not None
    task = await upstream.deliver(enabled, revision=upstream.log.table.offset)
    [request] = await receiver.wait_for(1, path="/off", timeout_s=10)
    assert request.headers["webhook-id"] == task.delivery_id
    assert "jwt" in json.loads(request.body)
