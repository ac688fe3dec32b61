"""Replay: re-deliver to one webhook the events of a time window that it matches, read from the
events stream, so a webhook created today can catch up on last week.

A replay reads `<prefix>.events.log` from the window's start (the broker starts at the chunk
holding that time, so earlier events are skipped by their own `time`) up to a marker it appends
when it begins: events that arrive meanwhile reach the webhook the usual way. Each matching event
becomes a delivery in the deliver queue, marked with the replay's id, at most `rate_per_s` a
second, so live traffic keeps its share. A delivery the history already knows (the webhook got
the event before) is sent as its next attempt, under the same `webhook-id`, so a subscriber that
de-duplicates sees it once. A stream message is acked (credit only) after its deliveries are
confirmed.

Senders append events in batches (one message of kind EVENTS_KIND holds many); up to 0.6 each
event was a message of its own, as published. A replay reads both, and sends an event seen twice
(a sender appended it again after a redelivery, or an upgrade's overlap) once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from schemas.deliveries import first_attempt
from schemas.event_patterns import matches
from schemas.events import EVENTS_KIND, Event
from schemas.history import ReplayView
from schemas.markers import MARKER_KIND
from schemas.topology import DELIVER_KEY, Topology
from schemas.webhooks import WebhookState
from services.router.history_store import HistoryStore
from services.router.queue_passes import PASS_FAULTS
from services.runtime.broker import CHANNEL_GONE, Publisher
from services.runtime.catalog import EventCatalog
from services.runtime.event_messages import (
    UnreadableEvent,
    check_cataloged,
    describe_validation_error,
    read_event,
)
from services.runtime.recent_ids import RecentIds

log = structlog.get_logger(__name__)

# Stream messages handed out ahead of the one being replayed.
PREFETCH = 200
# A replay that reads nothing for this long (its end marker included) has stalled.
STALL_S = 30.0
# Replays whose progress is kept to be asked for.
KEPT_REPLAYS = 50
# Ids of the last events a replay sent, to send an event the stream holds twice only once: the
# copies lie close together (appended again within a redelivery, or during an upgrade).
SENT_IDS_KEPT = 10_000

Status = Literal["running", "done", "failed", "stopped"]


class ReplayBusy(Exception):
    """A replay runs on this router already."""


@dataclass(frozen=True)
class ReplayWindow:
    """Which events a replay sends: in [since, until), of types `event` matches (all if None)."""

    since: datetime
    until: datetime
    event: str | None = None

    def holds(self, event: Event) -> bool:
        return self.since <= event.time < self.until and (
            self.event is None or matches(self.event, event.type)
        )


@dataclass
class ReplayProgress:
    id: str
    webhook_id: str
    window: ReplayWindow
    rate_per_s: float
    started_at: datetime
    status: Status = "running"
    read: int = 0  # events read from the stream
    matched: int = 0
    sent: int = 0
    unreadable: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def shown(self) -> dict[str, Any]:
        view = ReplayView(
            id=self.id,
            webhook_id=self.webhook_id,
            status=self.status,
            since=self.window.since,
            until=self.window.until,
            event=self.window.event,
            rate_per_s=self.rate_per_s,
            read=self.read,
            matched=self.matched,
            sent=self.sent,
            unreadable=self.unreadable,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
        )
        return view.model_dump(mode="json")


def stream_offset(since: datetime) -> datetime | str:
    """Where to start reading: the stream's first message for a time before 1970, which AMQP's
    timestamp (unsigned seconds) cannot carry; else the chunk holding `since`."""
    return since if since.timestamp() >= 1 else "first"


def takes(webhook: WebhookState, event: Event) -> bool:
    """Whether the webhook subscribes to the event: its type, and its account if it has one."""
    return matches(webhook.event, event.type) and (
        webhook.account is None or webhook.account == event.account
    )


class Replays:
    """Runs replays on this router, one at a time, and keeps the progress of recent ones."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        history: HistoryStore,
        *,
        catalog: EventCatalog | None = None,
    ) -> None:
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._history = history
        # The stream holds every event published, also those the senders quarantined because
        # the catalog refused them: a replay sends none of those either.
        self._catalog = catalog or EventCatalog()
        self._progress: dict[str, ReplayProgress] = {}
        self._running: tuple[ReplayProgress, asyncio.Task[None]] | None = None

    def get(self, replay_id: str) -> ReplayProgress | None:
        return self._progress.get(replay_id)

    def start(
        self, webhook: WebhookState, window: ReplayWindow, rate_per_s: float
    ) -> ReplayProgress:
        if self._running is not None and not self._running[1].done():
            raise ReplayBusy(self._running[0].id)
        progress = ReplayProgress(
            id=f"rpl_{secrets.token_hex(8)}",
            webhook_id=webhook.id,
            window=window,
            rate_per_s=rate_per_s,
            started_at=datetime.now(UTC),
        )
        self._progress[progress.id] = progress
        while len(self._progress) > KEPT_REPLAYS:
            del self._progress[next(iter(self._progress))]
        task = asyncio.create_task(self._run(progress, webhook))
        self._running = (progress, task)
        return progress

    async def stop(self) -> None:
        if self._running is not None:
            self._running[1].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running[1]

    async def _run(self, progress: ReplayProgress, webhook: WebhookState) -> None:
        log.info(
            "replay.started",
            replay_id=progress.id,
            webhook_id=webhook.id,
            since=progress.window.since.isoformat(),
            until=progress.window.until.isoformat(),
        )
        try:
            await self._replay(progress, webhook)
            progress.status = "done"
        except asyncio.CancelledError:
            progress.status, progress.error = "stopped", "the router stopped"
            raise
        except TimeoutError:
            progress.status, progress.error = (
                "failed",
                f"the events stream gave nothing for {STALL_S:g}s",
            )
        except PASS_FAULTS as error:
            progress.status, progress.error = "failed", str(error) or type(error).__name__
        except Exception as error:
            # The task's boundary: whatever went wrong, the replay says it failed, not running.
            progress.status, progress.error = "failed", f"{type(error).__name__}: {error}"
            log.exception("replay.crashed", replay_id=progress.id)
        finally:
            progress.finished_at = datetime.now(UTC)
            progress.done.set()
            log.info(
                "replay.finished",
                replay_id=progress.id,
                status=progress.status,
                read=progress.read,
                sent=progress.sent,
                error=progress.error,
            )

    async def _replay(self, progress: ReplayProgress, webhook: WebhookState) -> None:
        stream = self._topology.events_stream
        end_marker = f"replay-end-{progress.id}"
        # Every event appended before this marker is in the window's reach; later ones are live.
        await self._publisher.publish(
            "", stream, b"{}", message_id=end_marker, message_type=MARKER_KIND
        )
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.declare_queue(stream, passive=True, robust=False)
            # Not restored after a reconnect (the replay fails instead, and can be asked again).
            iterator = queue.iterator(
                arguments={"x-stream-offset": stream_offset(progress.window.since)}, robust=False
            )
            pace = _Pace(progress.rate_per_s)
            sent = RecentIds(SENT_IDS_KEPT)
            async with iterator:
                while True:
                    async with asyncio.timeout(STALL_S):
                        message = await anext(iterator)
                    if message.message_id == end_marker:
                        await message.ack()
                        return
                    if message.type != MARKER_KIND:
                        for event in events_in(message):
                            await self._consider(progress, webhook, message, event, pace, sent)
                    await message.ack()
        finally:
            with contextlib.suppress(*CHANNEL_GONE):
                await channel.close()

    async def _consider(
        self,
        progress: ReplayProgress,
        webhook: WebhookState,
        message: AbstractIncomingMessage,
        event: Event | UnreadableEvent,
        pace: _Pace,
        sent: RecentIds,
    ) -> None:
        progress.read += 1
        if isinstance(event, UnreadableEvent):
            progress.unreadable += 1  # quarantined when it was routed; nothing to replay
            return
        if not (progress.window.holds(event) and takes(webhook, event)):
            return
        if event.id in sent:
            return
        try:
            check_cataloged(message, event, self._catalog)
        except UnreadableEvent:
            progress.unreadable += 1
            return
        sent.add(event.id)
        progress.matched += 1
        await pace.wait()
        task = first_attempt(event, webhook).model_copy(update={"replay": progress.id})
        known = await self._history.last_attempts([task.delivery_id])
        if task.delivery_id in known:  # sent before: its next attempt, on a fresh schedule
            last = known[task.delivery_id]
            task = task.model_copy(update={"attempt": last + 1, "schedule_from": last + 1})
        await self._publisher.publish(
            self._topology.deliveries_exchange,
            DELIVER_KEY,
            task.model_dump_json().encode(),
            message_id=task.delivery_id,
            headers={"event_id": event.id, "webhook_id": webhook.id, "replay": progress.id},
        )
        progress.sent += 1


def events_in(message: AbstractIncomingMessage) -> list[Event | UnreadableEvent]:
    """The events of one events-stream message: a senders' batch, or (up to 0.6) one event as
    published. Each one that cannot be read is its reason, so the others are still replayed."""
    if message.type != EVENTS_KIND:
        try:
            return [read_event(message)]
        except UnreadableEvent as unreadable:
            return [unreadable]
    try:
        # Python's reader, as the senders' (read_event): whatever they read, this reads too.
        listed = json.loads(message.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        listed = None
    if not isinstance(listed, list):
        return [UnreadableEvent("an events batch that is not a JSON array")]
    return [_stored_event(item) for item in listed]


def _stored_event(item: Any) -> Event | UnreadableEvent:
    try:
        return Event.model_validate(item)
    except ValidationError as error:
        return UnreadableEvent(describe_validation_error(error))


class _Pace:
    """At most `rate_per_s` sends a second, evenly spaced."""

    def __init__(self, rate_per_s: float) -> None:
        self._gap_s = 1 / rate_per_s
        self._next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(self._next, now) + self._gap_s
