"""The delivery history, kept current from the delivery log: the projection behind
`GET /webhooks/:id/deliveries` and `GET /deliveries/:id`.

It resumes after the offset its store holds everything up to, so a restart reads only what was
logged meanwhile. Records are read as they come and written in groups by one writer task: while
a group is being written, the next gathers.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

import structlog
from aio_pika.abc import AbstractRobustConnection
from pydantic import ValidationError

from schemas.deliveries import DeliveryAttempted, attempts_in
from schemas.topology import Topology
from services.router.history_store import HistoryStore
from services.runtime.broker import Publisher
from services.runtime.streams import StreamRecord
from services.runtime.synced_stream import SyncedStream

log = structlog.get_logger(__name__)

# How often deliveries older than the retention are pruned.
PRUNE_EVERY_S = 3600.0
# After a failed write (a full disk, a file locked by another process), wait this long.
WRITE_RETRY_S = 1.0


class HistoryProjection:
    """Follows the delivery log into a `HistoryStore`."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        store: HistoryStore,
        *,
        retention_s: float,
    ) -> None:
        self.store = store
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._retention_s = retention_s
        self._pending: list[DeliveryAttempted] = []
        self._pending_offset = -1  # the newest offset read
        self.stored_offset = -1  # the newest offset in the store
        self.resumed_after: int | None = None  # the offset the store held at start, if any
        self._reset = False
        self._wake = asyncio.Event()
        self._stored = asyncio.Event()
        self._follower: SyncedStream | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def current(self) -> bool:
        return self._follower is not None and self._follower.is_current

    async def start(self) -> None:
        """Follow the delivery log after what the store holds, in the background."""
        applied = self.resumed_after = await self.store.applied_offset()
        self.stored_offset = self._pending_offset = -1 if applied is None else applied
        log.info("history.loaded", resume_at=self.stored_offset + 1)
        self._follower = SyncedStream(
            self._connection,
            self._publisher,
            self._topology.delivery_log_stream,
            self._topology.queues()[self._topology.delivery_log_stream],
            self._read,
            start="first" if applied is None else applied + 1,
            on_reset=self._on_reset,
        )
        self._tasks = [
            asyncio.create_task(self._write_forever()),
            asyncio.create_task(self._prune_forever()),
            asyncio.create_task(self._follower.start("router-history")),
        ]

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._write_pending()  # what was read is not read again

    async def caught_up(self) -> None:
        """Return once every record logged before this call is in the store."""
        assert self._follower is not None
        await self._follower.caught_up()
        target = self._pending_offset
        while self.stored_offset < target:
            self._stored.clear()
            await self._stored.wait()

    def _read(self, record: StreamRecord) -> None:
        if record.offset <= self._pending_offset:
            return  # stored already, or read again after a reconnect
        self._pending_offset = record.offset
        try:
            self._pending += attempts_in(record.kind, record.body)
        except ValidationError as error:
            log.error(
                "delivery_log.unreadable_record", offset=record.offset, error=str(error)[:500]
            )
        self._wake.set()

    def _on_reset(self) -> None:
        """The delivery log was deleted: its new offsets start over, so does the history."""
        self._pending, self._pending_offset, self._reset = [], -1, True
        self._wake.set()

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_pending()
            except sqlite3.OperationalError as error:
                # A full disk, a file locked by another process: the records stay pending, the
                # history falls behind, the router goes on.
                log.error("history.write_failed", error=str(error), retry_in_s=WRITE_RETRY_S)
                await asyncio.sleep(WRITE_RETRY_S)
                self._wake.set()
            except sqlite3.Error as error:
                # Records the store cannot take (a bug, not a passing fault) would fail forever:
                # they are left out, loudly, and the history goes on after them.
                log.error(
                    "history.records_skipped",
                    error=str(error),
                    records=len(self._pending),
                    up_to_offset=self._pending_offset,
                )
                self._pending = []
                self.stored_offset = self._pending_offset
                self._stored.set()

    async def _write_pending(self) -> None:
        if self._reset:
            self._reset = False
            await self.store.clear()
            self.stored_offset = -1
        if self._pending_offset <= self.stored_offset:
            return
        records, offset = self._pending, self._pending_offset
        self._pending = []
        try:
            await self.store.add(records, offset)
        except BaseException:
            self._pending = records + self._pending  # written again: a record stored twice is one
            raise
        self.stored_offset = offset
        self._stored.set()

    async def _prune_forever(self) -> None:
        while True:
            cutoff_ms = round((time.time() - self._retention_s) * 1000)
            try:
                pruned = await self.store.prune(cutoff_ms)
            except sqlite3.Error as error:
                log.error("history.prune_failed", error=str(error))
            else:
                if pruned:
                    log.info("history.pruned", deliveries=pruned)
            await asyncio.sleep(PRUNE_EVERY_S)
