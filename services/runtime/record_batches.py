"""Delivery-log records published in batches: one confirmed stream message carries every record
that arrived while the previous batches were being confirmed (a group commit).

The broker writes, and each of the log's readers is sent and acks, one message per batch instead
of one per attempt. Nothing waits for a batch to fill: a record that finds a free publishing slot
goes out at once, alone; only under load do records gather, while the slots are busy. `add`
returns once the record's batch is confirmed, or raises what its publish raised, so a caller
treats its record exactly as if it had been published alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from schemas.deliveries import ATTEMPTS_KIND, RECORD_IDS_HEADER
from services.runtime.broker import Publisher, PublishOutcomeUnknown

# Bounds of one batch: the stream message stays far below the broker's frame and message limits.
MAX_RECORDS = 64
MAX_BYTES = 256 * 1024
# Batches being confirmed at once.
SLOTS = 2


@dataclass(slots=True)
class _Pending:
    record_id: str
    body: bytes
    confirmed: asyncio.Future[None]


class RecordBatches:
    """Publishes records to one stream, batched while earlier batches are in flight."""

    def __init__(
        self,
        publisher: Publisher,
        stream: str,
        *,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
        slots: int = SLOTS,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._publisher = publisher
        self._stream = stream
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._slots = slots
        self._on_batch = on_batch  # told each confirmed batch's size
        self._waiting: list[_Pending] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def add(self, record_id: str, body: bytes) -> None:
        """Publish one record (a JSON object); return once its batch is confirmed."""
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A caller that stops waiting (its hold expired) must not leave an error unretrieved.
        confirmed.add_done_callback(_retrieve)
        self._waiting.append(_Pending(record_id, body, confirmed))
        self._send_what_fits()
        await asyncio.shield(confirmed)

    async def close(self) -> None:
        """Wait for the batches in flight (their callers are told how they went)."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _send_what_fits(self) -> None:
        while self._waiting and len(self._in_flight) < self._slots:
            batch = self._take_batch()
            task = asyncio.create_task(self._publish(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _take_batch(self) -> list[_Pending]:
        size = 0
        count = 0
        for pending in self._waiting:
            if count and (count >= self._max_records or size + len(pending.body) > self._max_bytes):
                break
            size += len(pending.body) + 1
            count += 1
        batch, self._waiting = self._waiting[:count], self._waiting[count:]
        return batch

    async def _publish(self, batch: list[_Pending]) -> None:
        body = b"[" + b",".join(pending.body for pending in batch) + b"]"
        published = False
        error: Exception | None = None
        try:
            await self._publisher.publish(
                "",
                self._stream,
                body,
                headers={RECORD_IDS_HEADER: [pending.record_id for pending in batch]},
                message_type=ATTEMPTS_KIND,
            )
            published = True
            if self._on_batch is not None:
                self._on_batch(len(batch))
        except Exception as failed:
            error = failed
        finally:  # also when cancelled: no caller is left waiting
            for pending in batch:
                if pending.confirmed.done():
                    continue
                if published:
                    pending.confirmed.set_result(None)
                else:
                    pending.confirmed.set_exception(
                        error or PublishOutcomeUnknown("the batch's publish was cancelled")
                    )

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._send_what_fits()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
