"""The body of a webhook that names a policy: a token a subscriber verifies with PyJWT, for every
algorithm, carrying the body it would otherwise get; and never an unsigned body instead."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from standardwebhooks.webhooks import Webhook
from yarl import URL

from schemas.deliveries import DeliveredPayload, DeliveryTask
from schemas.events import Event
from schemas.webhook_policies import JWT_ALGS, JwtAlg, PolicyState
from schemas.webhooks import WebhookState
from services.router.policy_keys import PolicyKey, new_policy_key
from services.runtime.policy_table import PolicyTable
from services.sender import jwt_body
from services.sender.jwt_body import PolicyTokens
from services.sender.not_sent import NotSent, RequestNotPrepared
from services.sender.request import prepare_request

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BODY = b'{"id":"evt_1","type":"a.b","data":{"n":1.5,"s":"\xc3\xa9","l":[null,true]}}'
# One key per algorithm for the whole module: RSA keys take a while to make.
KEYS: dict[str, PolicyKey] = {}


def key_for(alg: JwtAlg) -> PolicyKey:
    if alg not in KEYS:
        KEYS[alg] = new_policy_key(alg)
    return KEYS[alg]


def verifying_key(alg: JwtAlg) -> str:
    """What the create answer showed: the public key, or the shared secret."""
    shown = key_for(alg)
    key = shown.public_key or shown.secret
    assert key is not None
    return key


def policy(alg: JwtAlg = "rs256", **fields: Any) -> PolicyState:
    values: dict[str, Any] = {
        "id": f"pol_{alg}",
        "name": alg,
        "disabled": False,
        "jwt_alg": alg,
        "jwt_audience": "https://subscriber.example.com",
        "jwt_claim_expires_in": 90,
        "signing_key": key_for(alg).signing_key,
        "created_at": AT,
        "updated_at": AT,
        "revision": 0,
    }
    values.update(fields)
    return PolicyState(**values)


def tokens_with(*policies: PolicyState, **options: Any) -> PolicyTokens:
    table = PolicyTable()
    for state in policies:
        table.policies[state.id] = state
    return PolicyTokens(table, **options)


def verify(token: str, alg: JwtAlg, **options: Any) -> dict[str, Any]:
    """As a subscriber would, with PyJWT and what the create answer showed."""
    if alg == "none":
        claims: dict[str, Any] = jwt.decode(
            token, options={"verify_signature": False}, audience=options.get("audience")
        )
        return claims
    verified: dict[str, Any] = jwt.decode(
        token,
        verifying_key(alg),
        algorithms=[alg.upper()],
        issuer="hookline",
        options={"require": ["exp", "iat", "iss", "jti"]},
        **options,
    )
    return verified


@pytest.mark.parametrize("alg", JWT_ALGS)
def test_every_alg_makes_a_token_pyjwt_verifies_with_what_the_create_showed(
    alg: JwtAlg,
) -> None:
    """`{"jwt": …}`: its `data` is the body as a JSON value; `iat`, `exp` = `iat` + the policy's
    lifetime, `aud`, `iss`, `jti` = the delivery id; the header names the policy as `kid`."""
    now_s = int(time.time())
    state = policy(alg)
    wrapped = tokens_with(state).wrap(state.id, BODY, "msg_1", now_s)
    assert list(wrapped) == ["jwt"]
    token = wrapped["jwt"]
    claims = verify(token, alg, audience="https://subscriber.example.com")
    assert claims == {
        "iss": "hookline",
        "iat": now_s,
        "exp": now_s + 90,
        "jti": "msg_1",
        "aud": "https://subscriber.example.com",
        "data": json.loads(BODY),
    }
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"], header["typ"]) == (
        "none" if alg == "none" else alg.upper(),
        state.id,
        "JWT",
    )
    if alg == "none":
        assert token.endswith(".")  # unsigned: an empty signature


@pytest.mark.parametrize("alg", ["hs256", "rs256", "es384"])
def test_a_token_signed_with_another_key_does_not_verify(alg: JwtAlg) -> None:
    """The check can fail: a policy's token does not verify with another policy's key."""
    other = new_policy_key(alg)
    state = policy(alg, signing_key=other.signing_key)
    wrapped = tokens_with(state).wrap(state.id, BODY, "msg_1", int(time.time()))
    with pytest.raises(jwt.InvalidSignatureError):
        verify(wrapped["jwt"], alg, audience="https://subscriber.example.com")


def test_a_policy_without_audience_sends_no_aud_and_the_issuer_is_a_setting() -> None:
    state = policy("es256", jwt_audience=None)
    tokens = tokens_with(state, issuer="https://hooks.example.com")
    wrapped = tokens.wrap(state.id, BODY, "msg_1", int(time.time()))
    token = wrapped["jwt"]
    claims = jwt.decode(
        token,
        verifying_key("es256"),
        algorithms=["ES256"],
        issuer="https://hooks.example.com",
    )
    assert "aud" not in claims
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(token, verifying_key("es256"), algorithms=["ES256"], issuer="hookline")


def test_an_expired_token_is_refused_by_the_subscriber() -> None:
    """`exp` is real: a token made longer ago than the policy's lifetime no longer verifies."""
    state = policy("hs256", jwt_claim_expires_in=10)
    wrapped = tokens_with(state).wrap(state.id, BODY, "msg_1", int(time.time()) - 11)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(wrapped["jwt"], "hs256", audience="https://subscriber.example.com")


