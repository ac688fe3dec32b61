"""Stopping work while the webhooks stream is lost, and taking it up again once it is back.

A lost stream is not a blip: routing or sending on a table that no longer matches the source of
truth would be wrong, and holding messages only to give them back would spin. So the consumers
stop taking messages until the stream is followed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from services.runtime.consuming import WorkConsumer

log = structlog.get_logger(__name__)


@dataclass
class StreamStateFollower:
    """Pauses `consumers` when the stream is lost, resumes them once it is current again."""

    consumers: list[WorkConsumer] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _paused: bool = False

    def lost(self) -> None:
        if not self._paused:
            self._paused = True
            log.error("consumers.paused", reason="the webhooks stream is lost")
            self._run(*(consumer.pause() for consumer in self.consumers))

    def current(self) -> None:
        if self._paused:
            self._paused = False
            log.warning("consumers.resumed", reason="the webhooks stream is followed again")
            self._run(*(consumer.resume() for consumer in self.consumers))

    def _run(self, *steps: Coroutine[Any, Any, None]) -> None:
        for step in steps:
            task = asyncio.create_task(step)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
