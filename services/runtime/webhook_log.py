"""The webhooks stream as a service sees it: a table kept current by following the stream, and
appends that return once this replica has applied them (read-your-writes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aio_pika.abc import AbstractRobustConnection

from schemas.topology import Topology
from schemas.webhooks_stream import StreamChange
from services.runtime.broker import Publisher
from services.runtime.synced_stream import LogBehind, SyncedStream
from services.runtime.webhook_table import WebhookTable

__all__ = ["LogBehind", "WebhookLog"]

Notify = Callable[[], None]


class WebhookLog:
    """Appends to and reads from the webhooks stream; `table` is current while `synced`.

    Current means: we have read back a marker we appended, so we have read everything written
    before it. That holds at start and again after every reconnect; in between (the connection is
    down, we are catching up, or the stream was lost) `current()` waits, so nobody routes or sends
    on a stale table.

    While the table is rebuilt from the stream's start (at start, and after the stream was lost),
    its listeners hear of it once it is current, one call per webhook (`WebhookTable.caught_up`).
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        *,
        read_timeout_s: float = 10.0,
        on_lost: Notify | None = None,
        on_current: Notify | None = None,
    ) -> None:
        self.table = WebhookTable()
        self.table.defer_changes()  # read from the start: tell listeners once caught up
        self._read_timeout_s = read_timeout_s
        self._on_current = on_current
        self._stream = SyncedStream(
            connection,
            publisher,
            topology.webhooks_stream,
            topology.queues()[topology.webhooks_stream],
            self.table.apply_record,
            on_reset=self._reset,
            on_lost=on_lost,
            on_current=self._current,
        )

    def _reset(self) -> None:
        """The stream is back after it was lost: the table is read again from its start."""
        self.table.reset()
        self.table.defer_changes()

    def _current(self) -> None:
        self.table.caught_up()  # before anyone who waits for a current table goes on
        if self._on_current is not None:
            self._on_current()

    async def start(self, reader_name: str) -> None:
        """Read the stream from its start until our own marker comes back."""
        await self._stream.start(reader_name)

    async def stop(self) -> None:
        await self._stream.stop()

    @property
    def synced(self) -> bool:
        """The table has caught up with the stream and is following it."""
        return self._stream.is_current

    async def current(self, timeout_s: float | None = None) -> None:
        """Return once the table is current (at once, unless reconnecting or the stream is lost);
        TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            await self._stream.current()

    async def append(self, record: StreamChange) -> int:
        """Publish a change with confirm and wait until our table applied it; its offset."""
        return await self._stream.append(
            record.model_dump_json().encode(),
            record_id=record.record_id,
            kind=record.kind,
            timeout_s=self._read_timeout_s,
        )

    async def publish(self, record: StreamChange) -> None:
        """Publish a change with confirm, without waiting to read it back."""
        await self._stream.publish(
            record.model_dump_json().encode(), record_id=record.record_id, kind=record.kind
        )
