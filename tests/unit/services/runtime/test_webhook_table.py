"""The webhook table rebuilt from the webhooks stream, and waiting on it."""

from __future__ import annotations

import asyncio
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
