"""Which attempts already have a confirmed outcome in the delivery log: so a message that may
repeat work (redelivered after its ack was lost, republished after a crash, routed again) is not
attempted a second time and does not start a second retry chain.

The record of an attempt is published first, before the retry or dead letter it decides, so a
record in the log says what the attempt decided; whatever the decision produced may still be
missing when the broker went away right after it, and a repeat of the message produces it again.
Each sender follows the log's tail (from a little before it started) and keeps the latest
record of each of the last `capacity` deliveries; for a message that may repeat work it first
catches up with the log (a marker round), then looks.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import structlog
from aio_pika.abc import AbstractRobustConnection
from pydantic import ValidationError

from schemas.deliveries import ATTEMPTS_KIND, RECORD_IDS_HEADER, RecordId, attempts_in
from schemas.topology import Topology
from services.runtime.broker import Publisher
from services.runtime.record_batches import split_ids
from services.runtime.streams import StreamRecord
from services.runtime.synced_stream import SyncedStream

log = structlog.get_logger(__name__)


class Recorded:
    """The latest recorded attempt of one delivery (and, if it was dead-lettered, why)."""

    __slots__ = ("attempt", "error", "next_attempt_due_ms", "next_attempt_in_s", "outcome")

    def __init__(self, record: RecordId, error: str | None = None) -> None:
        self.attempt = record.attempt
        self.outcome = record.outcome
        self.next_attempt_in_s = record.next_attempt_in_s
        self.next_attempt_due_ms = record.next_attempt_due_ms
        self.error = error


class SettledAttempts:
    """The latest recorded attempt of each of the latest `capacity` deliveries."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._latest: OrderedDict[str, Recorded] = OrderedDict()

    def add(self, record: RecordId, error: str | None = None) -> None:
        known = self._latest.get(record.delivery_id)
        if known is None or record.attempt >= known.attempt:
            self._latest[record.delivery_id] = Recorded(record, error)
        self._latest.move_to_end(record.delivery_id)
        while len(self._latest) > self._capacity:
            self._latest.popitem(last=False)

    def latest(self, delivery_id: str) -> Recorded | None:
        """The latest recorded attempt of the delivery, if this sender knows one."""
        return self._latest.get(delivery_id)

    def apply_record(self, record: StreamRecord) -> None:
        """Learn from one delivery-log message: the record ids say which attempts and what came
        of them (a dead letter's reason, and records of older versions, are read from the body)."""
        ids = record_ids_of(record)
        if ids is None or any(key.outcome == "dead_lettered" for key in ids):
            for key, error in _from_body(record):
                self.add(key, error)
            return
        for key in ids:
            self.add(key)

    def __len__(self) -> int:
        return len(self._latest)


def record_ids_of(record: StreamRecord) -> list[RecordId] | None:
    """The attempts a delivery-log message records, from its headers or message id; None when
    they do not say (the body does)."""
    if record.kind == ATTEMPTS_KIND:
        listed = split_ids((record.headers or {}).get(RECORD_IDS_HEADER))
        if listed is None:
            return None
        ids = [RecordId.parse(item) for item in listed]
        return None if None in ids else [key for key in ids if key is not None]
    key = RecordId.parse(record.message_id)
    return None if key is None else [key]


def _from_body(record: StreamRecord) -> list[tuple[RecordId, str | None]]:
    try:
        attempts = attempts_in(record.kind, record.body)
    except (ValidationError, json.JSONDecodeError):
        log.error("delivery_log.unreadable_record", offset=record.offset)
        return []
    return [(RecordId.of(attempt), attempt.error) for attempt in attempts]


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

    def latest(self, delivery_id: str) -> Recorded | None:
        return self.attempts.latest(delivery_id)

    def add(self, record: RecordId, error: str | None = None) -> None:
        """This sender's own record, confirmed: known at once, without reading it back."""
        self.attempts.add(record, error)
