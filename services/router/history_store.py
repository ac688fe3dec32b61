"""The delivery history on disk: every attempt of the delivery log, by delivery, in SQLite.

The store remembers the delivery-log offset it holds everything up to, so a router that restarts
reads on from there instead of the whole log: its start does not grow with traffic. Deliveries
whose last attempt is older than the retention (the delivery log's own) are pruned.

Writes come in groups (`add`): one transaction per group of stream messages, as many records as
arrived while the previous group was written. A record read twice (a stream message read again
after a reconnect) is one attempt: attempts are keyed by delivery, attempt, time and outcome.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from schemas.deliveries import DeliveryAttempted, Outcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS progress (
    stream TEXT PRIMARY KEY,
    applied_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    first_at_ms INTEGER NOT NULL,
    last_at_ms INTEGER NOT NULL,
    last_attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    next_attempt_at_ms INTEGER,
    last_error TEXT,
    test INTEGER NOT NULL,
    replay INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_webhook
    ON deliveries (webhook_id, first_at_ms DESC, delivery_id DESC);
CREATE INDEX IF NOT EXISTS deliveries_by_age ON deliveries (last_at_ms);
CREATE INDEX IF NOT EXISTS deliveries_by_outcome
    ON deliveries (outcome, first_at_ms DESC, delivery_id DESC);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    duration_s REAL,
    error TEXT,
    response_body TEXT,
    next_attempt_in_s REAL,
    replay INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, at_ms, attempt, outcome)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (at_ms);
"""

# The newest record of a delivery (by time, then attempt) says where it stands; an older record
# read late changes only the first time.
_UPSERT_DELIVERY = """
INSERT INTO deliveries (delivery_id, webhook_id, event_id, event_type, first_at_ms, last_at_ms,
                        last_attempt, outcome, next_attempt_at_ms, last_error, test, replay)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (delivery_id) DO UPDATE SET
    first_at_ms = min(first_at_ms, excluded.first_at_ms),
    outcome = CASE WHEN (excluded.last_at_ms, excluded.last_attempt) >= (last_at_ms, last_attempt)
                   THEN excluded.outcome ELSE outcome END,
    next_attempt_at_ms = CASE
        WHEN (excluded.last_at_ms, excluded.last_attempt) >= (last_at_ms, last_attempt)
        THEN excluded.next_attempt_at_ms ELSE next_attempt_at_ms END,
    last_error = CASE
        WHEN (excluded.last_at_ms, excluded.last_attempt) >= (last_at_ms, last_attempt)
        THEN excluded.last_error ELSE last_error END,
    last_attempt = CASE
        WHEN (excluded.last_at_ms, excluded.last_attempt) >= (last_at_ms, last_attempt)
        THEN excluded.last_attempt ELSE last_attempt END,
    last_at_ms = max(last_at_ms, excluded.last_at_ms),
    replay = max(replay, excluded.replay)
"""
_INSERT_ATTEMPT = """
INSERT OR IGNORE INTO attempts (delivery_id, attempt, at_ms, outcome, status_code, duration_s,
                                error, response_body, next_attempt_in_s, replay)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_ATTEMPT_COLUMNS = (
    "delivery_id, attempt, at_ms, outcome, status_code, duration_s, error, response_body, replay"
)
_DELIVERY_COLUMNS = (
    "d.delivery_id, d.webhook_id, d.event_id, d.event_type, d.first_at_ms, d.last_at_ms, "
    "d.outcome, d.next_attempt_at_ms, d.test, d.last_error, d.replay, "
    "(SELECT count(*) FROM attempts a WHERE a.delivery_id = d.delivery_id)"
)


@dataclass(frozen=True, slots=True)
class StoredAttempt:
    attempt: int
    at_ms: int
    outcome: Outcome
    status_code: int | None
    duration_s: float | None
    error: str | None
    response_body: str | None
    replay: bool


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    first_at_ms: int
    last_at_ms: int
    outcome: Outcome
    next_attempt_at_ms: int | None
    test: bool
    last_error: str | None
    replay: bool
    attempt_count: int
    attempts: tuple[StoredAttempt, ...]


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which of a webhook's deliveries to list; times bound the first attempt, in ms."""

    outcome: Outcome | None = None
    event_type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    webhook_ids: frozenset[str] | None = None  # None: every webhook's
    last_error: str | None = None


