"""Reading a RabbitMQ stream from an offset, and resuming at the next offset after a reconnect.

aio-pika restores a robust stream consumer with its original `x-stream-offset`, so after a reconnect
it would read from "first" again; we consume with `robust=False` and resubscribe ourselves from the
channel's reopen callback (probed here on 3.10.8 / aio-pika 10.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelNotFoundEntity
from pamqp.commands import Basic

from services.runtime.broker import CHANNEL_GONE

log = structlog.get_logger(__name__)

StreamOffset = str | int | datetime
Notify = Callable[[], None]
# Streams need a prefetch (credit); acks only return credit.
DEFAULT_PREFETCH = 1000
# So one ack (`multiple`) returns the credit of this many messages: a stream never redelivers, so
# the few left unacked when it goes quiet cost nothing but that much credit.
ACK_EVERY = 64


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One message of a stream: its body, its offset, and the id and kind it was published with."""

    body: bytes
    offset: int
    message_id: str | None
    kind: str | None
    content_encoding: str | None = None
    headers: Mapping[str, Any] | None = None


RecordHandler = Callable[[StreamRecord], None]


class StreamReader:
    """Feeds every message of one stream, in order, to a synchronous handler."""

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
        on_lost: Notify | None = None,
    ) -> None:
        self._connection = connection
        self._stream = stream
        self._arguments = arguments
        self._handle = handle
        self._start = start
        self._prefetch = prefetch
        self._on_interrupted = on_interrupted
        self._on_resumed = on_resumed
        self._on_lost = on_lost
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None  # a RobustQueue
        self._consumer_tag: str | None = None
        self._unacked = 0
        self.last_offset: int | None = None
        # The broker cancelled our consumer: the stream was deleted under us. Offsets of a stream
        # created again start over, so what was read so far cannot be continued.
        self.lost = False

    @property
    def stream(self) -> str:
        return self._stream

    async def start(self) -> None:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await channel.declare_queue(
            self._stream, durable=True, arguments=self._arguments
        )
        self._channel = channel
        channel.close_callbacks.add(self._interrupted)
        channel.reopen_callbacks.add(self._resume)
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._on_cancelled)
        await self._subscribe()

    async def stop(self) -> None:
        if self._channel is not None:
            self._channel.reopen_callbacks.discard(self._resume)
            self._channel.close_callbacks.discard(self._interrupted)
            await self._channel.close()
            self._channel = None

    async def exists(self) -> bool:
        """Whether the stream exists on the broker now (asked on a channel of its own, since a
        passive declare of a missing queue closes its channel)."""
        channel = await self._connection.channel()
        try:
            await channel.declare_queue(self._stream, passive=True)
        except ChannelNotFoundEntity:
            return False
        finally:
            await channel.close()
        return True

    async def restart(self, start: StreamOffset) -> None:
        """Read the stream again from `start`: after it was lost and is back, or to re-read."""
        if self._queue is not None and self._consumer_tag is not None and not self.lost:
            with contextlib.suppress(*CHANNEL_GONE):
                await self._queue.cancel(self._consumer_tag)
        self._consumer_tag = None
        self._start = start
        self.last_offset = None
        self.lost = False
        await self._subscribe()

    def _next_offset(self) -> StreamOffset:
        return self._start if self.last_offset is None else self.last_offset + 1

    async def _subscribe(self) -> None:
        assert self._queue is not None
        offset = self._next_offset()
        self._unacked = 0
        # robust=False: we resubscribe at the right offset ourselves (see the module's docstring).
        self._consumer_tag = await self._queue.consume(
            self._on_message,
            arguments={"x-stream-offset": offset},
            robust=False,  # type: ignore[call-arg]  # RobustQueue takes it; AbstractQueue omits it
        )
        assert self._channel is not None
        log.debug("stream.subscribed", stream=self._stream, offset=str(offset))

    def _on_cancelled(self, frame: Basic.Cancel) -> None:
        if frame.consumer_tag != self._consumer_tag or self._channel is None:
            return
        self.lost = True
        self._consumer_tag = None
        log.error("stream.lost", stream=self._stream, last_offset=self.last_offset)
        if self._on_lost is not None:
            self._on_lost()

    def _interrupted(self, _channel: object, _error: BaseException | None) -> None:
        """The channel closed: records may be written that we do not see until we resume."""
        if self._on_interrupted is not None:
            self._on_interrupted()

    async def _resume(self, _channel: object) -> None:
        if self.lost:
            return  # nothing to resume: whoever follows the stream waits for it to come back
        underlay = await self._channel.get_underlay_channel() if self._channel else None
        if underlay is not None:  # a new underlying channel: listen for cancels on it too
            underlay.on_consumer_cancel_callbacks.add(self._on_cancelled)
        try:
            await self._subscribe()
        except CHANNEL_GONE as error:  # the channel will reopen again and call us
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
                self._handle(
                    StreamRecord(
                        message.body,
                        offset,
                        message.message_id,
                        message.type,
                        message.content_encoding,
                        message.headers,
                    )
                )
        else:
            log.error("stream.message_without_offset", stream=self._stream)
        self._unacked += 1
        if self._unacked >= min(ACK_EVERY, self._prefetch):
            self._unacked = 0
            # If the channel is gone, the resubscription continues after last_offset anyway.
            with contextlib.suppress(*CHANNEL_GONE):
                await message.ack(multiple=True)
