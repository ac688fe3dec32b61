"""Webhook policies folded from the webhooks stream beside the webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from schemas.webhook_policies import (
    WebhookPolicyCreated,
    WebhookPolicyDeleted,
    WebhookPolicyUpdated,
)
from schemas.webhooks import WebhookCreated
from services.runtime.streams import StreamRecord
from services.runtime.webhook_table import WebhookTable

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def policy(policy_id: str = "pol_1", **fields: Any) -> WebhookPolicyCreated:
    values: dict[str, Any] = {
        "at": AT,
        "policy_id": policy_id,
        "name": "p",
        "jwt_alg": "rs256",
        "jwt_claim_expires_in": 60,
        "signing_key": KEY,
    }
    values.update(fields)
    return WebhookPolicyCreated(**values)


def at(offset: int, record: Any) -> StreamRecord:
    body = record if isinstance(record, bytes) else record.model_dump_json().encode()
    return StreamRecord(body, offset, None, None)


def test_policy_records_fold_into_the_policies_and_advance_the_offset() -> None:
    """Policies are kept beside the webhooks, read from the same records in their order; no
    webhook listener hears of them."""
    table = WebhookTable()
    heard: list[str] = []
    table.on_change(lambda webhook_id, _state: heard.append(webhook_id))
    table.apply_record(at(0, policy("pol_1")))
    table.apply_record(at(1, policy("pol_2", jwt_alg="hs256", signing_key="s" * 86)))
    table.apply_record(
        at(2, WebhookPolicyUpdated(at=AT, policy_id="pol_1", changes={"disabled": True}))
    )
    table.apply_record(at(3, WebhookPolicyDeleted(at=AT, policy_id="pol_2")))
    first = table.policies.get("pol_1")
    assert first is not None
    assert (first.disabled, first.signing_key, first.revision) == (True, KEY, 2)
    assert table.policies.get("pol_2") is None
    assert (table.webhooks, heard, table.offset) == ({}, [], 3)


def test_a_reset_forgets_the_policies_too() -> None:
    """The stream is read again from its start: policies, like webhooks, come back from it."""
    table = WebhookTable()
    table.apply_record(at(0, policy()))
    table.reset()
    assert (table.policies.policies, table.offset) == ({}, -1)


@pytest.mark.parametrize(
    "record",
    [
        {**json.loads(policy().model_dump_json()), "jwt_alg": "rs999"},
        {**json.loads(policy().model_dump_json()), "surprise": 1},
        {
            **json.loads(
                WebhookCreated(
                    at=AT,
                    webhook_id="wh_1",
                    name="n",
                    event="a.b",
                    uri="https://example.com",
                    secret="whsec_" + "QUJD" * 8,
                ).model_dump_json()
            ),
            "uri": 7,
        },
    ],
)
def test_an_unreadable_record_is_logged_without_its_values(record: dict[str, Any]) -> None:
    """A record the table cannot read is skipped and logged saying what is wrong, but never
    quoting it: it may hold a policy's private key or a webhook's secret."""
    table = WebhookTable()
    with capture_logs() as logs:
        table.apply_record(at(0, json.dumps(record).encode()))
    assert table.offset == 0
    [line] = logs
    assert line["event"] == "webhook_log.unreadable_record"
    assert line["error"]
    for secret in ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "END PRIVATE KEY", "QUJDQUJD"):
        assert secret not in line["error"]
