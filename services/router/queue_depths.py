"""Queue depths and consumer counts for /metrics, polled from the broker.

A passive `queue.declare` answers with a queue's ready-message and consumer counts. What this
builds on (DESIGN.md, and probed on RabbitMQ 3.10.8 with aio-pika 10.2): a robust channel caches
passive declares and answers stale counts unless told `robust=False`; a passive declare of a queue
that does not exist makes the broker close the channel (404); a quorum queue's count leaves out
the messages delivered to a consumer and not yet acked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity

from services.router.metrics import QueueDepthMetrics
from services.runtime.broker import CHANNEL_GONE

log = structlog.get_logger(__name__)

# Bound of one poll (a dozen passive declares take milliseconds) and of closing its channel.
POLL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class QueueCounts:
    messages: int
    consumers: int


class QueueProbe(Protocol):
    async def counts(self, queue: str) -> QueueCounts | None:
        """The queue's counts now; None if the broker has no such queue. Raises one of
        CHANNEL_GONE if the broker cannot be asked."""

    async def close(self) -> None: ...


class BrokerProbe:
    """Passive declares on a channel of their own, so the 404 of a missing queue closes nothing
    else. While the connection is down its channel is restored by the robust connection."""

    def __init__(self, connection: AbstractRobustConnection) -> None:
        self._connection = connection
        self._channel: AbstractRobustChannel | None = None

    async def counts(self, queue: str) -> QueueCounts | None:
        if self._channel is None:
            self._channel = await self._connection.channel(publisher_confirms=False)
        try:
            # robust=False: a fresh declare-ok each time, and nothing declared again on reconnect.
            declared = await self._channel.declare_queue(queue, passive=True, robust=False)
        except ChannelNotFoundEntity:
            # The broker closed the channel. Close ours too, or the robust channel reopens itself
            # behind us; the next queue gets a new one.
            await self.close()
            return None
        result = declared.declaration_result
        return QueueCounts(int(result.message_count or 0), int(result.consumer_count or 0))

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(*CHANNEL_GONE):
                await channel.close()


class QueueDepthPoller:
    """Every `interval_s`, reads each queue's counts into the gauges, all of one poll together.

    A poll that fails (a timeout, the broker gone) leaves the gauges and the polled-at time as they
    were, is counted, and is tried again at the next turn: a broker outage never ends the poller,
    which reads again once the robust connection is back. A missing queue is logged once and its
    series are dropped, so no stale number stays on the dashboard.
    """

    def __init__(
        self,
        probe: QueueProbe,
        queues: Mapping[str, str],
        metrics: QueueDepthMetrics,
        *,
        interval_s: float,
        timeout_s: float = POLL_TIMEOUT_S,
    ) -> None:
        self._probe = probe
        self._queues = dict(queues)  # role → name
        self._metrics = metrics
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._missing: set[str] = set()
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._poll_periodically())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout_s):
                await self._probe.close()

    async def _poll_periodically(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._interval_s)

    async def poll(self) -> bool:
        """Read every queue's counts into the gauges; False if the poll did not finish."""
        read: dict[str, QueueCounts | None] = {}
        try:
            async with asyncio.timeout(self._timeout_s):
                for role, name in self._queues.items():
                    read[role] = await self._probe.counts(name)
        except TimeoutError:
            self._failed("timeout", f"no answer within {self._timeout_s:g}s")
            return False
        except CHANNEL_GONE as error:
            self._failed("broker", str(error) or type(error).__name__)
            return False
        for role, counts in read.items():
            if counts is None:
                self._missed(role)
                continue
            self._missing.discard(role)
            self._metrics.messages.labels(queue=role).set(counts.messages)
            self._metrics.consumers.labels(queue=role).set(counts.consumers)
        self._metrics.polled_at.set_to_current_time()
        if self._failing:
            self._failing = False
            log.info("queue_depths.poll_resumed")
        return True

    def _failed(self, reason: str, error: str) -> None:
        self._metrics.poll_failures.labels(reason=reason).inc()
        if not self._failing:  # once per outage; the counter counts every failed poll
            self._failing = True
            log.warning("queue_depths.poll_failed", reason=reason, error=error)

    def _missed(self, role: str) -> None:
        for gauge in (self._metrics.messages, self._metrics.consumers):
            with contextlib.suppress(KeyError):  # never read, or already dropped
                gauge.remove(role)
        if role not in self._missing:
            self._missing.add(role)
            log.warning("queue_depths.queue_missing", queue=self._queues[role])
