"""Which attempts already have an outcome in the delivery log, and what each decided."""

from __future__ import annotations

import pytest

from schemas.deliveries import (
    ATTEMPTS_KIND,
    RECORD_IDS_HEADER,
    DeliveryAttempted,
    Outcome,
    RecordId,
)
from services.runtime.record_batches import join_ids
from services.runtime.streams import StreamRecord
from services.sender.settled import SettledAttempts


def record_id(
    attempt: int, outcome: Outcome = "retry_scheduled", delay_s: float | None = 5.0
) -> RecordId:
    delay = delay_s if outcome == "retry_scheduled" else None
    return RecordId("msg_1", attempt, outcome, 1_795_699_000_000, delay)


def logged(
    delivery_id: str, attempt: int, outcome: Outcome, *, error: str | None = None
) -> DeliveryAttempted:
    """An attempt's record as the delivery log holds it."""
    return DeliveryAttempted(
        delivery_id=delivery_id,
        event_id="e",
        event_type="a.b",
        webhook_id="wh",
        attempt=attempt,
        at="2026-01-01T00:00:00Z",
        outcome=outcome,
        error=error,
    )


def test_the_latest_attempt_is_kept_with_its_decision() -> None:
    """The highest recorded attempt wins; an older record read late changes nothing."""
    settled = SettledAttempts(capacity=1000)
    settled.add(record_id(2, delay_s=300.0))
    settled.add(record_id(1))
    latest = settled.latest("msg_1")
    assert latest is not None
    assert (latest.attempt, latest.outcome, latest.next_attempt_in_s) == (
        2,
        "retry_scheduled",
        300.0,
    )
    assert settled.latest("msg_2") is None


def test_memory_keeps_only_the_latest_deliveries() -> None:
    """Beyond its capacity the oldest deliveries are forgotten."""
    settled = SettledAttempts(capacity=1000)
    for n in range(1500):
        settled.add(RecordId(f"msg_{n}", 1, "delivered", 0))
    assert len(settled) == 1000
    assert settled.latest("msg_0") is None
    assert settled.latest("msg_1499") is not None


def test_records_are_read_from_their_message_id() -> None:
    """A record's message id says which attempt it is and what it decided: no body parsing."""
    settled = SettledAttempts(capacity=1000)
    settled.apply_record(StreamRecord(b"not even json", 0, str(record_id(3, delay_s=1.5)), None))
    latest = settled.latest("msg_1")
    assert latest is not None
    assert (latest.attempt, latest.next_attempt_in_s) == (3, 1.5)


def test_a_dead_letters_reason_and_older_records_come_from_the_body() -> None:
    """A dead-lettered record keeps its reason (to dead-letter again); a record without a
    readable id is read from its body; junk is skipped."""
    dead = logged("msg_d", 4, "dead_lettered", error="503 Service Unavailable")
    settled = SettledAttempts(capacity=1000)
    body = dead.model_dump_json().encode()
    settled.apply_record(StreamRecord(body, 0, str(RecordId.of(dead)), None))
    settled.apply_record(StreamRecord(body.replace(b"msg_d", b"msg_old"), 1, None, None))
    settled.apply_record(StreamRecord(b"[]", 2, None, None))
    for delivery_id in ("msg_d", "msg_old"):
        latest = settled.latest(delivery_id)
        assert latest is not None
        assert (latest.attempt, latest.outcome, latest.error) == (
            4,
            "dead_lettered",
            "503 Service Unavailable",
        )


def test_record_ids_round_trip() -> None:
    """A record id names the delivery, the attempt, the outcome and the next delay."""
    for original in (record_id(3, delay_s=0.25), RecordId("msg_x", 1, "delivered", 7)):
        assert RecordId.parse(str(original)) == original
    retry = record_id(2, delay_s=300.0)
    assert str(retry) == "msg_1/2/retry_scheduled/1795699000000/300000"
    assert retry.next_attempt_due_ms == 1_795_699_300_000


@pytest.mark.parametrize(
    "other",
    [
        None,
        "",
        "msg_x",
        "msg_x/3",
        "/3/delivered",
        "msg_x/three/delivered",
        "msg_x/3/exploded",
        "msg_x/3/retry_scheduled/soon",
        "a/b/c/d/e",
    ],
)
def test_anything_else_is_no_record_id(other: str | None) -> None:
    """Ids that are not record ids say nothing."""
    assert RecordId.parse(other) is None


def test_a_batch_is_read_from_its_record_ids_and_its_dead_letters_from_the_body() -> None:
    """A batch's header lists its records' ids, in order: no body parsing, unless one of them was
    dead-lettered (its reason is in the body)."""
    settled = SettledAttempts(capacity=1000)
    ids = [str(RecordId(f"msg_{n}", 1, "delivered", 0)) for n in range(3)]
    settled.apply_record(
        StreamRecord(
            b"not json", 0, None, ATTEMPTS_KIND, headers={RECORD_IDS_HEADER: join_ids(ids)}
        )
    )
    assert [settled.latest(f"msg_{n}") is not None for n in range(3)] == [True] * 3
    dead = logged("msg_d", 2, "dead_lettered", error="410 Gone")
    body = b"[" + dead.model_dump_json().encode() + b"]"
    headers = {RECORD_IDS_HEADER: str(RecordId.of(dead))}
    settled.apply_record(StreamRecord(body, 1, None, ATTEMPTS_KIND, headers=headers))
    latest = settled.latest("msg_d")
    assert latest is not None
    assert (latest.attempt, latest.outcome, latest.error) == (2, "dead_lettered", "410 Gone")


def test_a_batch_without_readable_ids_is_read_from_its_body() -> None:
    record = logged("msg_b", 1, "delivered")
    body = b"[" + record.model_dump_json().encode() + b"]"
    settled = SettledAttempts(capacity=1000)
    variants: list[dict[str, object]] = [
        {},
        {RECORD_IDS_HEADER: "junk"},
        {RECORD_IDS_HEADER: 7},
        {RECORD_IDS_HEADER: [str(RecordId.of(record))]},  # an array: streams drop those
    ]
    for n, headers in enumerate(variants):
        settled.apply_record(StreamRecord(body, n, None, ATTEMPTS_KIND, headers=headers))
    assert settled.latest("msg_b") is not None
    assert len(settled) == 1
