"""The webhook table rebuilt from the webhooks stream, and waiting on it."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.markers import ReaderSynced
from schemas.webhooks import (
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookState,
    WebhookUpdated,
)
from services.runtime.streams import StreamRecord
from services.runtime.webhook_table import WebhookTable

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def created(webhook_id: str = "wh_1", **fields: Any) -> WebhookCreated:
    values: dict[str, Any] = {
        "at": AT,
        "webhook_id": webhook_id,
        "name": "hook",
        "event": "problem.update",
        "uri": "https://example.com/hook",
        "secret": "whsec_c2VjcmV0",
    }
    values.update(fields)
    return WebhookCreated(**values)


def updated(webhook_id: str = "wh_1", **changes: Any) -> WebhookUpdated:
    return WebhookUpdated(at=AT, webhook_id=webhook_id, changes=changes)


Record = WebhookCreated | WebhookUpdated | WebhookDeleted | WebhookDisabled | ReaderSynced


def at(offset: int, record: Record | bytes) -> StreamRecord:
    """A stream message holding `record` at `offset`."""
    body = record if isinstance(record, bytes) else record.model_dump_json().encode()
    kind = None if isinstance(record, bytes) else record.kind
    return StreamRecord(body, offset, None, kind)


def test_apply_record_folds_records_in_order() -> None:
    """Create, update and delete records build the table and advance its offset."""
    table = WebhookTable()
    assert table.offset == -1
    table.apply_record(at(0, created("wh_1")))
    table.apply_record(at(1, created("wh_2")))
    table.apply_record(at(2, updated("wh_1", disabled=True)))
    table.apply_record(at(3, WebhookDeleted(at=AT, webhook_id="wh_2")))
    webhook = table.get("wh_1")
    assert webhook is not None
    assert (webhook.disabled, webhook.revision) == (True, 2)
    assert table.get("wh_2") is None
    assert list(table.webhooks) == ["wh_1"]
    assert table.offset == 3


def test_offsets_already_applied_are_skipped() -> None:
    """A record read again at an offset already applied changes nothing."""
    table = WebhookTable()
    table.apply_record(at(0, created()))
    table.apply_record(at(1, updated(name="renamed")))
    table.apply_record(at(1, WebhookDeleted(at=AT, webhook_id="wh_1")))
    table.apply_record(at(0, WebhookDeleted(at=AT, webhook_id="wh_1")))
    webhook = table.get("wh_1")
    assert webhook is not None
    assert webhook.name == "renamed"
    assert table.offset == 1


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"kind": "webhook.exploded", "at": "2024-05-01T12:00:00Z"}']
)
def test_an_unreadable_record_is_skipped_but_advances_the_offset(body: bytes) -> None:
    """A record that cannot be read is skipped without crashing, and the offset moves past it."""
    table = WebhookTable()
    table.apply_record(at(0, created()))
    table.apply_record(at(1, body))
    assert table.offset == 1
    table.apply_record(at(2, updated(name="after")))
    webhook = table.get("wh_1")
    assert webhook is not None
    assert webhook.name == "after"


def test_a_reader_synced_marker_only_advances_the_offset() -> None:
    """A sync marker changes no webhook and calls no listener, but counts as applied."""
    table = WebhookTable()
    calls: list[str] = []
    table.on_change(lambda webhook_id, _state: calls.append(webhook_id))
    table.apply_record(at(4, ReaderSynced(at=AT, reader="router-1")))
    assert (table.webhooks, calls, table.offset) == ({}, [], 4)


def test_listeners_are_called_with_the_id_and_the_state() -> None:
    """Every listener hears (id, state) after a change and (id, None) after a delete."""
    table = WebhookTable()
    heard: list[tuple[str, WebhookState | None]] = []
    also: list[str] = []
    table.on_change(lambda webhook_id, state: heard.append((webhook_id, state)))
    table.on_change(lambda webhook_id, _state: also.append(webhook_id))
    table.apply_record(at(0, created()))
    table.apply_record(at(1, WebhookDeleted(at=AT, webhook_id="wh_1")))
    assert [(webhook_id, state is None) for webhook_id, state in heard] == [
        ("wh_1", False),
        ("wh_1", True),
    ]
    first = heard[0][1]
    assert first is not None
    assert first.revision == 0
    assert also == ["wh_1", "wh_1"]


async def test_wait_for_offset_returns_at_once_when_reached() -> None:
    """Waiting for an offset already applied does not wait."""
    table = WebhookTable()
    table.apply_record(at(5, created()))
    await asyncio.wait_for(table.wait_for_offset(5, 10), 0.5)
    await asyncio.wait_for(table.wait_for_offset(3, 10), 0.5)


async def test_wait_for_offset_waits_until_the_offset_is_applied() -> None:
    """A waiter returns once the table reaches its offset, not before."""
    table = WebhookTable()
    waiter = asyncio.ensure_future(table.wait_for_offset(2, 5))
    await asyncio.sleep(0)
    table.apply_record(at(0, created("wh_1")))
    table.apply_record(at(1, created("wh_2")))
    await asyncio.sleep(0)
    assert not waiter.done()
    table.apply_record(at(2, b"unreadable"))  # an unreadable record still counts as applied
    await asyncio.wait_for(waiter, 1)


async def test_wait_for_offset_times_out_and_leaves_no_waiter() -> None:
    """A waiter whose offset never comes raises TimeoutError after its timeout, and is gone."""
    table = WebhookTable()
    with pytest.raises(TimeoutError):
        await table.wait_for_offset(1, 0.05)
    assert table.waiters == 0
    table.apply_record(at(1, created()))
    assert table.offset == 1


async def test_many_timed_out_waits_leave_nothing_behind() -> None:
    """A hundred waits that time out leave no waiter, while one still waiting stays."""
    table = WebhookTable()
    staying = asyncio.ensure_future(table.wait_for_offset(3, 5))
    for _ in range(100):
        with pytest.raises(TimeoutError):
            await table.wait_for_offset(2, 0.001)
    assert table.waiters == 1
    table.apply_record(at(3, created()))
    await asyncio.wait_for(staying, 1)
    assert table.waiters == 0


def test_disabled_by_hookline_then_enabled_again() -> None:
    """A `webhook.disabled` record disables with a reason; enabling clears it and notes when."""
    table = WebhookTable()
    table.apply_record(at(0, created()))
    table.apply_record(at(1, WebhookDisabled(at=AT, webhook_id="wh_1", reason="410 Gone")))
    webhook = table.get("wh_1")
    assert webhook is not None
    assert (webhook.disabled, webhook.disabled_reason, webhook.revision) == (True, "410 Gone", 1)
    later = datetime(2024, 5, 2, tzinfo=UTC)
    table.apply_record(
        at(2, WebhookUpdated(at=later, webhook_id="wh_1", changes={"disabled": False}))
    )
    webhook = table.get("wh_1")
    assert webhook is not None
    assert (webhook.disabled, webhook.disabled_reason, webhook.enabled_at) == (False, None, later)


def test_reset_forgets_every_webhook_and_tells_the_listeners() -> None:
    """After a reset (the stream was lost) the table is empty and listeners heard each removal."""
    table = WebhookTable()
    heard: list[tuple[str, WebhookState | None]] = []
    table.apply_record(at(0, created("wh_1")))
    table.apply_record(at(1, created("wh_2")))
    table.on_change(lambda webhook_id, state: heard.append((webhook_id, state)))
    table.reset()
    assert (table.webhooks, table.offset) == ({}, -1)
    assert sorted(heard, key=lambda item: item[0]) == [("wh_1", None), ("wh_2", None)]
    table.apply_record(at(0, created("wh_3")))  # a new stream's offsets start over
    assert list(table.webhooks) == ["wh_3"]


# --- deferred while catching up -----------------------------------------------------------------


def mirror_of(table: WebhookTable) -> dict[str, WebhookState]:
    """What a listener that mirrors the table holds, kept by its calls."""
    mirror: dict[str, WebhookState] = {}

    def listen(webhook_id: str, state: WebhookState | None) -> None:
        if state is None:
            mirror.pop(webhook_id, None)
        else:
            mirror[webhook_id] = state

    table.on_change(listen)
    return mirror


def test_deferred_changes_are_told_once_per_webhook_when_caught_up() -> None:
    """While deferred listeners hear nothing; at `caught_up` each webhook that is there is told
    once with its latest state, one created and deleted meanwhile not at all; then every change
    is told as it comes."""
    table = WebhookTable()
    heard: list[tuple[str, WebhookState | None]] = []
    table.on_change(lambda webhook_id, state: heard.append((webhook_id, state)))
    table.defer_changes()
    table.apply_record(at(0, created("wh_1")))
    table.apply_record(at(1, updated("wh_1", name="renamed")))
    table.apply_record(at(2, created("wh_2")))
    table.apply_record(at(3, WebhookDeleted(at=AT, webhook_id="wh_2")))
    table.apply_record(at(4, created("wh_3")))
    assert heard == []
    table.caught_up()
    assert sorted(heard, key=lambda item: item[0]) == [
        ("wh_1", table.get("wh_1")),
        ("wh_3", table.get("wh_3")),
    ]
    first = table.get("wh_1")
    assert first is not None
    assert (first.name, first.revision) == ("renamed", 1)
    heard.clear()
    table.apply_record(at(5, updated("wh_3", disabled=True)))
    assert heard == [("wh_3", table.get("wh_3"))]


def test_a_webhook_known_before_deferring_and_deleted_meanwhile_is_told_gone() -> None:
    """A listener that knew a webhook before the table deferred hears it is gone at `caught_up`."""
    table = WebhookTable()
    mirror = mirror_of(table)
    table.apply_record(at(0, created("wh_1")))
    table.defer_changes()
    table.apply_record(at(1, WebhookDeleted(at=AT, webhook_id="wh_1")))
    assert list(mirror) == ["wh_1"]
    table.caught_up()
    assert mirror == {}


def test_a_deferred_rebuild_leaves_listeners_where_record_by_record_would() -> None:
    """Over a long random history (creates, updates, disables, deletes, unreadable records), a
    table that deferred its listeners ends with the same webhooks, offset and listeners' view as
    one that told them of every record."""
    rng = random.Random(20240501)
    changes: list[dict[str, Any]] = [{"disabled": True}, {"disabled": False}, {"name": "n"}]
    history: list[StreamRecord] = []
    for offset in range(3000):
        webhook_id = f"wh_{rng.randrange(200)}"
        roll = rng.random()
        record: Record | bytes
        if roll < 0.4:
            record = created(webhook_id, event=rng.choice(["a.b", "a.*", "#.c"]))
        elif roll < 0.7:
            record = updated(webhook_id, **rng.choice(changes))
        elif roll < 0.8:
            record = WebhookDisabled(at=AT, webhook_id=webhook_id, reason="410 Gone")
        elif roll < 0.97:
            record = WebhookDeleted(at=AT, webhook_id=webhook_id)
        else:
            record = b"unreadable"
        history.append(at(offset, record))
    told, deferred = WebhookTable(), WebhookTable()
    told_view, deferred_view = mirror_of(told), mirror_of(deferred)
    deferred.defer_changes()
    for message in history:
        told.apply_record(message)
        deferred.apply_record(message)
    assert deferred_view == {}
    deferred.caught_up()
    assert deferred.webhooks == told.webhooks
    assert deferred.offset == told.offset == 2999
    assert deferred_view == told_view == told.webhooks
    assert 50 < len(told.webhooks) < 200


def test_reset_while_deferred_tells_only_what_the_listeners_knew() -> None:
    """A reset while deferred tells the listeners that the webhooks they knew are gone, and
    nothing of those the table made since; the rebuild is told at `caught_up`."""
    table = WebhookTable()
    heard: list[tuple[str, WebhookState | None]] = []
    table.apply_record(at(0, created("wh_1")))
    table.on_change(lambda webhook_id, state: heard.append((webhook_id, state)))
    table.defer_changes()
    table.apply_record(at(1, created("wh_2")))
    table.reset()
    assert heard == [("wh_1", None)]
    table.apply_record(at(0, created("wh_3")))  # the stream read again: still deferred
    assert heard == [("wh_1", None)]
    table.caught_up()
    assert heard == [("wh_1", None), ("wh_3", table.get("wh_3"))]


async def test_offsets_advance_and_waiters_wake_while_deferred() -> None:
    """Deferring the listeners defers nothing else: the offset moves and its waiters return."""
    table = WebhookTable()
    table.defer_changes()
    waiter = asyncio.ensure_future(table.wait_for_offset(1, 5))
    table.apply_record(at(0, created("wh_1")))
    table.apply_record(at(1, updated("wh_1", name="later")))
    await asyncio.wait_for(waiter, 1)
    webhook = table.get("wh_1")
    assert webhook is not None
    assert (table.offset, webhook.name) == (1, "later")
