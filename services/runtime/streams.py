"""Reading a RabbitMQ stream from an offset, and resuming at the next offset after a reconnect.

aio-pika restores a robust stream consumer with its original `x-stream-offset`, so after a reconnect
it would read from "first" again; we resubscribe ourselves from the channel's reopen callback
(probed here on 3.10.8 / aio-pika 10.2).

A service reads a whole stream at start (100,000 webhooks are 100,000 messages), so the consumer
sits on the robust channel's underlying aiormq channel: aio-pika's message object and the task it
adds per message cost more than the record's own parsing and folding. A stream's acks only return
credit, so they go in batches (`BatchedAcks`). Measured with a bare consumer of 100,000 records on
a 2-core machine: 9.1 s of CPU through aio-pika with an ack each, 6.3 s with batched acks, 4.0 s
on the aiormq channel with batched acks. What is left is aiormq reading and decoding the frames
(tools/bench/webhooks_scale.py measures whole services).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp.commands import Basic

from services.runtime.broker import CHANNEL_GONE

log = structlog.get_logger(__name__)

StreamOffset = str | int | datetime
Notify = Callable[[], None]
# Streams need a prefetch (credit); acks only return credit.
DEFAULT_PREFETCH = 1000
# Unacked messages are acked together once this long passes without another one.
ACK_IDLE_S = 0.05


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


class BatchedAcks:
    """Acks a consumer's messages together: once `every` are unacked, or `idle_s` after the last.

    One ack with `multiple` of the newest delivery tag acks every one before it on that channel.
    Messages of a channel that closed are never acked (the broker forgot them with it). Acks go
    out one at a time, each with a newer tag than the last: acking a tag twice closes the channel,
    and the connection's bounded write queue may reorder frames of concurrent senders.
    """

    def __init__(self, every: int, idle_s: float = ACK_IDLE_S) -> None:
        self._every = max(1, every)
        self._idle_s = idle_s
        self._channel: AbstractChannel | None = None
        self._tag = 0
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._sending = asyncio.Lock()

    @property
    def unacked(self) -> int:
        return self._unacked

    async def delivered(self, channel: AbstractChannel, delivery_tag: int) -> None:
        """Note a handled message; ack it and those before it when `every` are waiting."""
        if channel is not self._channel:  # a new channel: the old one's tags died with it
            self._channel, self._unacked = channel, 0
        self._tag = delivery_tag
        self._unacked += 1
        if self._unacked >= self._every:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._idle_s, self._on_idle)

    def _on_idle(self) -> None:
        self._timer = None
        task = asyncio.create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Ack every message noted so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._sending:
            if not self._unacked or self._channel is None:
                return  # another flush took them while we waited
            channel, tag, self._unacked = self._channel, self._tag, 0
            # If the channel is gone, its messages are gone with it: a resubscription goes on
            # after the last offset read.
            with contextlib.suppress(*CHANNEL_GONE):
                await channel.basic_ack(tag, multiple=True)

    def stop(self) -> None:
        """Send nothing more (the channel is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._flushing:
            task.cancel()


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
        self._acks = BatchedAcks(max(1, prefetch // 4))
        self._consumer_tag: str | None = None
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
        await channel.declare_queue(self._stream, durable=True, arguments=self._arguments)
        self._channel = channel
        channel.close_callbacks.add(self._interrupted)
        channel.reopen_callbacks.add(self._resume)
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._on_cancelled)
        await self._subscribe()

    async def stop(self) -> None:
        self._acks.stop()
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
        if self._channel is not None and self._consumer_tag is not None and not self.lost:
            with contextlib.suppress(*CHANNEL_GONE):
                underlay = await self._channel.get_underlay_channel()
                await underlay.basic_cancel(self._consumer_tag)
        self._consumer_tag = None
        self._start = start
        self.last_offset = None
        self.lost = False
        await self._subscribe()

    def _next_offset(self) -> StreamOffset:
        return self._start if self.last_offset is None else self.last_offset + 1

    async def _subscribe(self) -> None:
        assert self._channel is not None
        offset = self._next_offset()
        # On the underlying channel: the robust one does not restore it, we resubscribe at the
        # right offset ourselves (see the module's docstring).
        underlay = await self._channel.get_underlay_channel()
        consuming = await underlay.basic_consume(
            self._stream, self._on_message, arguments={"x-stream-offset": offset}
        )
        self._consumer_tag = consuming.consumer_tag
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

    async def _on_message(self, message: DeliveredMessage) -> None:
        # Runs synchronously up to the ack, so records apply in delivery order.
        properties = message.header.properties
        offset = (properties.headers or {}).get("x-stream-offset")
        if isinstance(offset, int):
            if self.last_offset is None or offset > self.last_offset:
                self.last_offset = offset
                self._handle(
                    StreamRecord(
                        message.body,
                        offset,
                        properties.message_id,
                        properties.message_type,
                        properties.content_encoding,
                        properties.headers,
                    )
                )
        else:
            log.error("stream.message_without_offset", stream=self._stream)
        delivery = message.delivery
        if isinstance(delivery, Basic.Deliver) and delivery.delivery_tag is not None:
            await self._acks.delivered(message.channel, delivery.delivery_tag)
