"""Telling the router when this sender's circuit breaker for a webhook opens or closes: an
`endpoint.circuit` message in the delivery log, which the router's health view folds in.

A report is best effort: it says what this process does, it moves no event, and the next change
reports again; a report the broker does not take is logged and dropped. Reports go out in the
background, in the order the changes happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import UTC, datetime, timedelta

import structlog

from schemas.deliveries import CIRCUIT_KIND, CircuitChanged
from services.runtime.broker import Publisher, PublishFailed

log = structlog.get_logger(__name__)

# Reports waiting to be published, at most: past it, the oldest are dropped (a newer one says more).
MAX_WAITING = 1000


class CircuitReports:
    def __init__(self, stream: str) -> None:
        self._stream = stream
        self._sender = f"{socket.gethostname()}:{os.getpid()}"
        self._publisher: Publisher | None = None
        self._waiting: asyncio.Queue[CircuitChanged] = asyncio.Queue(MAX_WAITING)
        self._task: asyncio.Task[None] | None = None

    def start(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._task = asyncio.create_task(self._publish_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def changed(self, webhook_id: str, open_for_s: float | None) -> None:
        """The EndpointGate's callback: the circuit opened for `open_for_s`, or closed (None)."""
        if self._task is None:
            return
        now = datetime.now(UTC)
        report = CircuitChanged(
            webhook_id=webhook_id,
            sender=self._sender,
            at=now,
            open_until=None if open_for_s is None else now + timedelta(seconds=open_for_s),
        )
        if self._waiting.full():
            self._waiting.get_nowait()
        self._waiting.put_nowait(report)

    async def _publish_forever(self) -> None:
        assert self._publisher is not None
        while True:
            report = await self._waiting.get()
            try:
                await self._publisher.publish(
                    "", self._stream, report.model_dump_json().encode(), message_type=CIRCUIT_KIND
                )
            except PublishFailed as error:
                log.warning("circuit.report_failed", webhook_id=report.webhook_id, error=str(error))
