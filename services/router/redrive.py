"""Redriving dead letters: each chosen one is sent again as the next attempt of its delivery, with
a fresh retry schedule and the same `webhook-id`, so a subscriber can de-duplicate.

A redrive makes one pass over `<prefix>.dead` as deep as it was at the start. It consumes with an
exclusive consumer, so one redrive runs at a time across every router. Each message is settled
only after what replaces it is confirmed: a chosen one once its redriven delivery is in the
deliver queue, any other once it is published again at the back of the dead queue. Nothing leaves
the dead letters unless it was redriven; a redrive cut short (the broker gone) leaves the rest
where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import ChannelAccessRefused
from pydantic import ValidationError

from schemas.deliveries import DELIVERY_TASK, DeliveryTask
from schemas.history import RedriveView
from schemas.topology import DELIVER_KEY, Topology
from services.runtime.broker import CHANNEL_GONE, Publisher, PublishFailed

log = structlog.get_logger(__name__)

# Dead letters held unacked at once during a pass.
PREFETCH = 100
# A pass that gets no message for this long ends: another consumer took the rest.
IDLE_S = 5.0
# Header on a redriven delivery: which redrive sent it.
REDRIVE_HEADER = "x-hookline-redrive"
# What ends a pass early: the broker gone, a publish not confirmed.
REDRIVE_FAULTS: tuple[type[Exception], ...] = (*CHANNEL_GONE, PublishFailed)
# Redrives whose progress is kept to be asked for.
KEPT_REDRIVES = 50

Status = Literal["running", "done", "failed"]
Chooses = Callable[[DeliveryTask], bool]


class RedriveBusy(Exception):
    """Another redrive holds the dead letters."""


@dataclass
class RedriveProgress:
    """How far a redrive has come: the dead letters it looked at, redrove and left in place."""

    id: str
    started_at: datetime
    status: Status = "running"
    total: int = 0  # the dead queue's depth when the pass began
    looked_at: int = 0
    redriven: int = 0
    kept: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def shown(self) -> dict[str, Any]:
        view = RedriveView(
            id=self.id,
            status=self.status,
            total=self.total,
            looked_at=self.looked_at,
            redriven=self.redriven,
            kept=self.kept,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
        )
        return view.model_dump(mode="json")


class Redrives:
    """Starts redrives on this router, one at a time, and keeps the progress of recent ones."""

    def __init__(
        self, connection: AbstractRobustConnection, publisher: Publisher, topology: Topology
    ) -> None:
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._progress: dict[str, RedriveProgress] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: RedriveProgress | None = None

    def get(self, redrive_id: str) -> RedriveProgress | None:
        return self._progress.get(redrive_id)

    async def start(self, chooses: Chooses) -> RedriveProgress:
        """Begin a pass over the dead letters in the background; RedriveBusy when one runs."""
        if self._running is not None:
            raise RedriveBusy(self._running.id)
        progress = RedriveProgress(id=f"rdr_{secrets.token_hex(8)}", started_at=datetime.now(UTC))
        self._running = progress
        self._keep(progress)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(progress, chooses, started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await started  # RedriveBusy if another router's redrive holds the queue
        return progress

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _keep(self, progress: RedriveProgress) -> None:
        self._progress[progress.id] = progress
        while len(self._progress) > KEPT_REDRIVES:
            del self._progress[next(iter(self._progress))]

    async def _run(
        self, progress: RedriveProgress, chooses: Chooses, started: asyncio.Future[None]
    ) -> None:
        try:
            await self._pass(progress, chooses, started)
            progress.status = "done"
        except RedriveBusy as busy:
            self._progress.pop(progress.id, None)
            if not started.done():
                started.set_exception(busy)
            return
        except REDRIVE_FAULTS as error:
            progress.status, progress.error = "failed", str(error) or type(error).__name__
            log.error("redrive.failed", redrive_id=progress.id, error=progress.error)
        finally:
            self._running = None
            progress.finished_at = datetime.now(UTC)
            progress.done.set()
            if not started.done():
                started.set_result(None)
        log.info(
            "redrive.finished",
            redrive_id=progress.id,
            status=progress.status,
            redriven=progress.redriven,
            kept=progress.kept,
        )

    async def _pass(
        self, progress: RedriveProgress, chooses: Chooses, started: asyncio.Future[None]
    ) -> None:
        dead = self._topology.dead_queue
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue: AbstractQueue = await channel.declare_queue(dead, passive=True, robust=False)
            progress.total = queue.declaration_result.message_count or 0
            if progress.total == 0:
                started.set_result(None)
                return
            try:
                iterator = queue.iterator(exclusive=True)
                await iterator.consume()
            except ChannelAccessRefused:
                raise RedriveBusy("another router's redrive holds the dead letters") from None
            started.set_result(None)
            log.info("redrive.started", redrive_id=progress.id, dead_letters=progress.total)
            async with iterator:
                while progress.looked_at < progress.total:
                    try:
                        async with asyncio.timeout(IDLE_S):
                            message = await anext(iterator)
                    except TimeoutError:
                        return  # fewer than counted: another consumer took some
                    await self._settle(progress, message, chooses)
        finally:
            with contextlib.suppress(*CHANNEL_GONE):
                await channel.close()

    async def _settle(
        self, progress: RedriveProgress, message: AbstractIncomingMessage, chooses: Chooses
    ) -> None:
        task = _task_of(message)
        if task is not None and chooses(task):
            redriven = task.redriven()
            await self._publisher.publish(
                self._topology.deliveries_exchange,
                DELIVER_KEY,
                redriven.model_dump_json().encode(),
                message_id=redriven.delivery_id,
                headers={
                    "event_id": redriven.event.id,
                    "webhook_id": redriven.webhook_id,
                    REDRIVE_HEADER: progress.id,
                },
            )
            progress.redriven += 1
            log.info(
                "delivery.redriven",
                redrive_id=progress.id,
                delivery_id=redriven.delivery_id,
                webhook_id=redriven.webhook_id,
                attempt=redriven.attempt,
            )
        else:
            # Not chosen (or not a delivery at all): back at the end of the dead letters, as it
            # was. The pass stops before it comes round again.
            await self._publisher.republish(message, self._topology.dead_queue, headers={})
            progress.kept += 1
        await message.ack()
        progress.looked_at += 1


def _task_of(message: AbstractIncomingMessage) -> DeliveryTask | None:
    try:
        return DELIVERY_TASK.validate_json(message.body)
    except ValidationError:
        return None
