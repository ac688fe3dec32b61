"""The webhook table rebuilt from the webhooks stream, and waiting on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.webhooks import (
    ReaderSynced,
    WebhookCreated,
    WebhookDeleted,
    WebhookState,
    WebhookUpdated,
)
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


def as_bytes(record: WebhookCreated | WebhookUpdated | WebhookDeleted | ReaderSynced) -> bytes:
    return record.model_dump_json().encode()


def test_apply_bytes_folds_records_in_order() -> None:
    """Create, update and delete records build the table and advance its offset."""
    table = WebhookTable()
    assert table.offset == -1
    table.apply_bytes(as_bytes(created("wh_1")), 0)
    table.apply_bytes(as_bytes(created("wh_2")), 1)
    table.apply_bytes(as_bytes(updated("wh_1", disabled=True)), 2)
    table.apply_bytes(as_bytes(WebhookDeleted(at=AT, webhook_id="wh_2")), 3)
    webhook = table.get("wh_1")
    assert webhook is not None
    assert (webhook.disabled, webhook.revision) == (True, 2)
    assert table.get("wh_2") is None
    assert list(table.webhooks) == ["wh_1"]
    assert table.offset == 3


def test_offsets_already_applied_are_skipped() -> None:
    """A record read again at an offset already applied changes nothing."""
    table = WebhookTable()
    table.apply_bytes(as_bytes(created()), 0)
    table.apply_bytes(as_bytes(updated(name="renamed")), 1)
    table.apply_bytes(as_bytes(WebhookDeleted(at=AT, webhook_id="wh_1")), 1)
    table.apply_bytes(as_bytes(WebhookDeleted(at=AT, webhook_id="wh_1")), 0)
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
    table.apply_bytes(as_bytes(created()), 0)
    table.apply_bytes(body, 1)
    assert table.offset == 1
    table.apply_bytes(as_bytes(updated(name="after")), 2)
    webhook = table.get("wh_1")
    assert webhook is not None
    assert webhook.name == "after"


def test_a_reader_synced_marker_only_advances_the_offset() -> None:
    """A sync marker changes no webhook and calls no listener, but counts as applied."""
    table = WebhookTable()
    calls: list[str] = []
    table.on_change(lambda webhook_id, _state: calls.append(webhook_id))
    table.apply_bytes(as_bytes(ReaderSynced(at=AT, reader="router-1")), 4)
    assert (table.webhooks, calls, table.offset) == ({}, [], 4)


def test_listeners_are_called_with_the_id_and_the_state() -> None:
    """Every listener hears (id, state) after a change and (id, None) after a delete."""
    table = WebhookTable()
    heard: list[tuple[str, WebhookState | None]] = []
    also: list[str] = []
    table.on_change(lambda webhook_id, state: heard.append((webhook_id, state)))
    table.on_change(lambda webhook_id, _state: also.append(webhook_id))
    table.apply_bytes(as_bytes(created()), 0)
    table.apply_bytes(as_bytes(WebhookDeleted(at=AT, webhook_id="wh_1")), 1)
    assert [(webhook_id, state is None) for webhook_id, state in heard] == [
        ("wh_1", False),
        ("wh_1", True),
    ]
    first = heard[0][1]
    assert first is not None
    assert first.revision == 0
    assert also == ["wh_1", "wh_1"]


async def test_expect_resolves_with_the_offset_of_the_record() -> None:
    """A writer's future resolves with the offset its record was applied at."""
    table = WebhookTable()
    record = created()
    future = table.expect(record.record_id)
    table.apply_bytes(as_bytes(created("wh_other")), 0)
    assert not future.done()
    table.apply_bytes(as_bytes(record), 1)
    assert await asyncio.wait_for(future, 1) == 1


async def test_expect_resolves_for_a_record_that_changes_nothing() -> None:
    """A replayed create that changes no state still resolves its writer's future."""
    table = WebhookTable()
    table.apply_bytes(as_bytes(created()), 0)
    replay = created(name="again")
    future = table.expect(replay.record_id)
    table.apply_bytes(as_bytes(replay), 1)
    assert await asyncio.wait_for(future, 1) == 1


async def test_wait_for_offset_returns_at_once_when_reached() -> None:
    """Waiting for an offset already applied does not wait."""
    table = WebhookTable()
    table.apply_bytes(as_bytes(created()), 5)
    await asyncio.wait_for(table.wait_for_offset(5, 10), 0.5)
    await asyncio.wait_for(table.wait_for_offset(3, 10), 0.5)


async def test_wait_for_offset_waits_until_the_offset_is_applied() -> None:
    """A waiter returns once the table reaches its offset, not before."""
    table = WebhookTable()
    waiter = asyncio.ensure_future(table.wait_for_offset(2, 5))
    await asyncio.sleep(0)
    table.apply_bytes(as_bytes(created("wh_1")), 0)
    table.apply_bytes(as_bytes(created("wh_2")), 1)
    await asyncio.sleep(0)
    assert not waiter.done()
    table.apply_bytes(b"unreadable", 2)  # an unreadable record still counts as applied
    await asyncio.wait_for(waiter, 1)


async def test_wait_for_offset_times_out() -> None:
    """A waiter whose offset never comes raises TimeoutError after its timeout."""
    table = WebhookTable()
    with pytest.raises(TimeoutError):
        await table.wait_for_offset(1, 0.05)
    table.apply_bytes(as_bytes(created()), 1)  # the abandoned waiter is harmless
    assert table.offset == 1