@pytest.mark.parametrize(
    ("tokens", "why", "words"),
    [
        (lambda: tokens_with(policy(disabled=True)), "policy_disabled", "is disabled"),
        (lambda: tokens_with(), "policy_missing", "does not exist"),
        (
            lambda: tokens_with(policy(signing_key="not a pem")),
            "policy_unusable",
            "no usable key",
        ),
        (lambda: tokens_with(policy(signing_key=None)), "policy_unusable", "no usable key"),
        (
            lambda: tokens_with(policy("rs256", signing_key=key_for("es256").signing_key)),
            "policy_unusable",
            "no usable key",
        ),
    ],
)
def test_a_policy_that_cannot_sign_is_never_sent_unsigned(
    tokens: Callable[[], PolicyTokens], why: str, words: str
) -> None:
    """Disabled, gone, or holding no usable key: no body at all, and a reason naming the
    policy."""
    with pytest.raises(RequestNotPrepared) as caught:
        tokens().wrap("pol_rs256", BODY, "msg_1", int(time.time()))
    not_sent = caught.value.not_sent
    assert isinstance(not_sent, NotSent)
    assert not_sent.why == why
    assert "pol_rs256" in not_sent.reason
    assert words in not_sent.reason


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every PEM the sender loads."""
    loaded: list[bytes] = []

    def counting(data: bytes, password: bytes | None, **options: Any) -> Any:
        loaded.append(data)
        return load_pem_private_key(data, password, **options)

    monkeypatch.setattr(jwt_body, "load_pem_private_key", counting)
    return loaded


def test_a_key_is_loaded_once_per_policy(loads: list[bytes]) -> None:
    """Loading a PEM costs more than signing with it: it is done once per policy."""
    rs, es = policy("rs256"), policy("es256")
    tokens = tokens_with(rs, es)
    for _ in range(3):
        tokens.wrap(rs.id, BODY, "msg_1", int(time.time()))
        tokens.wrap(es.id, BODY, "msg_1", int(time.time()))
    assert len(loads) == 2


def test_the_key_cache_is_bounded_and_keeps_the_keys_in_use(loads: list[bytes]) -> None:
    """Past the bound the key used least recently goes, and is loaded again when needed."""
    states = [policy("es256", id=f"pol_{n}") for n in range(3)]
    tokens = tokens_with(*states, cache_size=2)
    for n in (0, 1, 0, 2):  # pol_1 is the one used least recently when pol_2 comes
        tokens.wrap(states[n].id, BODY, "msg_1", int(time.time()))
    assert len(loads) == 3
    tokens.wrap(states[0].id, BODY, "msg_1", int(time.time()))
    assert len(loads) == 3
    tokens.wrap(states[1].id, BODY, "msg_1", int(time.time()))
    assert len(loads) == 4


# --- the hook in prepare_request ------------------------------------------------------------


def task_for(event: Event, webhook: WebhookState) -> DeliveryTask:
    return DeliveryTask(
        delivery_id="msg_abc", webhook_id=webhook.id, webhook_revision=3, event=event
    )


def test_prepare_request_sends_the_token_signed_as_standard_webhooks_says(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    """A webhook naming a policy is sent `{"jwt": …}` as application/json whose `data` is the
    body it would otherwise get; the Standard Webhooks signature signs that final body."""
    state = policy("rs256")
    event = make_event(object_id=7, data={"b": None, "a": 1})
    webhook = make_webhook(webhook_policy=state.id)
    now_s = int(time.time())
    request = prepare_request(task_for(event, webhook), webhook, now_s, tokens_with(state))
    assert request.headers["content-type"] == "application/json"
    verified = Webhook(webhook.secret).verify(request.body, request.headers)
    claims = verify(verified["jwt"], "rs256", audience="https://subscriber.example.com")
    assert claims["data"] == json.loads(DeliveredPayload.of(event, webhook.id).body())
    assert claims["jti"] == request.headers["webhook-id"] == "msg_abc"
    plain = make_webhook()
    unsigned = prepare_request(task_for(event, plain), plain, now_s, tokens_with(state))
    assert unsigned.body == DeliveredPayload.of(event, plain.id).body()


def test_prepare_request_refuses_a_webhook_whose_policy_cannot_sign(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    webhook = make_webhook(webhook_policy="pol_gone")
    with pytest.raises(RequestNotPrepared):
        prepare_request(task_for(make_event(), webhook), webhook, 0, tokens_with())


def test_a_get_webhook_with_a_policy_sends_the_token_as_the_jwt_parameter(
    make_event: Callable[..., Event], make_webhook: Callable[..., WebhookState]
) -> None:
    """GET carries `jwt=<token>` in the query, whose `data` is the body in the webhook's format,
    and the Standard Webhooks signature signs that query."""
    state = policy("es256")
    event = make_event(type="recordApproval", data={"userId": "KXUSR1", "isControlled": True})
    webhook = make_webhook(webhook_policy=state.id, method="GET", format="raw")
    request = prepare_request(
        task_for(event, webhook), webhook, int(time.time()), tokens_with(state)
    )
    assert (request.method, request.body) == ("GET", b"")
    query = URL(request.url).query
    assert list(query) == ["jwt"]
    claims = verify(query["jwt"], "es256", audience="https://subscriber.example.com")
    assert claims["data"] == {"userId": "KXUSR1", "isControlled": True}
