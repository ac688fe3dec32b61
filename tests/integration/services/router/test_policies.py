"""The webhook policies API of the router in-process on the real broker, and webhooks naming
policies."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from pydantic import SecretStr

from schemas.webhook_policies import WebhookPolicyCreated
from services.router.app import create_app
from services.router.settings import RouterSettings
from tests.conftest import AppServer
from tests.integration.services.router.conftest import AUTH, RouterFactory, create_webhook
from tests.support.broker import read_stream
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ACME = {"Authorization": "Bearer acme-token"}


async def create_policy(client: TestClient[Any, Any], **fields: Any) -> dict[str, Any]:
    response = await client.post("/webhook_policies", json=fields, headers=AUTH)
    assert response.status == 201, await response.text()
    made: dict[str, Any] = await response.json()
    assert response.headers["Location"] == f"/webhook_policies/{made['id']}"
    return made


async def errors_of(response: Any) -> list[tuple[str, str]]:
    body = await response.json()
    return [(error["field"], error["message"]) for error in body.get("errors", [])]


async def test_policy_lifecycle_through_the_api(router: TestClient[Any, Any]) -> None:
    """Create (the key's public half shown once), read, list by state, patch, delete."""
    made = await create_policy(
        router, name="Signed", jwt_alg="rs256", jwt_audience="https://subscriber.example.com"
    )
    assert made["id"].startswith("pol_")
    assert (made["name"], made["jwt_alg"], made["disabled"]) == ("Signed", "rs256", False)
    assert (made["jwt_audience"], made["jwt_claim_expires_in"]) == (
        "https://subscriber.example.com",
        60,
    )
    assert "secret" not in made
    public = load_pem_public_key(made["public_key"].encode())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size >= 2048
    policy_id = made["id"]

    shown = await (await router.get(f"/webhook_policies/{policy_id}", headers=AUTH)).json()
    assert shown == {key: value for key, value in made.items() if key != "public_key"}

    other = await create_policy(router, name="HMAC", jwt_alg="hs512", disabled=True)
    assert "public_key" not in other
    assert len(other["secret"]) >= 64
    unsigned = await create_policy(router, name="Unsigned", jwt_alg="none")
    assert "public_key" not in unsigned
    assert "secret" not in unsigned
    assert unsigned["jwt_audience"] is None  # shown as every answer shows it
    assert set(unsigned) == set(shown)

    listed = await router.get("/webhook_policies", headers=AUTH)
    assert [p["id"] for p in await listed.json()] == [unsigned["id"], other["id"], policy_id]
    assert listed.headers["X-Pagination-Total-Entries"] == "3"
    enabled = await (await router.get("/webhook_policies/enabled", headers=AUTH)).json()
    disabled = await (await router.get("/webhook_policies/disabled", headers=AUTH)).json()
    assert [p["id"] for p in enabled] == [unsigned["id"], policy_id]
    assert [p["id"] for p in disabled] == [other["id"]]
    paged = await router.get("/webhook_policies?per_page=2&page=2", headers=AUTH)
    assert [p["id"] for p in await paged.json()] == [policy_id]

    response = await router.patch(
        f"/webhook_policies/{policy_id}",
        json={"disabled": True, "jwt_audience": None, "jwt_claim_expires_in": 300, "name": "S2"},
        headers=AUTH,
    )
    assert response.status == 200
    patched = await response.json()
    assert (patched["disabled"], patched["jwt_audience"], patched["jwt_claim_expires_in"]) == (
        True,
        None,
        300,
    )
    assert (patched["name"], patched["jwt_alg"]) == ("S2", "rs256")
    assert patched["updated_at"] > patched["created_at"]
    assert "public_key" not in patched

    assert (await router.delete(f"/webhook_policies/{policy_id}", headers=AUTH)).status == 204
    assert (await router.get(f"/webhook_policies/{policy_id}", headers=AUTH)).status == 404
    assert (await router.delete(f"/webhook_policies/{policy_id}", headers=AUTH)).status == 404
    patch = {"name": "x"}
    missing = await router.patch(f"/webhook_policies/{policy_id}", json=patch, headers=AUTH)
    assert missing.status == 404


async def test_bad_input_is_a_4xx_naming_the_field(router: TestClient[Any, Any]) -> None:
    """jwt_alg cannot be patched (the 400 says why, and what to do); a wrong alg, lifetime or
    unknown field names itself; a body not sent as JSON is a 415."""
    made = await create_policy(router, name="p", jwt_alg="es256")
    path = f"/webhook_policies/{made['id']}"
    response = await router.patch(path, json={"jwt_alg": "es384"}, headers=AUTH)
    assert response.status == 400
    [(field, message)] = await errors_of(response)
    assert field == "jwt_alg"
    assert "a new one would be needed" in message
    assert "create a policy" in message
    unchanged = await (await router.get(path, headers=AUTH)).json()
    assert unchanged["jwt_alg"] == "es256"

    for body, field in [
        ({"name": "p", "jwt_alg": "ps256"}, "jwt_alg"),
        ({"name": "p"}, "jwt_alg"),
        ({"jwt_alg": "hs256"}, "name"),
        ({"name": "p", "jwt_alg": "hs256", "jwt_claim_expires_in": 5}, "jwt_claim_expires_in"),
        ({"name": "p", "jwt_alg": "hs256", "jwt_claim_expires_in": "60"}, "jwt_claim_expires_in"),
        ({"name": "p", "jwt_alg": "hs256", "public_key": "mine"}, "public_key"),
    ]:
        response = await router.post("/webhook_policies", json=body, headers=AUTH)
        assert response.status == 400, body
        assert [f for f, _ in await errors_of(response)] == [field], body
    response = await router.patch(path, json={"jwt_claim_expires_in": 86401}, headers=AUTH)
    assert [f for f, _ in await errors_of(response)] == ["jwt_claim_expires_in"]
    response = await router.patch(path, json={"disabled": None}, headers=AUTH)
    assert [f for f, _ in await errors_of(response)] == ["disabled"]
    response = await router.post("/webhook_policies", data=b"{}", headers=AUTH)
    assert response.status == 415
    listed = await (await router.get("/webhook_policies", headers=AUTH)).json()
    assert [p["id"] for p in listed] == [made["id"]], "nothing refused was stored"


async def test_the_key_lives_in_the_stream_and_in_no_answer(
    router: TestClient[Any, Any], settings: RouterSettings
) -> None:
    """The private key is in the webhooks stream (the sender signs with it) and matches the
    public key shown at creation; no answer, create included, holds it."""
    answers: list[str] = []
    response = await router.post(
        "/webhook_policies", json={"name": "p", "jwt_alg": "es512"}, headers=AUTH
    )
    answers.append(await response.text())
    made = await response.json()
    for path in ("/webhook_policies", f"/webhook_policies/{made['id']}"):
        answers.append(await (await router.get(path, headers=AUTH)).text())
    answers.append(
        await (
            await router.patch(f"/webhook_policies/{made['id']}", json={"name": "q"}, headers=AUTH)
        ).text()
    )
    [body] = await read_stream(
        settings.amqp_url.get_secret_value(),
        settings.topology.webhooks_stream,
        expect=1,
        of_type="webhook_policy.created",
    )
    record = WebhookPolicyCreated.model_validate_json(body)
    assert record.policy_id == made["id"]
    assert record.signing_key is not None
    private = load_pem_private_key(record.signing_key.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp521r1"
    public = load_pem_public_key(made["public_key"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.public_numbers() == private.public_key().public_numbers()
    body_of_key = record.signing_key.splitlines()[1]
    assert [answer for answer in answers if "PRIVATE" in answer or body_of_key in answer] == []


async def test_policies_are_for_admin_tokens_only(
    settings: RouterSettings, serve_app: AppServer
) -> None:
    """A token scoped to an account gets 403 on every call, none a 401; and a token scoped to an
    account may not name a policy on its webhooks (422), which would let one account's key sign
    what another's endpoint gets."""
    scoped = settings.model_copy(update={"account_tokens": SecretStr("acme:acme-token")})
    router = await serve_app(create_app(scoped))
    made = await create_policy(router, name="p", jwt_alg="hs256")
    calls = [
        ("GET", "/webhook_policies", None),
        ("GET", "/webhook_policies/enabled", None),
        ("GET", "/webhook_policies/disabled", None),
        ("POST", "/webhook_policies", {"name": "p", "jwt_alg": "hs256"}),
        ("GET", f"/webhook_policies/{made['id']}", None),
        ("PATCH", f"/webhook_policies/{made['id']}", {"name": "mine"}),
        ("DELETE", f"/webhook_policies/{made['id']}", None),
    ]
    for method, path, body in calls:
        response = await router.request(method, path, json=body, headers=ACME)
        assert response.status == 403, (method, path)
        response = await router.request(method, path, json=body)
        assert response.status == 401, (method, path)
    assert (await router.get(f"/webhook_policies/{made['id']}", headers=AUTH)).status == 200

    hook = {"event": "a.b", "uri": "https://e.com/a", "webhook_policy": made["id"]}
    response = await router.post("/webhooks", json=hook, headers=ACME)
    assert response.status == 422
    assert [f for f, _ in await errors_of(response)] == ["webhook_policy"]
    response = await router.post("/webhooks", json={**hook, "webhook_policy": None}, headers=ACME)
    assert response.status == 201
    acme_hook = await response.json()
    for value in (made["id"], None):
        response = await router.patch(
            f"/webhooks/{acme_hook['id']}", json={"webhook_policy": value}, headers=ACME
        )
        assert response.status == 422
    response = await router.patch(
        f"/webhooks/{acme_hook['id']}", json={"webhook_policy": made["id"]}, headers=AUTH
    )
    assert (await response.json())["webhook_policy"] == made["id"]
    shown = await (await router.get(f"/webhooks/{acme_hook['id']}", headers=ACME)).json()
    assert shown["webhook_policy"] == made["id"]


async def test_webhooks_name_existing_policies_and_a_named_policy_stays(
    router: TestClient[Any, Any],
) -> None:
    """A webhook names a policy at create or patch (null clears it); an unknown id is a 400 on
    `webhook_policy`; deleting a policy webhooks name is a 409 naming them."""
    policy = await create_policy(router, name="p", jwt_alg="rs256")
    first = await create_webhook(
        router, event="a.b", uri="https://e.com/1", webhook_policy=policy["id"]
    )
    assert first["webhook_policy"] == policy["id"]
    second = await create_webhook(router, event="a.b", uri="https://e.com/2")
    assert second["webhook_policy"] is None

    response = await router.post(
        "/webhooks",
        json={"event": "a.b", "uri": "https://e.com/3", "webhook_policy": "pol_nope"},
        headers=AUTH,
    )
    assert response.status == 400
    assert await errors_of(response) == [("webhook_policy", "no webhook policy 'pol_nope'")]
    response = await router.patch(
        f"/webhooks/{second['id']}", json={"webhook_policy": "pol_nope"}, headers=AUTH
    )
    assert response.status == 400
    assert [f for f, _ in await errors_of(response)] == ["webhook_policy"]

    response = await router.patch(
        f"/webhooks/{second['id']}", json={"webhook_policy": policy["id"]}, headers=AUTH
    )
    assert (await response.json())["webhook_policy"] == policy["id"]
    response = await router.delete(f"/webhook_policies/{policy['id']}", headers=AUTH)
    assert response.status == 409
    refused = await response.json()
    assert refused["webhooks"] == [first["id"], second["id"]]
    assert f"2 webhook(s), {first['id']}, {second['id']}:" in refused["error"]

    for webhook in (first, second):
        response = await router.patch(
            f"/webhooks/{webhook['id']}", json={"webhook_policy": None}, headers=AUTH
        )
        assert (await response.json())["webhook_policy"] is None
    assert (await router.delete(f"/webhook_policies/{policy['id']}", headers=AUTH)).status == 204


async def test_another_replica_knows_a_policy_from_the_stream(
    start_router: RouterFactory,
) -> None:
    """Policies are folded from the webhooks stream by every router: one created on a replica
    is shown by another, and a webhook created there may name it."""
    one, two = await start_router(), await start_router()
    policy = await create_policy(one, name="p", jwt_alg="es256")

    async def known() -> bool:
        response = await two.get(f"/webhook_policies/{policy['id']}", headers=AUTH)
        return response.status == 200

    await eventually(known)
    hook = await create_webhook(
        two, event="a.b", uri="https://e.com/1", webhook_policy=policy["id"]
    )
    response = await one.delete(f"/webhook_policies/{policy['id']}", headers=AUTH)
    assert response.status == 409
    assert (await response.json())["webhooks"] == [hook["id"]]
