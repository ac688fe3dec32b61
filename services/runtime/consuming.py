"""Consuming a work queue: concurrent handlers bounded by prefetch, a guard against crash loops,
and a graceful stop that lets in-flight work finish."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from schemas.topology import REASON_HEADER
from services.runtime.broker import Publisher, PublishFailed

log = structlog.get_logger(__name__)

MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[None]]
Publish = Callable[[], Awaitable[None]]
# Publishes awaiting their confirms at once for one input message: bounds the memory of a fan-out.
PUBLISH_BATCH = 100
# After a handler crashed, wait before returning the message, so a bug does not spin the CPU; the
# queue's delivery limit parks the message in quarantine if it keeps crashing.
CRASH_REQUEUE_DELAY_S = 1.0
PUBLISH_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class WorkConsumer:
    """Runs `handler` for each message of a queue, up to `prefetch` at once.

    The handler settles the message (ack) itself; if it raises, the message is returned.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue_name: str,
        arguments: Mapping[str, Any],
        handler: MessageHandler,
        *,
        prefetch: int,
    ) -> None:
        self._connection = connection
        self._queue_name = queue_name
        self._arguments = dict(arguments)
        self._handler = handler
        self._prefetch = prefetch
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[object]] = set()

    @property
    def consuming(self) -> bool:
        return self._consumer_tag is not None

    async def start(self) -> None:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await channel.declare_queue(
            self._queue_name, durable=True, arguments=self._arguments
        )
        self._consumer_tag = await self._queue.consume(self._on_message)
        log.info("consumer.started", queue=self._queue_name, prefetch=self._prefetch)

    async def stop(self, grace_s: float) -> None:
        """Stop taking messages, let in-flight ones finish for up to `grace_s`, then close.

        Whatever is still unacked when the channel closes goes back to the queue.
        """
        if self._queue is None:
            return
        queue, self._queue = self._queue, None
        if self._consumer_tag is not None:
            try:
                await queue.cancel(self._consumer_tag)
            except CONNECTION_EXCEPTIONS as error:
                log.warning("consumer.cancel_failed", queue=self._queue_name, error=str(error))
            self._consumer_tag = None
        if self._in_flight:
            log.info("consumer.draining", queue=self._queue_name, in_flight=len(self._in_flight))
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "consumer.returned_unfinished", queue=self._queue_name, count=len(pending)
                )
        await queue.channel.close()
        log.info("consumer.stopped", queue=self._queue_name)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self._handler(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            if channel_closed(message):  # a broker blip, not a bug: the broker redelivers it
                log.warning(
                    "consumer.channel_lost", queue=self._queue_name, message_id=message.message_id
                )
                return
            log.exception(
                "consumer.handler_crashed", queue=self._queue_name, message_id=message.message_id
            )
            await asyncio.sleep(CRASH_REQUEUE_DELAY_S)
            await settle(message.nack(requeue=True))
        finally:
            self._in_flight.discard(task)


async def settle(action: Awaitable[Any]) -> bool:
    """Ack or nack; False when the channel is gone (the broker will redeliver the message)."""
    try:
        await action
    except CONNECTION_EXCEPTIONS as error:
        log.warning("message.settle_failed", error=str(error) or type(error).__name__)
        return False
    return True


def channel_closed(message: AbstractIncomingMessage) -> bool:
    """Whether the channel the message came on is gone (then it cannot be acked any more)."""
    try:
        return message.channel.is_closed
    except CONNECTION_EXCEPTIONS:  # aio-pika raises instead of answering once it is closed
        return True


async def publish_until_confirmed(
    message: AbstractIncomingMessage,
    publishes: Sequence[Publish],
    *,
    what: str,
) -> bool:
    """Run each publish until the broker confirms it, in batches, retrying with backoff.

    Gives up (False) only when the input message's channel has closed: then it will be
    redelivered and nothing may be acked. Holding the message meanwhile is the backpressure.
    """
    for start in range(0, len(publishes), PUBLISH_BATCH):
        if not await _confirm_batch(message, publishes[start : start + PUBLISH_BATCH], what):
            return False
    return True


async def _confirm_batch(
    message: AbstractIncomingMessage, publishes: Sequence[Publish], what: str
) -> bool:
    pending = list(publishes)
    for round_ in itertools.count(1):
        results = await asyncio.gather(*(publish() for publish in pending), return_exceptions=True)
        failed = []
        for publish, result in zip(pending, results, strict=True):
            if isinstance(result, PublishFailed):
                failed.append((publish, result))
            elif isinstance(result, BaseException):
                raise result
        if not failed:
            return True
        pending = [publish for publish, _ in failed]
        if channel_closed(message):
            return False
        delay_s = PUBLISH_RETRY_DELAYS_S[min(round_, len(PUBLISH_RETRY_DELAYS_S)) - 1]
        log.warning(
            "publish.retrying",
            what=what,
            failed=len(failed),
            error=str(failed[0][1]),
            retry_in_s=delay_s,
        )
        await asyncio.sleep(delay_s)
    return False


async def quarantine(
    publisher: Publisher,
    quarantine_queue: str,
    message: AbstractIncomingMessage,
    *,
    reason: str,
    source: str,
) -> bool:
    """Park an unreadable message with its reason, then ack it; False if it could not be parked."""
    headers = {
        **(message.headers or {}),
        REASON_HEADER: reason[:1000],
        "x-hookline-source": source,
        "x-hookline-routing-key": message.routing_key or "",
    }

    async def publish() -> None:
        await publisher.publish(
            "", quarantine_queue, message.body, message_id=message.message_id, headers=headers
        )

    log.error(
        "message.quarantined", reason=reason[:1000], source=source, message_id=message.message_id
    )
    if await publish_until_confirmed(message, [publish], what="quarantine"):
        return await settle(message.ack())
    return False
