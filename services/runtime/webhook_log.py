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
from services.runtime.broker import Publisher
from services.runtime.streams import StreamReader
from services.runtime.webhook_table import WebhookTable

log = structlog.get_logger(__name__)


class LogBehind(Exception):
    """A record was confirmed by the broker but not read back in time: the reader is behind."""


class WebhookLog:
    """Appends to and reads from the webhooks stream; `table` is current once `synced`."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        *,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.table = WebhookTable()
        self._synced = False
        self._publisher = publisher
        self._stream = topology.webhooks_stream
        self._read_timeout_s = read_timeout_s
        self._reader = StreamReader(
            connection,
            topology.webhooks_stream,
            topology.queues()[topology.webhooks_stream],
            self.table.apply_bytes,
        )

    async def start(self, reader_name: str) -> None:
        """Read the stream from the start until we read back our own marker: then we are current."""
        await self._reader.start()
        host = socket.gethostname()
        marker = ReaderSynced(at=datetime.now(UTC), reader=f"{reader_name}@{host}:{os.getpid()}")
        offset = await self._append(marker, timeout_s=None)
        self._synced = True
        log.info("webhook_log.synced", offset=offset, webhooks=len(self.table.webhooks))

    @property
    def synced(self) -> bool:
        """The table has caught up with the stream and is still following it."""
        return self._synced and not self._reader.lost

    async def stop(self) -> None:
        await self._reader.stop()

    async def append(self, record: WebhookRecord) -> int:
        """Publish a record with confirm and wait until our table applied it; its offset."""
        return await self._append(record, timeout_s=self._read_timeout_s)

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
