"""Reading a RabbitMQ stream from an offset, and resuming at the next offset after a reconnect.

aio-pika restores a robust stream consumer with its original `x-stream-offset`, so after a reconnect
it would read from "first" again; we consume with `robust=False` and resubscribe ourselves from the
channel's reopen callback (probed here on 3.10.8 / aio-pika 10.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from pamqp.commands import Basic

log = structlog.get_logger(__name__)

StreamOffset = str | int | datetime
RecordHandler = Callable[[bytes, int], None]
Notify = Callable[[], None]
# Streams need a prefetch (credit); acks only return credit.
DEFAULT_PREFETCH = 1000


class StreamReader:
    """Feeds every message of one stream, in order, to a synchronous handler with its offset."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        stream: str,
        arguments: dict[str, Any],
        handle: RecordHandler,
        *,
        start: StreamOffset = "first",
        prefetch: int = DEFAULT_PREFETCH,
        on_interrupted: Notify | None = None,
        on_resumed: Notify | None = None,
    ) -> None:
        self._connection = connection
        self._stream = stream
        self._arguments = arguments
        self._handle = handle
        self._start = start
        self._prefetch = prefetch
        self._on_interrupted = on_interrupted
        self._on_resumed = on_resumed
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None  # a RobustQueue
        self._consumer_tag: str | None = None
        self.last_offset: int | None = None
        # The broker cancelled our consumer: the stream was deleted under us. Offsets of a stream
        # created again would start over, so the state read so far cannot be continued.
        self.lost = False

    async def start(self) -> None:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await channel.declare_queue(
            self._stream, durable=True, arguments=self._arguments
        )
        self._channel = channel
        channel.close_callbacks.add(self._interrupted)
        channel.reopen_callbacks.add(self._resume)
        await self._subscribe()

    async def stop(self) -> None:
        if self._channel is not None:
            self._channel.reopen_callbacks.discard(self._resume)
            self._channel.close_callbacks.discard(self._interrupted)
            await self._channel.close()
            self._channel = None

    def _next_offset(self) -> StreamOffset:
        return self._start if self.last_offset is None else self.last_offset + 1

    async def _subscribe(self) -> None:
        assert self._queue is not None
        offset = self._next_offset()
        # robust=False: we resubscribe at the right offset ourselves (see the module's docstring).
        self._consumer_tag = await self._queue.consume(
            self._on_message,
            arguments={"x-stream-offset": offset},
            robust=False,  # type: ignore[call-arg]  # RobustQueue takes it; AbstractQueue omits it
        )
        assert self._channel is not None
        underlay = await self._channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._on_cancelled)
        log.debug("stream.subscribed", stream=self._stream, offset=str(offset))

    def _on_cancelled(self, frame: Basic.Cancel) -> None:
        if frame.consumer_tag != self._consumer_tag or self._channel is None:
            return
        self.lost = True
        log.error(
            "stream.lost",
            stream=self._stream,
            last_offset=self.last_offset,
            hint="the stream was deleted; restart the service to rebuild its state",
        )

    def _interrupted(self, _channel: object, _error: BaseException | None) -> None:
        """The channel closed: records may be written that we do not see until we resume."""
        if self._on_interrupted is not None:
            self._on_interrupted()

    async def _resume(self, _channel: object) -> None:
        try:
            await self._subscribe()
        except CONNECTION_EXCEPTIONS as error:  # the channel will reopen again and call us
            log.warning("stream.resume_failed", stream=self._stream, error=str(error))
            return
        if self._on_resumed is not None:
            self._on_resumed()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Runs synchronously up to the ack, so records apply in delivery order.
        offset = (message.headers or {}).get("x-stream-offset")
        if isinstance(offset, int):
            if self.last_offset is None or offset > self.last_offset:
                self.last_offset = offset
                self._handle(message.body, offset)
        else:
            log.error("stream.message_without_offset", stream=self._stream)
        # If the channel is gone, the resubscription continues after last_offset anyway.
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            await message.ack()
