"""The webhooks stream as the source of truth: read-your-writes; a restart rebuilds the table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
import pytest

from schemas.topology import Topology
from schemas.webhooks import (
    WebhookCreated,
    WebhookDeleted,
    WebhookState,
    WebhookUpdated,
    new_secret,
)
from services.runtime.broker import Publisher, declare_topology
from services.runtime.webhook_log import WebhookLog
from services.runtime.webhook_table import ChangeListener
from tests.conftest import Installs
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

StartLog = Callable[..., Awaitable[WebhookLog]]


@pytest.fixture
async def topology(installs: Installs, prefix: str) -> Topology:
    return installs.add(Topology(prefix))


@pytest.fixture
async def start_log(amqp_url: str, topology: Topology) -> AsyncIterator[StartLog]:
    """Starts webhook logs (readers) on one install; all stop after the test."""
    connection = await aio_pika.connect_robust(amqp_url)
    await declare_topology(connection, topology)
    publisher = await Publisher.open(connection, timeout_s=5)
    started: list[WebhookLog] = []

    async def start(reader: str, on_change: ChangeListener | None = None) -> WebhookLog:
        webhook_log = WebhookLog(connection, publisher, topology)
        if on_change is not None:
            webhook_log.table.on_change(on_change)
        started.append(webhook_log)
        await webhook_log.start(reader)
        return webhook_log

    yield start
    for webhook_log in started:
        await webhook_log.stop()
    await publisher.close()
    await connection.close()


def created(webhook_id: str, event: str = "problem.update") -> WebhookCreated:
    return WebhookCreated(
        at=datetime.now(UTC),
        webhook_id=webhook_id,
        name=event,
        event=event,
        uri="https://example.com/hook",
        secret=new_secret(),
    )


async def test_append_returns_once_applied_and_a_new_reader_rebuilds_the_same_table(
    start_log: StartLog,
) -> None:
    """Every append is visible when it returns; a fresh reader replays to the very same table."""
    first = await start_log("test")
    await first.append(created("wh_a"))
    assert first.table.get("wh_a") is not None
    await first.append(created("wh_b", "request.*"))
    await first.append(
        WebhookUpdated(at=datetime.now(UTC), webhook_id="wh_a", changes={"disabled": True})
    )
    assert first.table.webhooks["wh_a"].disabled is True
    await first.append(WebhookDeleted(at=datetime.now(UTC), webhook_id="wh_b"))
    assert "wh_b" not in first.table.webhooks

    second = await start_log("test-restarted")
    assert second.synced
    assert second.table.webhooks == first.table.webhooks
    assert second.table.webhooks["wh_a"].disabled is True


async def test_a_deleted_stream_makes_the_log_not_synced(
    start_log: StartLog, topology: Topology, amqp_url: str
) -> None:
    """If the webhooks stream is deleted under a reader, it stops saying it is current."""
    webhook_log = await start_log("test")
    assert webhook_log.synced
    admin = await aio_pika.connect(amqp_url)
    await (await admin.channel()).queue_delete(topology.webhooks_stream)
    await admin.close()
    await eventually(lambda: not webhook_log.synced)


async def test_a_starting_reader_tells_its_listeners_once_per_webhook_then_each_change(
    start_log: StartLog,
) -> None:
    """A reader rebuilding its table tells its listeners, once it is current, the latest state of
    each webhook (none of one deleted before); after that every change as it is read."""
    writer = await start_log("writer")
    await writer.append(created("wh_a"))
    await writer.append(
        WebhookUpdated(at=datetime.now(UTC), webhook_id="wh_a", changes={"name": "renamed"})
    )
    await writer.append(created("wh_b", "request.*"))
    await writer.append(created("wh_gone"))
    await writer.append(WebhookDeleted(at=datetime.now(UTC), webhook_id="wh_gone"))

    heard: list[tuple[str, WebhookState | None]] = []
    reader = await start_log("reader", lambda webhook_id, state: heard.append((webhook_id, state)))
    assert reader.synced
    assert sorted(heard, key=lambda item: item[0]) == [
        ("wh_a", reader.table.webhooks["wh_a"]),
        ("wh_b", reader.table.webhooks["wh_b"]),
    ]
    assert reader.table.webhooks["wh_a"].name == "renamed"
    assert reader.table.webhooks == writer.table.webhooks

    heard.clear()
    await reader.append(WebhookDeleted(at=datetime.now(UTC), webhook_id="wh_b"))
    assert heard == [("wh_b", None)]
