"""Deliveries: stable ids, the body a subscriber receives, and `last_error`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from schemas.deliveries import (
    DeliveredPayload,
    DeliveryAttempted,
    Outcome,
    delivery_id_for,
)
from schemas.events import Event

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def attempted(outcome: Outcome, error: str | None = None) -> DeliveryAttempted:
    return DeliveryAttempted(
        delivery_id="msg_1",
        event_id="evt_1",
        event_type="problem.update",
        webhook_id="wh_1",
        attempt=1,
        at=AT,
        outcome=outcome,
        error=error,
    )


def test_delivery_id_is_stable() -> None:
    """The same event and webhook always give the same delivery id."""
    assert delivery_id_for("evt_1", "wh_1") == delivery_id_for("evt_1", "wh_1")
    assert delivery_id_for("evt_1", "wh_1").startswith("msg_")


def test_delivery_id_differs_per_event_and_per_webhook() -> None:
    """Another event or another webhook gives another delivery id."""
    ids = {
        delivery_id_for("evt_1", "wh_1"),
        delivery_id_for("evt_2", "wh_1"),
        delivery_id_for("evt_1", "wh_2"),
        delivery_id_for("evt_1wh", "_1"),
    }
    assert len(ids) == 4


def test_body_leaves_out_absent_optional_fields(make_event: Callable[..., Event]) -> None:
    """object_id, account and source are left out of the body when the event has none."""
    body = json.loads(DeliveredPayload.of(make_event(), "wh_1").body())
    assert set(body) == {"id", "type", "timestamp", "webhook_id", "data"}
    assert (body["id"], body["type"], body["webhook_id"]) == ("evt_1", "problem.update", "wh_1")


def test_body_carries_the_optional_fields_when_set(make_event: Callable[..., Event]) -> None:
    """object_id, account and source are in the body when the event has them."""
    event = make_event(object_id=12345, account="acme", source="itsm")
    body = json.loads(DeliveredPayload.of(event, "wh_1").body())
    assert (body["object_id"], body["account"], body["source"]) == (12345, "acme", "itsm")


def test_body_keeps_nulls_and_key_order_inside_data(make_event: Callable[..., Event]) -> None:
    """`data` is delivered exactly as sent: its nulls and its key order are kept."""
    data = {"z": 1, "a": None, "nested": {"y": None, "b": [None, 2]}, "m": "x"}
    body = DeliveredPayload.of(make_event(data=data), "wh_1").body()
    delivered = json.loads(body)["data"]
    assert delivered == data
    assert list(delivered) == ["z", "a", "nested", "m"]
    assert list(delivered["nested"]) == ["y", "b"]


def test_body_timestamp_is_the_event_time(make_event: Callable[..., Event]) -> None:
    """The body's timestamp is when the event happened."""
    body = json.loads(DeliveredPayload.of(make_event(), "wh_1").body())
    assert datetime.fromisoformat(body["timestamp"]) == AT
