"""Which attempts already have an outcome in the delivery log."""

from __future__ import annotations

from schemas.deliveries import log_record_id, parse_log_record_id
from services.runtime.streams import StreamRecord
from services.sender.settled import SettledAttempts


def test_an_attempt_is_recorded_with_every_earlier_one() -> None:
    """Recording attempt 3 of a delivery says attempts 1 to 3 are settled, 4 is not."""
    settled = SettledAttempts(capacity=1000)
    settled.add("msg_1", 3)
    assert [settled.recorded("msg_1", n) for n in (1, 3, 4)] == [True, True, False]
    settled.add("msg_1", 2)  # an older record read late lowers nothing
    assert settled.recorded("msg_1", 3)
    assert not settled.recorded("msg_2", 1)


def test_memory_keeps_only_the_latest_deliveries() -> None:
    """Beyond its capacity the oldest deliveries are forgotten."""
    settled = SettledAttempts(capacity=1000)
    for n in range(1500):
        settled.add(f"msg_{n}", 1)
    assert len(settled) == 1000
    assert not settled.recorded("msg_0", 1)
    assert settled.recorded("msg_1499", 1)


def test_records_are_read_from_their_message_id_or_else_their_body() -> None:
    """A record's message id says which attempt it is; an older record without one, its body."""
    settled = SettledAttempts(capacity=1000)
    record_id = log_record_id("msg_a", 2, "retry_scheduled")
    settled.apply_record(StreamRecord(b"not even json", 0, record_id, None))
    settled.apply_record(StreamRecord(b'{"delivery_id": "msg_b", "attempt": 4}', 1, None, None))
    settled.apply_record(StreamRecord(b"[]", 2, None, None))
    assert settled.recorded("msg_a", 2)
    assert settled.recorded("msg_b", 4)


def test_a_final_outcome_finishes_the_delivery() -> None:
    """Once an attempt delivered (or dead-lettered) a delivery, every attempt of it is recorded:
    a retry a forked chain published is dropped too."""
    settled = SettledAttempts(capacity=1000)
    settled.apply_record(StreamRecord(b"", 0, log_record_id("msg_a", 1, "delivered"), None))
    settled.apply_record(
        StreamRecord(
            b'{"delivery_id": "msg_b", "attempt": 2, "outcome": "dead_lettered"}', 1, None, None
        )
    )
    assert settled.recorded("msg_a", 2)
    assert settled.recorded("msg_b", 9)
    settled.add("msg_a", 1)  # a late, lower record does not reopen it
    assert settled.recorded("msg_a", 5)


def test_record_ids_round_trip() -> None:
    """`msg_…/3` names attempt 3 of a delivery, `/final` that it ended it; else nothing."""
    assert parse_log_record_id(log_record_id("msg_x", 3, "retry_scheduled")) == ("msg_x", 3, False)
    assert parse_log_record_id(log_record_id("msg_x", 3, "delivered")) == ("msg_x", 3, True)
    for other in (None, "", "msg_x", "msg_x/", "/3", "msg_x/three", "msg_x/final"):
        assert parse_log_record_id(other) is None
