"""Deliveries: stable ids, the body a subscriber receives, and `last_error`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from schemas.deliveries import (
    DELIVERY_TASK,
    DeliveredPayload,
    DeliveryAttempted,
    DeliveryTask,
    Outcome,
    delivery_id_for,
)
from schemas.events import Event
from services.runtime.json_body import loads_strict

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
    """`data` is delivered as the same JSON value: its nulls and its key order are kept."""
    data = {"z": 1, "a": None, "nested": {"y": None, "b": [None, 2]}, "m": "x"}
    body = DeliveredPayload.of(make_event(data=data), "wh_1").body()
    delivered = json.loads(body)["data"]
    assert delivered == data
    assert list(delivered) == ["z", "a", "nested", "m"]
    assert list(delivered["nested"]) == ["y", "b"]


@pytest.mark.parametrize(
    ("sent", "delivered"),
    [
        (b'{"z": 1,\n "a": {"y": [1, true, null]}}', b'{"z":1,"a":{"y":[1,true,null]}}'),
        (b'{"n": 1.50}', b'{"n":1.5}'),
        (b'{"n": 1e2}', b'{"n":100.0}'),
        (b'{"n": 1E-7}', b'{"n":1e-7}'),
        (b'{"n": 1e21}', b'{"n":1e+21}'),
        (b'{"n": 0.1000000000000000055511151231257827}', b'{"n":0.1}'),
        (b'{"n": -0}', b'{"n":0}'),
        (b'{"n": -0.0}', b'{"n":-0.0}'),
        (b'{"n": 9223372036854775807}', b'{"n":9223372036854775807}'),
        (rb'{"s": "\u00e9\/\t\u0001\ud83d\ude00"}', '{"s":"é/\\t\\u0001😀"}'.encode()),
    ],
)
def test_data_is_delivered_as_its_json_value_encoded_again(
    sent: bytes, delivered: bytes, make_event: Callable[..., Event]
) -> None:
    """What POST /events reads arrives as the same JSON value, not the same bytes, after a trip
    through the deliver queue (README: what `data` keeps)."""
    event = make_event(data=loads_strict(sent))
    task = DeliveryTask(delivery_id="msg_1", webhook_id="wh_1", webhook_revision=1, event=event)
    travelled = DELIVERY_TASK.validate_json(task.model_dump_json())
    body = DeliveredPayload.of(travelled.event, "wh_1").body()
    assert body.endswith(b'"data":' + delivered + b"}"), body


def test_body_timestamp_is_the_event_time(make_event: Callable[..., Event]) -> None:
    """The body's timestamp is when the event happened."""
    body = json.loads(DeliveredPayload.of(make_event(), "wh_1").body())
    assert datetime.fromisoformat(body["timestamp"]) == AT


def test_a_redriven_task_is_the_next_attempt_on_a_fresh_schedule(
    make_event: Callable[..., Event],
) -> None:
    task = DeliveryTask(
        delivery_id="msg_1", webhook_id="wh_1", webhook_revision=3, attempt=8, event=make_event()
    )
    assert task.attempt_of_schedule == 8
    redriven = task.redriven()
    assert (redriven.attempt, redriven.schedule_from, redriven.attempt_of_schedule) == (9, 9, 1)
    assert (redriven.delivery_id, redriven.event) == (task.delivery_id, task.event)
    # Its retry goes on counting in the new schedule.
    retry = redriven.model_copy(update={"attempt": 10})
    assert retry.attempt_of_schedule == 2
    # A task written before redrives existed reads as on its first schedule.
    old = json.loads(task.model_dump_json())
    del old["schedule_from"]
    assert DELIVERY_TASK.validate_python(old).attempt_of_schedule == 8


def test_a_schedule_cannot_start_after_its_attempt(make_event: Callable[..., Event]) -> None:
    with pytest.raises(ValueError, match="schedule_from is after attempt"):
        DeliveryTask(
            delivery_id="msg_1",
            webhook_id="wh_1",
            webhook_revision=0,
            attempt=2,
            schedule_from=3,
            event=make_event(),
        )
