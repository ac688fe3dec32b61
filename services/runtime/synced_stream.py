"""Following a stream and knowing when we have read everything written before a moment.

A reader cannot ask a stream how far it goes. So it appends a marker record and reads until the
marker comes back: then it has read every record confirmed before it. That is how a service knows
its state is current at start, after every reconnect, and on demand (`caught_up`).

When the stream is deleted under us the state cannot be continued (offsets of a new stream start
over): we stop being current, wait until the stream exists again, reset the state and read the
new stream from its start.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractRobustConnection

from schemas.markers import MARKER_KIND, ReaderSynced
from services.runtime.broker import CHANNEL_GONE, Publisher, PublishFailed
from services.runtime.streams import RecordHandler, StreamOffset, StreamReader, StreamRecord

log = structlog.get_logger(__name__)

SYNC_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
# How often to look whether a lost stream exists again.
RECOVERY_POLL_S = 2.0
Notify = Callable[[], None]


class LogBehind(Exception):
    """A record was confirmed by the broker but not read back in time: the reader is behind."""


class SyncedStream:
    """Feeds a stream's records (markers excepted) to `apply`, and says when it is current."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        stream: str,
        arguments: dict[str, Any],
        apply: RecordHandler,
        *,
        start: StreamOffset = "first",
        on_reset: Notify | None = None,
        on_lost: Notify | None = None,
        on_current: Notify | None = None,
    ) -> None:
        self._publisher = publisher
        self._stream = stream
        self._apply = apply
        self._on_reset = on_reset
        self._on_lost = on_lost
        self._on_current = on_current
        self._current = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[int]] = {}
        self._reader_name = "reader"
        self._resync: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._round: tuple[float, asyncio.Task[int]] | None = None
        self._reader = StreamReader(
            connection,
            stream,
            arguments,
            self._on_record,
            start=start,
            on_interrupted=self._interrupted,
            on_resumed=self._resumed,
            on_lost=self._lost,
        )

    @property
    def stream(self) -> str:
        return self._stream

    @property
    def offset(self) -> int | None:
        """The last offset read (markers included)."""
        return self._reader.last_offset

    @property
    def is_current(self) -> bool:
        """We have read back a marker since the last interruption, and the stream is there."""
        return self._current.is_set() and not self._reader.lost

    @property
    def lost(self) -> bool:
        return self._reader.lost

    async def start(self, reader_name: str) -> None:
        """Read from the start offset until our own marker comes back."""
        self._reader_name = reader_name
        await self._reader.start()
        await self._sync()

    async def stop(self) -> None:
        for task in (self._resync, self._recovery, self._round[1] if self._round else None):
            if task is not None:
                task.cancel()
        await self._reader.stop()

    async def current(self) -> None:
        """Return once the state is current (at once, unless reconnecting or the stream is lost)."""
        await self._current.wait()

    async def caught_up(self) -> None:
        """Return once every record confirmed before this call has been applied.

        Concurrent callers share one marker round, as long as it started after they asked.
        """
        loop = asyncio.get_running_loop()
        asked = loop.time()
        while True:
            if self._round is not None and not self._round[1].done():
                started, round_ = self._round
                await asyncio.shield(round_)
                if started >= asked:
                    return
                continue  # that round started before we asked: it may have missed our records
            round_ = asyncio.create_task(self._append_marker(timeout_s=None))
            self._round = (loop.time(), round_)
            await asyncio.shield(round_)
            return

    async def append(self, body: bytes, *, record_id: str, kind: str, timeout_s: float) -> int:
        """Publish a record with confirm and wait until it has been applied here; its offset."""
        return await self._append(body, record_id=record_id, kind=kind, timeout_s=timeout_s)

    async def publish(self, body: bytes, *, record_id: str, kind: str) -> None:
        """Publish a record with confirm, without waiting to read it back."""
        await self._publisher.publish(
            "", self._stream, body, message_id=record_id, message_type=kind
        )

    async def _append(
        self, body: bytes, *, record_id: str, kind: str, timeout_s: float | None
    ) -> int:
        applied: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters[record_id] = applied
        try:
            await self.publish(body, record_id=record_id, kind=kind)
            async with asyncio.timeout(timeout_s):
                return await applied
        except TimeoutError:
            raise LogBehind(f"record {record_id} not read back in {timeout_s}s") from None
        finally:
            self._waiters.pop(record_id, None)
            applied.cancel()

    async def _append_marker(self, *, timeout_s: float | None) -> int:
        host = socket.gethostname()
        marker = ReaderSynced(
            at=datetime.now(UTC), reader=f"{self._reader_name}@{host}:{os.getpid()}"
        )
        return await self._append(
            marker.model_dump_json().encode(),
            record_id=marker.record_id,
            kind=MARKER_KIND,
            timeout_s=timeout_s,
        )

    def _on_record(self, record: StreamRecord) -> None:
        if record.kind != MARKER_KIND:
            self._apply(record)
        waiter = self._waiters.get(record.message_id or "")
        if waiter is not None and not waiter.done():
            waiter.set_result(record.offset)

    async def _sync(self) -> None:
        """Append a marker and wait to read it back, retrying while the broker refuses it (a
        resource alarm, say): a service must be able to start while a backlog drains."""
        attempt = 0
        while True:
            attempt += 1
            try:
                offset = await self._append_marker(timeout_s=None)
            except PublishFailed as error:
                delay_s = SYNC_RETRY_DELAYS_S[min(attempt, len(SYNC_RETRY_DELAYS_S)) - 1]
                log.warning(
                    "stream.sync_retry", stream=self._stream, error=str(error), retry_in_s=delay_s
                )
                await asyncio.sleep(delay_s)
                continue
            self._current.set()
            log.info("stream.synced", stream=self._stream, offset=offset)
            if self._on_current is not None:
                self._on_current()
            return

    def _interrupted(self) -> None:
        if self._current.is_set():
            log.warning("stream.interrupted", stream=self._stream, offset=self.offset)
        self._current.clear()

    def _resumed(self) -> None:
        # Called from the channel's reopen: catch up in the background, not inside the restore.
        self._current.clear()
        if self._resync is None or self._resync.done():
            self._resync = asyncio.create_task(self._sync())

    def _lost(self) -> None:
        self._current.clear()
        if self._on_lost is not None:
            self._on_lost()
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        """Wait until the stream exists again, then rebuild the state from its start."""
        while True:
            await asyncio.sleep(RECOVERY_POLL_S)
            try:
                if not await self._reader.exists():
                    continue
                if self._on_reset is not None:
                    self._on_reset()
                await self._reader.restart("first")
            except CHANNEL_GONE as error:
                log.warning("stream.recovery_failed", stream=self._stream, error=str(error))
                continue
            log.warning("stream.back", stream=self._stream)
            await self._sync()
            return
