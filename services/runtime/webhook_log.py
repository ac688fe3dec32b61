"""The webhooks stream as a service sees it: a table a reader keeps current, and appends that
return once the reader has applied them."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractRobustConnection

from schemas.topology import Topology
from schemas.webhooks import ReaderSynced, WebhookRecord
from services.runtime.broker import Publisher, PublishFailed
from services.runtime.streams import StreamReader
from services.runtime.webhook_table import WebhookTable

log = structlog.get_logger(__name__)


SYNC_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0)


class LogBehind(Exception):
    """A record was confirmed by the broker but not read back in time: the reader is behind."""


class WebhookLog:
    """Appends to and reads from the webhooks stream; `table` is current while `synced`.

    Current means: we have read back a marker we appended, so we have read everything written
    before it. That holds at start and again after every reconnect; in between (the connection is
    down, or we are catching up) `current()` waits, so nobody routes or sends on a stale table.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        *,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.table = WebhookTable()
        self._current = asyncio.Event()
        self._publisher = publisher
        self._stream = topology.webhooks_stream
        self._read_timeout_s = read_timeout_s
        self._reader_name = "reader"
        self._resync: asyncio.Task[None] | None = None
        self._reader = StreamReader(
            connection,
            topology.webhooks_stream,
            topology.queues()[topology.webhooks_stream],
            self.table.apply_bytes,
            on_interrupted=self._interrupted,
            on_resumed=self._resumed,
        )

    async def start(self, reader_name: str) -> None:
        """Read the stream from its start until our own marker comes back."""
        self._reader_name = reader_name
        await self._reader.start()
        await self._sync()

    @property
    def synced(self) -> bool:
        """The table has caught up with the stream and is following it."""
        return self._current.is_set() and not self._reader.lost

    async def current(self) -> None:
        """Return once the table is current (at once, unless we are reconnecting)."""
        await self._current.wait()

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
        await self._reader.stop()

    async def append(self, record: WebhookRecord) -> int:
        """Publish a record with confirm and wait until our table applied it; its offset."""
        return await self._append(record, timeout_s=self._read_timeout_s)

    async def _sync(self) -> None:
        """Append a marker and wait to read it back, retrying while the broker refuses it (a
        resource alarm, say): a service must be able to start while a backlog drains."""
        host = socket.gethostname()
        for attempt in range(1, 1_000_000):
            marker = ReaderSynced(
                at=datetime.now(UTC), reader=f"{self._reader_name}@{host}:{os.getpid()}"
            )
            try:
                offset = await self._append(marker, timeout_s=None)
            except PublishFailed as error:
                delay_s = SYNC_RETRY_DELAYS_S[min(attempt, len(SYNC_RETRY_DELAYS_S)) - 1]
                log.warning("webhook_log.sync_retry", error=str(error), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                continue
            self._current.set()
            log.info("webhook_log.synced", offset=offset, webhooks=len(self.table.webhooks))
            return

    def _interrupted(self) -> None:
        if self._current.is_set():
            log.warning("webhook_log.interrupted", offset=self.table.offset)
        self._current.clear()

    def _resumed(self) -> None:
        # Called from the channel's reopen: catch up in the background, not inside the restore.
        self._current.clear()
        if self._resync is None or self._resync.done():
            self._resync = asyncio.create_task(self._sync())

    async def _append(self, record: WebhookRecord, *, timeout_s: float | None) -> int:
        applied = self.table.expect(record.record_id)
        try:
            await self._publisher.publish(
                "",
                self._stream,
                record.model_dump_json().encode(),
                message_id=record.record_id,
                message_type=record.kind,
            )
            async with asyncio.timeout(timeout_s):
                return await applied
        except TimeoutError:
            raise LogBehind(f"record {record.record_id} not read back in {timeout_s}s") from None
        finally:
            applied.cancel()