class BadCursor(ValueError):
    """A cursor this store did not hand out."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the last delivery shown, in the listing's order (newest first)."""

    first_at_ms: int
    delivery_id: str

    def encode(self) -> str:
        raw = f"{self.first_at_ms}:{self.delivery_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, _, delivery_id = raw.partition(":")
            if not delivery_id:
                raise BadCursor("not a cursor of this listing")
            return cls(int(at), delivery_id)
        except (binascii.Error, UnicodeDecodeError, ValueError) as error:
            raise BadCursor("not a cursor of this listing") from error


def _at_ms(record: DeliveryAttempted) -> int:
    return round(record.at.timestamp() * 1000)


def _next_due_ms(record: DeliveryAttempted) -> int | None:
    if record.next_attempt_in_s is None:
        return None
    return _at_ms(record) + round(record.next_attempt_in_s * 1000)


class HistoryStore:
    """One SQLite database of the deliveries of one delivery log."""

    def __init__(self, db: aiosqlite.Connection, stream: str) -> None:
        self._db = db
        self._stream = stream

    @classmethod
    async def open(cls, path: str, stream: str) -> HistoryStore:
        """Open (or create) the database at `path` (`:memory:` keeps it in memory)."""
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        # WAL: readers (the API) are not blocked by the projection's writes, and a commit costs
        # one append, not a rewrite of pages.
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(SCHEMA)
        await db.commit()
        return cls(db, stream)

    async def close(self) -> None:
        await self._db.close()

    async def applied_offset(self) -> int | None:
        """The delivery-log offset everything up to which is stored; None for a new store."""
        async with self._db.execute(
            "SELECT applied_offset FROM progress WHERE stream = ?", (self._stream,)
        ) as rows:
            row = await rows.fetchone()
        return None if row is None else int(row[0])

    async def add(self, records: Sequence[DeliveryAttempted], applied_offset: int) -> None:
        """Store `records` and that everything up to `applied_offset` is stored, in one go."""
        try:
            await self._write(records, applied_offset)
        except sqlite3.Error:
            await self._db.rollback()  # none of it, so all of it can be written again
            raise

    async def _write(self, records: Sequence[DeliveryAttempted], applied_offset: int) -> None:
        await self._db.executemany(
            _INSERT_ATTEMPT,
            [
                (
                    r.delivery_id,
                    r.attempt,
                    _at_ms(r),
                    r.outcome,
                    r.status_code,
                    r.duration_s,
                    r.error,
                    r.response_body,
                    r.next_attempt_in_s,
                    int(r.replay),
                )
                for r in records
            ],
        )
        await self._db.executemany(
            _UPSERT_DELIVERY,
            [
                (
                    r.delivery_id,
                    r.webhook_id,
                    r.event_id,
                    r.event_type,
                    _at_ms(r),
                    _at_ms(r),
                    r.attempt,
                    r.outcome,
                    _next_due_ms(r),
                    r.error,
                    int(r.test),
                    int(r.replay),
                )
                for r in records
            ],
        )
        await self._db.execute(
            "INSERT INTO progress (stream, applied_offset) VALUES (?, ?) "
            "ON CONFLICT (stream) DO UPDATE SET applied_offset = excluded.applied_offset",
            (self._stream, applied_offset),
        )
        await self._db.commit()

    async def clear(self) -> None:
        """Forget everything (the delivery log was deleted; a new one starts at offset 0)."""
        await self._db.execute("DELETE FROM attempts")
        await self._db.execute("DELETE FROM deliveries")
        await self._db.execute("DELETE FROM progress")
        await self._db.commit()

    async def prune(self, older_than_ms: int) -> int:
        """Drop deliveries whose last attempt is older than `older_than_ms`; how many went."""
        await self._db.execute(
            "DELETE FROM attempts WHERE delivery_id IN "
            "(SELECT delivery_id FROM deliveries WHERE last_at_ms < ?)",
            (older_than_ms,),
        )
        cursor = await self._db.execute(
            "DELETE FROM deliveries WHERE last_at_ms < ?", (older_than_ms,)
        )
        await self._db.commit()
        return cursor.rowcount

    async def deliveries(
        self,
        wanted: DeliveryFilter,
        *,
        limit: int,
        after: Cursor | None = None,
    ) -> list[StoredDelivery]:
        """A page of deliveries, newest first attempt first, after `after`."""
        where = ["1"]
        arguments: list[Any] = []
        if wanted.webhook_ids is not None:
            where.append(f"d.webhook_id IN ({','.join('?' * len(wanted.webhook_ids))})")
            arguments += sorted(wanted.webhook_ids)
        for clause, value in (
            ("d.last_error = ?", wanted.last_error),
            ("d.outcome = ?", wanted.outcome),
            ("d.event_type = ?", wanted.event_type),
            ("d.first_at_ms >= ?", wanted.since_ms),
            ("d.first_at_ms < ?", wanted.until_ms),
        ):
            if value is not None:
                where.append(clause)
                arguments.append(value)
        if after is not None:
            where.append("(d.first_at_ms, d.delivery_id) < (?, ?)")
            arguments += [after.first_at_ms, after.delivery_id]
        query = (
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE {' AND '.join(where)} "  # noqa: S608 -- only our own fragments; values are bound
            "ORDER BY d.first_at_ms DESC, d.delivery_id DESC LIMIT ?"
        )
        async with self._db.execute(query, [*arguments, limit]) as rows:
            found = list(await rows.fetchall())
        attempts = await self._attempts_of([row[0] for row in found])
        return [_delivery(row, attempts.get(row[0], ())) for row in found]

    async def delivery(self, delivery_id: str) -> StoredDelivery | None:
        async with self._db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.delivery_id = ?",  # noqa: S608 -- a constant
            (delivery_id,),
        ) as rows:
            row = await rows.fetchone()
        if row is None:
            return None
        attempts = await self._attempts_of([delivery_id])
        return _delivery(row, attempts.get(delivery_id, ()))

    async def attempts_since(
        self, since_ms: int, webhook_ids: frozenset[str] | None = None
    ) -> dict[str, int]:
        """How many attempts were made since `since_ms`, by outcome (of these webhooks)."""
        query = "SELECT a.outcome, count(*) FROM attempts a"
        arguments: list[Any] = []
        if webhook_ids is not None:
            marks = ",".join("?" * len(webhook_ids))
            query += f" JOIN deliveries d USING (delivery_id) WHERE d.webhook_id IN ({marks}) AND"
            arguments += sorted(webhook_ids)
        else:
            query += " WHERE"
        query += " a.at_ms >= ? GROUP BY a.outcome"
        async with self._db.execute(query, [*arguments, since_ms]) as rows:
            return {row[0]: int(row[1]) async for row in rows}

    async def last_attempts(self, delivery_ids: Sequence[str]) -> dict[str, int]:
        """The newest attempt number of each of these deliveries that the history holds."""
        if not delivery_ids:
            return {}
        marks = ",".join("?" * len(delivery_ids))
        query = f"SELECT delivery_id, last_attempt FROM deliveries WHERE delivery_id IN ({marks})"  # noqa: S608
        async with self._db.execute(query, list(delivery_ids)) as rows:
            return {row[0]: int(row[1]) async for row in rows}

    async def _attempts_of(
        self, delivery_ids: Sequence[str]
    ) -> dict[str, tuple[StoredAttempt, ...]]:
        if not delivery_ids:
            return {}
        marks = ",".join("?" * len(delivery_ids))
        where = f"delivery_id IN ({marks})"  # placeholders only; the ids are bound
        found: dict[str, list[StoredAttempt]] = {}
        async with self._db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE {where} ORDER BY delivery_id, at_ms",  # noqa: S608
            list(delivery_ids),
        ) as rows:
            async for row in rows:
                attempt = StoredAttempt(
                    attempt=row[1],
                    at_ms=row[2],
                    outcome=row[3],
                    status_code=row[4],
                    duration_s=row[5],
                    error=row[6],
                    response_body=row[7],
                    replay=bool(row[8]),
                )
                found.setdefault(row[0], []).append(attempt)
        return {delivery_id: tuple(attempts) for delivery_id, attempts in found.items()}


def _delivery(row: Any, attempts: tuple[StoredAttempt, ...]) -> StoredDelivery:
    return StoredDelivery(
        delivery_id=row[0],
        webhook_id=row[1],
        event_id=row[2],
        event_type=row[3],
        first_at_ms=row[4],
        last_at_ms=row[5],
        outcome=row[6],
        next_attempt_at_ms=row[7],
        test=bool(row[8]),
        last_error=row[9],
        replay=bool(row[10]),
        attempt_count=row[11],
        attempts=attempts,
    )
