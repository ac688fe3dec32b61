"""The key a webhook policy is created with, for each family of algorithms."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from schemas.webhook_policies import JwtAlg
from services.router.policy_keys import HMAC_SECRET_BYTES, RSA_KEY_BITS, new_policy_key


@pytest.mark.parametrize("alg", ["rs256", "rs384", "rs512"])
def test_rs_policies_get_a_2048_bit_rsa_key_whose_public_half_is_shown(alg: JwtAlg) -> None:
    key = new_policy_key(alg)
    assert key.signing_key is not None
    assert key.public_key is not None
    assert key.secret is None
    assert key.signing_key.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    private = load_pem_private_key(key.signing_key.encode(), password=None)
    public = load_pem_public_key(key.public_key.encode())
    assert isinstance(private, rsa.RSAPrivateKey)
    assert isinstance(public, rsa.RSAPublicKey)
    assert private.key_size >= RSA_KEY_BITS >= 2048
    assert public.public_numbers() == private.public_key().public_numbers()
    assert "PRIVATE" not in key.public_key


@pytest.mark.parametrize(
    ("alg", "curve"), [("es256", "secp256r1"), ("es384", "secp384r1"), ("es512", "secp521r1")]
)
def test_es_policies_get_a_key_on_their_algorithms_curve(alg: JwtAlg, curve: str) -> None:
    key = new_policy_key(alg)
    assert key.signing_key is not None
    assert key.public_key is not None
    private = load_pem_private_key(key.signing_key.encode(), password=None)
    public = load_pem_public_key(key.public_key.encode())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert private.curve.name == public.curve.name == curve
    assert public.public_numbers() == private.public_key().public_numbers()


@pytest.mark.parametrize("alg", ["hs256", "hs384", "hs512"])
def test_hs_policies_get_a_shared_secret_as_long_as_sha512_wants(alg: JwtAlg) -> None:
    """The shared secret is both what signs and what is shown; its ASCII is the HMAC key."""
    key = new_policy_key(alg)
    assert key.secret is not None
    assert key.signing_key == key.secret
    assert key.public_key is None
    assert key.secret.isascii()
    assert len(key.secret.encode()) >= HMAC_SECRET_BYTES
    assert new_policy_key(alg).secret != key.secret


def test_alg_none_has_no_key() -> None:
    key = new_policy_key("none")
    assert (key.signing_key, key.public_key, key.secret) == (None, None, None)


def test_the_key_is_never_in_a_repr() -> None:
    """A key object logged by mistake does not show what signs."""
    algs: tuple[JwtAlg, ...] = ("hs256", "es256")
    for alg in algs:
        key = new_policy_key(alg)
        assert key.signing_key is not None
        assert key.signing_key not in repr(key)
