"""The body of a webhook that names a policy: `{"jwt": "<token>"}`, whose `data` claim is the body
the webhook would otherwise get (as a JSON value), signed with the policy's key.

The claims: `iss` (the sender's issuer), `iat` (the attempt's time), `exp` (`iat` plus the
policy's `jwt_claim_expires_in`), `aud` (when the policy has one), `jti` (the delivery id, the
same on every attempt, as `webhook-id` is) and `data`; the header names the policy as its `kid`.
A token is made at each attempt, so a retry's is fresh.

A webhook whose policy is disabled, or gone, is never sent its body unsigned: a subscriber that
expects a token would refuse it, or worse, take it. The attempt is not made (RequestNotPrepared).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from schemas.webhook_policies import PolicyState, jws_algorithm
from services.runtime.policy_table import PolicyTable
from services.sender.not_sent import NotSent, RequestNotPrepared

DEFAULT_ISSUER = "hookline"
# Loaded keys kept: a PEM is parsed once per policy, not once per call (it costs more than a
# signature). Policies are few; the bound is a safety net.
KEY_CACHE_SIZE = 1024
_KEY_TYPES: dict[str, type] = {"rs": rsa.RSAPrivateKey, "es": ec.EllipticCurvePrivateKey}


class PolicyTokens:
    """Wraps bodies in tokens signed with the keys of the policies in `policies`."""

    def __init__(
        self,
        policies: PolicyTable,
        *,
        issuer: str = DEFAULT_ISSUER,
        cache_size: int = KEY_CACHE_SIZE,
    ) -> None:
        self._policies = policies
        self._issuer = issuer
        self._cache_size = cache_size
        # policy id → (the key as stored, the key as loaded)
        self._keys: OrderedDict[str, tuple[str | None, Any]] = OrderedDict()

    def wrap(self, policy_id: str, body: bytes, delivery_id: str, now_s: int) -> dict[str, str]:
        """`{"jwt": <token>}`: the value sent instead of `body`, which is the token's `data`.

        RequestNotPrepared when the policy is disabled or does not exist.
        """
        policy = self._policies.get(policy_id)
        if policy is None:
            raise RequestNotPrepared(
                NotSent("policy_missing", f"webhook policy {policy_id} does not exist: not sent")
            )
        if policy.disabled:
            raise RequestNotPrepared(
                NotSent("policy_disabled", f"webhook policy {policy_id} is disabled: not sent")
            )
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "iat": now_s,
            "exp": now_s + policy.jwt_claim_expires_in,
            "jti": delivery_id,
            "data": json.loads(body),
        }
        if policy.jwt_audience is not None:
            claims["aud"] = policy.jwt_audience
        token = jwt.encode(
            claims,
            self._key(policy),
            algorithm=jws_algorithm(policy.jwt_alg),
            headers={"kid": policy.id},
        )
        return {"jwt": token}

    def _key(self, policy: PolicyState) -> Any:
        """The policy's key as PyJWT signs with it, loaded once."""
        cached = self._keys.get(policy.id)
        if cached is not None and cached[0] == policy.signing_key:
            self._keys.move_to_end(policy.id)
            return cached[1]
        loaded = _load(policy)
        self._keys[policy.id] = (policy.signing_key, loaded)
        self._keys.move_to_end(policy.id)
        while len(self._keys) > self._cache_size:
            self._keys.popitem(last=False)
        return loaded


def _load(policy: PolicyState) -> Any:
    """An asymmetric key object for rs* and es*, the secret's bytes for hs*, None for none.

    RequestNotPrepared when the stream holds no usable key for it (never so for a key the router
    made): every delivery would fail alike, so none crashes its consumer.
    """
    if policy.jwt_alg == "none":
        return None
    try:
        if policy.signing_key is None:
            raise ValueError("no key")
        if policy.jwt_alg.startswith("hs"):
            return policy.signing_key.encode()
        # The router made the key: checking an RSA key's mathematics again would take a sender
        # about 35 ms of its event loop per policy.
        key = load_pem_private_key(
            policy.signing_key.encode(), password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(key, _KEY_TYPES[policy.jwt_alg[:2]]):
            raise ValueError(f"not a key for {policy.jwt_alg}")
        return key
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise RequestNotPrepared(
            NotSent("policy_unusable", f"webhook policy {policy.id} has no usable key: not sent")
        ) from None
