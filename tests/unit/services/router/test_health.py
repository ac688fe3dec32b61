"""The router's health view: folded from the delivery log, checkpointed, and what disables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from schemas.deliveries import CIRCUIT_KIND, CircuitChanged, DeliveryAttempted, Outcome
from schemas.health import HealthCheckpoint, WebhookHealth
from schemas.webhooks import WebhookCreated, WebhookDeleted, WebhookState, WebhookUpdated
from services.router.health import HealthView
from services.runtime.streams import StreamRecord
from services.runtime.webhook_table import WebhookTable

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def table_with(*webhook_ids: str) -> WebhookTable:
    table = WebhookTable()
    for offset, webhook_id in enumerate(webhook_ids):
        table.apply(
            WebhookCreated(
                at=T0,
                webhook_id=webhook_id,
                name="n",
                event="a.b",
                uri="https://e.com/",
                secret="whsec_c2VjcmV0",
            ),
            offset,
        )
    return table


def record(offset: int, outcome: Outcome, minutes: float, webhook_id: str = "wh_1") -> StreamRecord:
    attempted = DeliveryAttempted(
        delivery_id=f"msg_{offset}",
        event_id="evt",
        event_type="a.b",
        webhook_id=webhook_id,
        attempt=1,
        at=T0 + timedelta(minutes=minutes),
        outcome=outcome,
        error=None if outcome == "delivered" else "500 Internal Server Error",
    )
    return StreamRecord(attempted.model_dump_json().encode(), offset, None, attempted.kind)


def test_records_fold_into_each_webhooks_health_and_move_the_offset() -> None:
    """Each webhook's health follows its own records; the view knows how far it has read."""
    view = HealthView(table_with("wh_1", "wh_2"), disable_after_s=60, disable_after_failures=3)
    view.apply_record(record(10, "retry_scheduled", 1))
    view.apply_record(record(11, "delivered", 2, "wh_2"))
    view.apply_record(StreamRecord(b"garbage", 12, None, None))
    assert view.get("wh_1").consecutive_failures == 1
    assert view.get("wh_2").last_success_at == T0 + timedelta(minutes=2)
    assert view.offset == 12
    view.apply_record(record(11, "retry_scheduled", 3))  # read again after a reconnect
    assert view.get("wh_1").consecutive_failures == 1


def test_a_webhook_failing_long_enough_is_reported_once_per_failure_past_the_bar() -> None:
    """Past both the time and the count, each further failure asks for the webhook's disabling."""
    reported: list[tuple[str, int]] = []
    view = HealthView(
        table_with("wh_1"),
        disable_after_s=120,
        disable_after_failures=3,
        on_failing_too_long=lambda webhook, health: reported.append(
            (webhook.id, health.consecutive_failures)
        ),
    )
    for offset, minutes in enumerate((0, 1, 2, 3)):
        view.apply_record(record(offset, "retry_scheduled", minutes))
    assert reported == [("wh_1", 3), ("wh_1", 4)]


def test_failing_every_other_attempt_is_never_reported() -> None:
    """An endpoint that fails only sometimes never gets disabled."""
    reported: list[str] = []
    view = HealthView(
        table_with("wh_1"),
        disable_after_s=0,
        disable_after_failures=2,
        on_failing_too_long=lambda webhook, _health: reported.append(webhook.id),
    )
    for offset in range(100):
        outcome: Outcome = "delivered" if offset % 2 else "retry_scheduled"
        view.apply_record(record(offset, outcome, offset))
    assert reported == []


def test_enabling_a_webhook_again_starts_its_streak_over() -> None:
    """After disabled → enabled, earlier failures no longer count."""
    table = table_with("wh_1")
    view = HealthView(table, disable_after_s=60, disable_after_failures=3)
    table.on_change(view.on_webhook_change)
    for offset in range(3):
        view.apply_record(record(offset, "retry_scheduled", offset))
    table.apply(
        WebhookUpdated(at=T0 + timedelta(minutes=5), webhook_id="wh_1", changes={"disabled": True}),
        10,
    )
    table.apply(
        WebhookUpdated(
            at=T0 + timedelta(minutes=6), webhook_id="wh_1", changes={"disabled": False}
        ),
        11,
    )
    health = view.get("wh_1")
    assert (health.consecutive_failures, health.failing_since) == (0, None)
    assert health.last_error == "500 Internal Server Error"


def test_a_deleted_webhooks_health_goes_with_it() -> None:
    """Deleting a webhook drops its health from the view (and from the next checkpoint)."""
    table = table_with("wh_1")
    view = HealthView(table, disable_after_s=60, disable_after_failures=3)
    table.on_change(view.on_webhook_change)
    view.apply_record(record(0, "retry_scheduled", 0))
    table.apply(WebhookDeleted(at=T0, webhook_id="wh_1"), 5)
    assert view.checkpoint().webhooks == {}


def test_a_checkpoint_is_loaded_for_webhooks_that_still_exist() -> None:
    """Loading keeps the offset and the health of existing webhooks, resetting re-enabled ones."""
    table = table_with("wh_1", "wh_2")
    failing = WebhookHealth(consecutive_failures=7, failing_since=T0, last_error="boom")
    checkpoint = HealthCheckpoint(
        at=T0, delivery_log_offset=99, webhooks={"wh_1": failing, "wh_gone": failing}
    )
    view = HealthView(table, disable_after_s=60, disable_after_failures=3)
    view.load(checkpoint)
    assert view.offset == 99
    assert view.get("wh_1") == failing
    assert view.get("wh_gone") == WebhookHealth()
    state: WebhookState | None = table.get("wh_1")
    assert state is not None
    table.webhooks["wh_1"] = replace(state, enabled_at=T0 + timedelta(days=1))
    view.load(checkpoint)
    assert view.get("wh_1").consecutive_failures == 0


def circuit(
    offset: int, sender: str, open_until: datetime | None, webhook_id: str = "wh_1"
) -> StreamRecord:
    changed = CircuitChanged(webhook_id=webhook_id, sender=sender, at=T0, open_until=open_until)
    return StreamRecord(changed.model_dump_json().encode(), offset, None, CIRCUIT_KIND)


def test_the_circuit_is_open_while_any_sender_says_so() -> None:
    table = table_with("wh_1")
    view = HealthView(table, disable_after_s=60, disable_after_failures=3)
    assert view.circuit_open_until("wh_1") is None
    view.apply_record(circuit(0, "host:1", T0 + timedelta(seconds=10)))
    view.apply_record(circuit(1, "host:2", T0 + timedelta(seconds=30)))
    assert view.circuit_open_until("wh_1") == T0 + timedelta(seconds=30)
    view.apply_record(circuit(2, "host:2", None))
    assert view.circuit_open_until("wh_1") == T0 + timedelta(seconds=10)
    view.apply_record(circuit(3, "host:1", None))
    assert view.circuit_open_until("wh_1") is None
    assert view.offset == 3
    assert view.get("wh_1") == WebhookHealth()  # a circuit is no attempt
    view.apply_record(circuit(4, "host:1", T0, webhook_id="wh_gone"))
    assert view.circuit_open_until("wh_gone") is None
