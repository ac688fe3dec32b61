"""Records published to a stream in batches: one confirmed stream message carries every record
that arrived while the previous batches were being confirmed (a group commit). Senders write the
delivery log's attempts this way, and the events they route to the events stream.

The broker writes, and each of the log's readers is sent and acks, one message per batch instead
of one per attempt. Nothing waits for a batch to fill: a record that finds a free publishing slot
goes out at once, alone; under load records gather while the slots are busy. With `gather_s`,
batches also start at most that often: at a steady moderate load, when the slots are free
most of the time, records would otherwise leave two or three to a message, and every message
costs the broker a write and each reader a delivery. A record after a quiet spell still leaves at
once, and a full batch never waits. `add` returns once the record's batch is confirmed, or raises
what its publish raised, so a caller treats its record exactly as if it had been published alone.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
        kind: str = ATTEMPTS_KIND,
        ids_header: str = RECORD_IDS_HEADER,
        headers: Mapping[str, Any] | None = None,
        gather_s: float = 0.0,
    ) -> None:
        self._publisher = publisher
        self._stream = stream
        # Each batch's AMQP `type`, the header listing its records' ids in order (readers that
        # need only those skip the body), and headers every batch carries.
        self._kind = kind
        self._ids_header = ids_header
        self._headers = dict(headers or {})
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._slots = slots
        self._on_batch = on_batch  # told each confirmed batch's size
        self._waiting: list[_Pending] = []
        self._waiting_bytes = 0  # what the waiting records take in a batch's body
        self._in_flight: set[asyncio.Task[None]] = set()
        # Batches start at most every `gather_s` (loop time of the last start; the timer that
        # sends what gathered meanwhile).
        self._gather_s = gather_s
        self._last_start = -math.inf
        self._gathering: asyncio.TimerHandle | None = None

    async def add(self, record_id: str, body: bytes) -> None:
        """Publish one record (a JSON object); return once its batch is confirmed."""
        await asyncio.shield(self.submit(record_id, body))

    def submit(self, record_id: str, body: bytes) -> asyncio.Future[None]:
        """Publish one record; the future is done once its batch is confirmed (or failed). Await
        it shielded: cancelling it would not take the record out of its batch."""
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A caller that stops waiting (its hold expired) must not leave an error unretrieved.
        confirmed.add_done_callback(_retrieve)
        self._waiting.append(_Pending(record_id, body, confirmed))
        self._waiting_bytes += len(body) + 1
        self._send_what_fits()
        return confirmed

    async def close(self) -> None:
        """Send what is gathering now, and wait for every batch (their callers are told how
        they went)."""
        self._gather_s = 0.0
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None
        self._send_what_fits()
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _send_what_fits(self, *, gathered: bool = False) -> None:
        while self._waiting and len(self._in_flight) < self._slots:
            if self._gather_s and not gathered and not self._full():
                loop = asyncio.get_running_loop()
                wait_s = self._last_start + self._gather_s - loop.time()
                if wait_s > 0:
                    if self._gathering is None:
                        self._gathering = loop.call_later(wait_s, self._gathered)
                    return
            gathered = False
            self._last_start = asyncio.get_running_loop().time()
            batch = self._take_batch()
            task = asyncio.create_task(self._publish(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _gathered(self) -> None:
        self._gathering = None
        self._send_what_fits(gathered=True)

    def _full(self) -> bool:
        """Whether what waits fills a batch already."""
        return len(self._waiting) >= self._max_records or self._waiting_bytes > self._max_bytes

    def _take_batch(self) -> list[_Pending]:
        size = 0
        count = 0
        for pending in self._waiting:
            if count and (count >= self._max_records or size + len(pending.body) > self._max_bytes):
                break
            size += len(pending.body) + 1
            count += 1
        batch, self._waiting = self._waiting[:count], self._waiting[count:]
        self._waiting_bytes -= size
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
                headers={
                    **self._headers,
                    self._ids_header: join_ids(pending.record_id for pending in batch),
                },
                message_type=self._kind,
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


def join_ids(ids: Iterable[str]) -> str:
    """A batch's record ids as one header value, split by `split_ids`. Not an AMQP array: a
    stream drops array headers (RabbitMQ 3.10 converts them to AMQP 1.0 and leaves them out), and
    ids never hold a space (event ids are printable ASCII without one)."""
    return " ".join(ids)


def split_ids(header: object) -> list[str] | None:
    """The ids `join_ids` made, or None when the header is not such a value."""
    if isinstance(header, bytes):
        header = header.decode(errors="replace")
    if not isinstance(header, str) or not header:
        return None
    return header.split(" ")


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
