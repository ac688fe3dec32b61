"""The delivery history's SQLite store: deliveries by webhook, their attempts, filters, cursor
pages, resuming after the stored offset, and pruning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.deliveries import DeliveryAttempted
from services.router.history_store import (
    BadCursor,
    Cursor,
    DeliveryFilter,
    HistoryStore,
)

STREAM = "t.deliveries.log"
WH_1 = DeliveryFilter(webhook_ids=frozenset({"wh_1"}))
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def attempt(
    delivery: str, number: int, seconds: float, outcome: str, **more: Any
) -> DeliveryAttempted:
    return DeliveryAttempted.model_validate(
        {
            "delivery_id": delivery,
            "event_id": more.pop("event_id", f"evt_{delivery}"),
            "event_type": more.pop("event_type", "a.b"),
            "webhook_id": more.pop("webhook_id", "wh_1"),
            "attempt": number,
            "at": T0 + timedelta(seconds=seconds),
            "outcome": outcome,
            **more,
        }
    )


@pytest.fixture
async def store() -> AsyncIterator[HistoryStore]:
    opened = await HistoryStore.open(":memory:", STREAM)
    yield opened
    await opened.close()


async def test_a_delivery_gathers_its_attempts_and_stands_where_the_newest_says(
    store: HistoryStore,
) -> None:
    await store.add(
        [
            attempt(
                "d1",
                1,
                0,
                "retry_scheduled",
                status_code=500,
                error="500 Internal Server Error",
                response_body="oops\nline 2",
                duration_s=0.012,
                next_attempt_in_s=5,
            ),
            attempt("d1", 2, 5, "delivered", status_code=200, duration_s=0.003),
        ],
        applied_offset=3,
    )
    [found] = await store.deliveries(WH_1, limit=10)
    assert found.outcome == "delivered"
    assert found.attempt_count == 2
    assert found.next_attempt_at_ms is None
    assert [(a.attempt, a.status_code, a.response_body) for a in found.attempts] == [
        (1, 500, "oops\nline 2"),
        (2, 200, None),
    ]
    assert found.first_at_ms == round(T0.timestamp() * 1000)
    assert await store.applied_offset() == 3


async def test_an_older_record_read_late_does_not_turn_back_the_outcome(
    store: HistoryStore,
) -> None:
    """Two senders' records may reach the log out of order: the newest attempt decides."""
    await store.add([attempt("d1", 2, 5, "dead_lettered", status_code=410)], applied_offset=0)
    await store.add(
        [attempt("d1", 1, 0, "retry_scheduled", status_code=500, next_attempt_in_s=5)],
        applied_offset=1,
    )
    found = await store.delivery("d1")
    assert found is not None
    assert found.outcome == "dead_lettered"
    assert found.next_attempt_at_ms is None
    assert found.first_at_ms == round(T0.timestamp() * 1000)
    assert found.attempt_count == 2


async def test_a_scheduled_retry_says_when_it_is_due(store: HistoryStore) -> None:
    await store.add(
        [attempt("d1", 1, 0, "retry_scheduled", status_code=503, next_attempt_in_s=30)],
        applied_offset=0,
    )
    found = await store.delivery("d1")
    assert found is not None
    assert found.next_attempt_at_ms == round((T0 + timedelta(seconds=30)).timestamp() * 1000)


async def test_a_record_read_twice_is_one_attempt(store: HistoryStore) -> None:
    record = attempt("d1", 1, 0, "delivered", status_code=200)
    await store.add([record], applied_offset=0)
    await store.add([record, record], applied_offset=1)
    found = await store.delivery("d1")
    assert found is not None
    assert found.attempt_count == 1
    assert len(found.attempts) == 1


