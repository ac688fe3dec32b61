"""The key a webhook policy is created with: what the sender signs with (kept in the stream), and
what a subscriber verifies with (shown once, in the answer to the create)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from schemas.webhook_policies import JwtAlg

RSA_KEY_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537
# The curve of each ECDSA algorithm (RFC 7518 §3.4): es512 is P-521, not a 512-bit curve.
EC_CURVES: dict[str, ec.EllipticCurve] = {
    "es256": ec.SECP256R1(),
    "es384": ec.SECP384R1(),
    "es512": ec.SECP521R1(),
}
# Random bytes of an HMAC secret: 64, as long as the longest hash (SHA-512) takes whole (RFC
# 7518 §3.2 asks for at least the hash's length), written URL-safe base64 (86 characters).
HMAC_SECRET_BYTES = 64


@dataclass(frozen=True, slots=True)
class PolicyKey:
    """`signing_key` is what the sender signs with: a PKCS#8 PEM private key (rs*, es*), the
    shared secret (hs*), or None (none). `public_key` (PEM) or `secret` is what the subscriber
    verifies with."""

    signing_key: str | None = field(repr=False)
    public_key: str | None = None
    secret: str | None = field(default=None, repr=False)


def new_policy_key(alg: JwtAlg) -> PolicyKey:
    """A fresh key for `alg`. An RSA key takes tens of milliseconds or more: call it in a thread."""
    if alg == "none":
        return PolicyKey(signing_key=None)
    if alg.startswith("hs"):
        secret = secrets.token_urlsafe(HMAC_SECRET_BYTES)
        return PolicyKey(signing_key=secret, secret=secret)
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg.startswith("rs"):
        private = rsa.generate_private_key(
            public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS
        )
    else:
        private = ec.generate_private_key(EC_CURVES[alg])
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return PolicyKey(signing_key=pem, public_key=public)
