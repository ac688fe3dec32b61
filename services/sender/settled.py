"""Which attempts already have a confirmed outcome in the delivery log: so a message that may
repeat work (redelivered after its ack was lost, republished after a crash, routed again) is not
attempted a second time and does not start a second retry chain.

The record of an attempt is published last, after its retry or dead letter was confirmed, so a
record in the log means everything the attempt produced is durable. Each sender follows the log's
tail (from a little before it started) and keeps the latest `capacity` attempts; for a message
that may repeat it first catches up with the log (a marker round), then looks.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import structlog
from aio_pika.abc import AbstractRobustConnection

from schemas.deliveries import FINAL_OUTCOMES, parse_log_record_id
from schemas.topology import Topology
from services.runtime.broker import Publisher
from services.runtime.streams import StreamRecord
from services.runtime.synced_stream import SyncedStream

log = structlog.get_logger(__name__)


# Stands for "every attempt": a delivery whose recorded outcome ended it has no attempt left, so
# any message of it (a retry that a forked chain published, say) is recorded already.
FINISHED = sys.maxsize


class SettledAttempts:
    """The highest recorded attempt of the latest `capacity` deliveries (FINISHED once one
    ended the delivery)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._attempts: OrderedDict[str, int] = OrderedDict()

    def add(self, delivery_id: str, attempt: int, *, final: bool = False) -> None:
        known = self._attempts.get(delivery_id, 0)
        self._attempts[delivery_id] = FINISHED if final else max(known, attempt)
        self._attempts.move_to_end(delivery_id)
        while len(self._attempts) > self._capacity:
            self._attempts.popitem(last=False)

    def recorded(self, delivery_id: str, attempt: int) -> bool:
        """Whether this attempt (or a later one) of the delivery has an outcome in the log, or the
        delivery is finished."""
        return self._attempts.get(delivery_id, 0) >= attempt

    def apply_record(self, record: StreamRecord) -> None:
        """Learn from one delivery-log message; its id says which attempt (older records: body)."""
        key = parse_log_record_id(record.message_id)
        if key is None:
            key = _key_from_body(record.body)
        if key is not None:
            delivery_id, attempt, final = key
            self.add(delivery_id, attempt, final=final)

    def __len__(self) -> int:
        return len(self._attempts)


def _key_from_body(body: bytes) -> tuple[str, int, bool] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    delivery_id, attempt = parsed.get("delivery_id"), parsed.get("attempt")
    if isinstance(delivery_id, str) and isinstance(attempt, int):
        return delivery_id, attempt, parsed.get("outcome") in FINAL_OUTCOMES
    return None


class SettledLog:
    """The sender's view of the delivery log: `SettledAttempts` kept current by following it."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        *,
        capacity: int,
        lookback_s: float,
    ) -> None:
        self.attempts = SettledAttempts(capacity)
        self._stream = SyncedStream(
            connection,
            publisher,
            topology.delivery_log_stream,
            topology.queues()[topology.delivery_log_stream],
            self.attempts.apply_record,
            start=datetime.now(UTC) - timedelta(seconds=lookback_s),
        )

    async def start(self, reader_name: str) -> None:
        await self._stream.start(reader_name)

    async def stop(self) -> None:
        await self._stream.stop()

    async def caught_up(self) -> None:
        """Return once every record confirmed before this call has been read."""
        await self._stream.caught_up()

    def recorded(self, delivery_id: str, attempt: int) -> bool:
        return self.attempts.recorded(delivery_id, attempt)

    def add(self, delivery_id: str, attempt: int, *, final: bool) -> None:
        """This sender's own record, confirmed: known at once, without reading it back."""
        self.attempts.add(delivery_id, attempt, final=final)
