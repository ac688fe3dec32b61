"""Standard Webhooks signatures (https://www.standardwebhooks.com/): HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}` with the base64 secret after `whsec_`."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from schemas.webhooks import SECRET_PREFIX


def secret_key(secret: str) -> bytes:
    """The raw HMAC key of a `whsec_…` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def unsigned_headers(message_id: str, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks id and timestamp, for a webhook that turned signing off."""
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}


def signature_headers(
    keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers; several keys give several signatures (rotation)."""
    return {
        **unsigned_headers(message_id, timestamp),
        "webhook-signature": " ".join(sign(key, message_id, timestamp, body) for key in keys),
    }