async def test_filters_pick_by_outcome_type_and_time(store: HistoryStore) -> None:
    await store.add(
        [
            attempt("d1", 1, 0, "delivered", event_type="a.b"),
            attempt("d2", 1, 10, "dead_lettered", event_type="a.c"),
            attempt("d3", 1, 20, "delivered", event_type="a.c"),
            attempt("d4", 1, 30, "delivered", webhook_id="wh_other"),
        ],
        applied_offset=0,
    )

    async def ids(wanted: DeliveryFilter) -> list[str]:
        return [
            d.delivery_id
            for d in await store.deliveries(replace(wanted, webhook_ids=WH_1.webhook_ids), limit=10)
        ]

    def at(seconds: float) -> int:
        return round((T0 + timedelta(seconds=seconds)).timestamp() * 1000)

    assert await ids(DeliveryFilter()) == ["d3", "d2", "d1"]
    assert await ids(DeliveryFilter(outcome="delivered")) == ["d3", "d1"]
    assert await ids(DeliveryFilter(event_type="a.c")) == ["d3", "d2"]
    assert await ids(DeliveryFilter(since_ms=at(10))) == ["d3", "d2"]
    assert await ids(DeliveryFilter(until_ms=at(10))) == ["d1"]
    assert await ids(DeliveryFilter(outcome="delivered", event_type="a.c", since_ms=at(5))) == [
        "d3"
    ]


async def test_cursor_pages_give_every_delivery_once_newest_first(store: HistoryStore) -> None:
    # Several deliveries share a first-attempt time: the id breaks the tie.
    records = [attempt(f"d{n:02}", 1, n // 3, "delivered") for n in range(25)]
    await store.add(records, applied_offset=0)
    seen: list[str] = []
    after: Cursor | None = None
    while True:
        page = await store.deliveries(WH_1, limit=7, after=after)
        seen += [d.delivery_id for d in page]
        if len(page) < 7:
            break
        after = Cursor(page[-1].first_at_ms, page[-1].delivery_id)
    expected = sorted(records, key=lambda r: (r.at, r.delivery_id), reverse=True)
    assert seen == [r.delivery_id for r in expected]


def test_a_cursor_reads_back_and_a_made_up_one_is_refused() -> None:
    cursor = Cursor(1_795_000_000_000, "msg_abc")
    assert Cursor.decode(cursor.encode()) == cursor
    for made_up in ("", "!!!", "bm90LWEtY3Vyc29y", "eDptc2c"):
        with pytest.raises(BadCursor):
            Cursor.decode(made_up)


async def test_a_reopened_store_knows_where_it_stopped(tmp_path: Path) -> None:
    path = str(tmp_path / "history" / "h.sqlite3")
    first = await HistoryStore.open(path, STREAM)
    assert await first.applied_offset() is None
    await first.add([attempt("d1", 1, 0, "delivered")], applied_offset=41)
    await first.close()
    again = await HistoryStore.open(path, STREAM)
    try:
        assert await again.applied_offset() == 41
        assert (await again.delivery("d1")) is not None
    finally:
        await again.close()


async def test_prune_drops_deliveries_last_attempted_before_the_cutoff(store: HistoryStore) -> None:
    await store.add(
        [
            attempt("old", 1, 0, "retry_scheduled", next_attempt_in_s=60),
            attempt("old", 2, 60, "dead_lettered"),
            attempt("new", 1, 120, "delivered"),
        ],
        applied_offset=0,
    )
    cutoff = round((T0 + timedelta(seconds=90)).timestamp() * 1000)
    assert await store.prune(cutoff) == 1
    assert await store.delivery("old") is None
    assert await store.delivery("new") is not None
    # Pruning keeps a delivery whose last attempt is recent, even if its first is old.
    await store.add(
        [attempt("long", 1, 0, "retry_scheduled"), attempt("long", 2, 200, "delivered")],
        applied_offset=1,
    )
    assert await store.prune(cutoff) == 0
    kept = await store.delivery("long")
    assert kept is not None
    assert kept.attempt_count == 2


async def test_clear_forgets_everything(store: HistoryStore) -> None:
    await store.add([attempt("d1", 1, 0, "delivered")], applied_offset=9)
    await store.clear()
    assert await store.applied_offset() is None
    assert await store.deliveries(WH_1, limit=10) == []
