"""One pass over a queue's messages, each settled only once what replaces it is confirmed: the
machinery of redriving dead letters and of listing, redriving and discarding quarantined messages.

A pass reads the queue as deep as it was at the start, with an exclusive consumer, so one pass runs
at a time on a queue across every router. Each message is handed to a `SettleOne`, which moves it
(publishes it where it goes now), keeps it (publishes it again at the back of the queue) or drops
it, and says which; then it is acked. Nothing leaves the queue that was not moved or dropped on
purpose; a pass cut short (the broker gone) leaves the rest where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import ChannelAccessRefused

from schemas.history import RedriveView
from services.runtime.broker import CHANNEL_GONE, PublishFailed

log = structlog.get_logger(__name__)

# Messages held unacked at once during a pass.
PREFETCH = 100
# A pass that gets no message for this long ends: another consumer took the rest.
IDLE_S = 5.0
# What ends a pass early: the broker gone, a publish not confirmed.
PASS_FAULTS: tuple[type[Exception], ...] = (*CHANNEL_GONE, PublishFailed)
# Passes whose progress is kept to be asked for.
KEPT_PASSES = 50

Status = Literal["running", "done", "failed"]


class Action(enum.Enum):
    MOVED = "moved"  # published where it goes now
    KEPT = "kept"  # published again at the back of the queue
    DROPPED = "dropped"  # on purpose


# Settles one message of a pass (whose progress it is told) and says how.
SettleOne = Callable[["PassProgress", AbstractIncomingMessage], Awaitable[Action]]


class PassBusy(Exception):
    """Another pass holds the queue."""


@dataclass
class PassProgress:
    """How far a pass has come: the messages it looked at, moved, kept and dropped."""

    id: str
    started_at: datetime
    status: Status = "running"
    total: int = 0  # the queue's depth when the pass began
    looked_at: int = 0
    moved: int = 0
    kept: int = 0
    dropped: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def shown(self) -> dict[str, Any]:
        view = RedriveView(
            id=self.id,
            status=self.status,
            total=self.total,
            looked_at=self.looked_at,
            redriven=self.moved,
            kept=self.kept,
            discarded=self.dropped,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
        )
        return view.model_dump(mode="json")


class QueuePasses:
    """Runs passes over one queue on this router, one at a time, and keeps the progress of
    recent ones."""

    def __init__(self, connection: AbstractRobustConnection, queue: str, id_prefix: str) -> None:
        self._connection = connection
        self._queue = queue
        self._id_prefix = id_prefix
        self._progress: dict[str, PassProgress] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: PassProgress | None = None

    def get(self, pass_id: str) -> PassProgress | None:
        return self._progress.get(pass_id)

    async def start(self, settle_one: SettleOne) -> PassProgress:
        """Begin a pass in the background; PassBusy when one runs here or on another router."""
        if self._running is not None:
            raise PassBusy(self._running.id)
        progress = PassProgress(
            id=f"{self._id_prefix}_{secrets.token_hex(8)}", started_at=datetime.now(UTC)
        )
        self._running = progress
        self._keep(progress)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(progress, settle_one, started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await started  # PassBusy if another router's pass holds the queue
        return progress

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _keep(self, progress: PassProgress) -> None:
        self._progress[progress.id] = progress
        while len(self._progress) > KEPT_PASSES:
            del self._progress[next(iter(self._progress))]

    async def _run(
        self, progress: PassProgress, settle_one: SettleOne, started: asyncio.Future[None]
    ) -> None:
        try:
            await self._pass(progress, settle_one, started)
            progress.status = "done"
        except PassBusy as busy:
            self._progress.pop(progress.id, None)
            if not started.done():
                started.set_exception(busy)
            return
        except PASS_FAULTS as error:
            progress.status, progress.error = "failed", str(error) or type(error).__name__
            log.error("queue_pass.failed", pass_id=progress.id, error=progress.error)
        except Exception as error:
            # The task's boundary: whatever went wrong, the pass says it failed, not running.
            progress.status, progress.error = "failed", f"{type(error).__name__}: {error}"
            log.exception("queue_pass.crashed", pass_id=progress.id)
        finally:
            self._running = None
            progress.finished_at = datetime.now(UTC)
            progress.done.set()
            if not started.done():
                started.set_result(None)
        log.info(
            "queue_pass.finished",
            pass_id=progress.id,
            queue=self._queue,
            status=progress.status,
            moved=progress.moved,
            kept=progress.kept,
            dropped=progress.dropped,
        )

    async def _pass(
        self, progress: PassProgress, settle_one: SettleOne, started: asyncio.Future[None]
    ) -> None:
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue: AbstractQueue = await channel.declare_queue(
                self._queue, passive=True, robust=False
            )
            progress.total = queue.declaration_result.message_count or 0
            if progress.total == 0:
                started.set_result(None)
                return
            try:
                # Not restored after a reconnect: the pass fails, and what it had not settled
                # went back to the queue with the channel.
                iterator = queue.iterator(exclusive=True, robust=False)
                await iterator.consume()
            except ChannelAccessRefused:
                raise PassBusy("another router's pass holds the queue") from None
            started.set_result(None)
            log.info(
                "queue_pass.started", pass_id=progress.id, queue=self._queue, total=progress.total
            )
            async with iterator:
                while progress.looked_at < progress.total:
                    try:
                        async with asyncio.timeout(IDLE_S):
                            message = await anext(iterator)
                    except TimeoutError:
                        return  # fewer than counted: another consumer took some
                    action = await settle_one(progress, message)
                    await message.ack()
                    progress.looked_at += 1
                    if action is Action.MOVED:
                        progress.moved += 1
                    elif action is Action.KEPT:
                        progress.kept += 1
                    else:
                        progress.dropped += 1
        finally:
            with contextlib.suppress(*CHANNEL_GONE):
                await channel.close()
