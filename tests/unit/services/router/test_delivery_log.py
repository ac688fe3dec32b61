"""The delivery log's read side: each webhook's last_error."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.deliveries import DeliveryAttempted, Outcome
from services.router.delivery_log import DeliveryLogView

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(webhook_id: str, outcome: Outcome, error: str | None = None) -> bytes:
    return (
        DeliveryAttempted(
            delivery_id="msg_1",
            event_id="evt_1",
            event_type="problem.update",
            webhook_id=webhook_id,
            attempt=1,
            at=AT,
            outcome=outcome,
            error=error,
        )
        .model_dump_json()
        .encode()
    )


def test_last_error_follows_the_records_of_each_webhook() -> None:
    """A failure sets a webhook's last_error, a delivery clears it, other webhooks are apart."""
    view = DeliveryLogView()
    view.apply_bytes(record("wh_1", "retry_scheduled", "500 Internal Server Error"), 0)
    view.apply_bytes(record("wh_2", "dead_lettered", "404 Not Found"), 1)
    assert view.last_error("wh_1") == "500 Internal Server Error"
    assert view.last_error("wh_2") == "404 Not Found"
    view.apply_bytes(record("wh_1", "delivered"), 2)
    assert view.last_error("wh_1") is None
    assert view.last_error("wh_2") == "404 Not Found"
    assert view.last_error("wh_unknown") is None


def test_cancelled_keeps_the_last_error() -> None:
    """A cancelled delivery leaves last_error as it was."""
    view = DeliveryLogView()
    view.apply_bytes(record("wh_1", "failed", "timeout after 15s"), 0)
    view.apply_bytes(record("wh_1", "cancelled"), 1)
    assert view.last_error("wh_1") == "timeout after 15s"


def test_an_unreadable_record_is_ignored() -> None:
    """Bad JSON or a record of the wrong shape changes nothing and raises nothing."""
    view = DeliveryLogView()
    view.apply_bytes(record("wh_1", "failed", "404 Not Found"), 0)
    view.apply_bytes(b"not json", 1)
    view.apply_bytes(b'{"kind": "delivery.attempted", "webhook_id": "wh_1"}', 2)
    view.apply_bytes(b"\xff\xfe", 3)
    assert view.last_error("wh_1") == "404 Not Found"
