"""Standard Webhooks signatures, checked with the independent `standardwebhooks` package."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from schemas.webhooks import new_secret
from services.sender.signing import secret_key, sign, signature_headers

BODY = b'{"id":"evt_1","type":"problem.update","data":{"k":null}}'


def test_a_signature_verifies_with_standardwebhooks() -> None:
    """Headers made from a `whsec_` secret verify with the reference implementation."""
    secret = new_secret()
    headers = signature_headers([secret_key(secret)], "msg_1", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == {
        "id": "evt_1",
        "type": "problem.update",
        "data": {"k": None},
    }


def test_the_headers_carry_id_timestamp_and_a_v1_signature() -> None:
    """The three headers are the message id, the timestamp in seconds and `v1,<base64>`."""
    headers = signature_headers([secret_key(new_secret())], "msg_1", 1714564800, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1714564800"
    assert headers["webhook-signature"].startswith("v1,")


def test_two_keys_give_two_signatures_both_verifiable() -> None:
    """During a rotation both secrets sign, space separated, and each one verifies."""
    old, new = new_secret(), new_secret()
    headers = signature_headers([secret_key(old), secret_key(new)], "msg_1", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_a_changed_body_fails_verification() -> None:
    """A body altered after signing is refused by the receiver."""
    secret = new_secret()
    headers = signature_headers([secret_key(secret)], "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"null", b"0"), headers)


def test_another_secret_fails_verification() -> None:
    """A receiver with another secret refuses the signature."""
    headers = signature_headers([secret_key(new_secret())], "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_sign_covers_the_id_and_the_timestamp() -> None:
    """Another message id or timestamp gives another signature."""
    key = secret_key(new_secret())
    signature = sign(key, "msg_1", 100, BODY)
    assert sign(key, "msg_1", 100, BODY) == signature
    assert sign(key, "msg_2", 100, BODY) != signature
    assert sign(key, "msg_1", 101, BODY) != signature
