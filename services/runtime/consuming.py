"""Consuming a work queue: concurrent handlers bounded by prefetch, one function that settles each
message from its handler's outcome, crash counting of our own, and a graceful stop.

The broker's `x-delivery-limit` counts every redelivery, restarts and channel losses included, so
it cannot tell a crash loop from a bad night: crashes are counted here, in a header of the message
republished after each crash, and a message that crashes `MAX_CRASHES` times in a row is parked
in quarantine with the last line of its traceback.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from schemas.topology import (
    CRASHES_HEADER,
    REASON_HEADER,
    REPEAT_HEADER,
    ROUTING_KEY_HEADER,
    SOURCE_HEADER,
)
from services.runtime.acks import AckCoalescer
from services.runtime.broker import CHANNEL_GONE, Publisher, PublishFailed
from services.runtime.metrics import ConsumerMetrics
from services.runtime.outcomes import (
    ChannelLost,
    Done,
    GiveBack,
    HandlerError,
    HoldExpired,
    Outcome,
    Quarantine,
)

log = structlog.get_logger(__name__)

# A message whose channel is gone cannot be settled: the broker redelivers it.
CHANNEL_GONE_OR_LOST: tuple[type[Exception], ...] = (ChannelLost, *CHANNEL_GONE)
CHANNEL_GONE_OR_SLOW: tuple[type[Exception], ...] = (TimeoutError, *CHANNEL_GONE)

MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[Outcome]]
Publish = Callable[[], Awaitable[None]]
# Publishes awaiting their confirms at once for one input message: bounds the memory of a fan-out.
PUBLISH_BATCH = 100
PUBLISH_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# A message that crashed its handler this many times in a row is quarantined.
MAX_CRASHES = 5
# Wait before republishing a message that crashed, so a bug does not spin the CPU.
CRASH_DELAY_S = 1.0
# Reasons and what they are stored with are capped: they end up in headers and logs.
MAX_REASON_CHARS = 1000
# A cancel or close waits this long at most: while reconnecting, a robust channel would wait
# for the broker without end.
CHANNEL_CALL_TIMEOUT_S = 5.0


def crashes_of(message: AbstractIncomingMessage) -> int:
    """How many times in a row this message crashed a handler before."""
    value = (message.headers or {}).get(CRASHES_HEADER, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def may_repeat(message: AbstractIncomingMessage) -> bool:
    """Whether the work this message asks for may have been done already: the broker redelivered
    it, or it was republished after a crash or routed again from a redelivered event."""
    return bool(message.redelivered) or bool((message.headers or {}).get(REPEAT_HEADER))


def routing_key_of(message: AbstractIncomingMessage) -> str:
    """The key the message was first published with, also after a republish straight to a queue."""
    kept = (message.headers or {}).get(ROUTING_KEY_HEADER)
    if isinstance(kept, bytes):
        kept = kept.decode(errors="replace")
    return kept if isinstance(kept, str) else (message.routing_key or "")


def channel_closed(message: AbstractIncomingMessage) -> bool:
    """Whether the channel the message came on is gone (then it cannot be acked any more)."""
    try:
        return message.channel.is_closed
    except CHANNEL_GONE:  # aio-pika raises instead of answering once it is closed
        return True


async def confirm(
    message: AbstractIncomingMessage,
    publishes: Sequence[Publish],
    *,
    what: str,
    hold_s: float,
) -> None:
    """Run each publish until the broker confirms it, in batches, retrying with backoff.

    Holding the input message meanwhile is the backpressure, but only for `hold_s`: then
    HoldExpired gives it back. ChannelLost when the input's channel closed (it will be redelivered,
    nothing may be acked). Any other error of a publish is a bug and propagates.
    """
    if channel_closed(message):
        # Its channel is gone, so it has been or will be redelivered: whatever it would produce now
        # could go out twice, once from here and once from its next making.
        raise ChannelLost(f"{what}: the channel closed before publishing")
    deadline = time.monotonic() + hold_s
    for start in range(0, len(publishes), PUBLISH_BATCH):
        pending = list(publishes[start : start + PUBLISH_BATCH])
        round_ = 0
        while pending:
            results = await asyncio.gather(
                *(publish() for publish in pending), return_exceptions=True
            )
            failed: list[tuple[Publish, PublishFailed]] = []
            for publish, result in zip(pending, results, strict=True):
                if isinstance(result, PublishFailed):
                    failed.append((publish, result))
                elif isinstance(result, BaseException):
                    raise result
            pending = [publish for publish, _ in failed]
            if not pending:
                break
            if channel_closed(message):
                raise ChannelLost(f"{what}: the channel closed while publishing")
            round_ += 1
            delay_s = PUBLISH_RETRY_DELAYS_S[min(round_, len(PUBLISH_RETRY_DELAYS_S)) - 1]
            error = str(failed[0][1])
            if time.monotonic() + delay_s > deadline:
                raise HoldExpired(
                    "hold_expired", f"{what} not confirmed within {hold_s:g}s: {error}"
                )
            log.warning(
                "publish.retrying", what=what, failed=len(pending), error=error, retry_in_s=delay_s
            )
            await asyncio.sleep(delay_s)


class WorkConsumer:
    """Runs `handler` for each message of a queue, up to `prefetch` at once, and settles each
    message from what the handler returned or raised."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        queue_name: str,
        arguments: Mapping[str, Any],
        handler: MessageHandler,
        *,
        prefetch: int,
        quarantine_queue: str,
        metrics: ConsumerMetrics,
        label: str,
        hold_s: float,
    ) -> None:
        self._connection = connection
        self._publisher = publisher
        self._queue_name = queue_name
        self._arguments = dict(arguments)
        self._handler = handler
        self._prefetch = prefetch
        self._quarantine_queue = quarantine_queue
        self._metrics = metrics
        self._label = label
        self._hold_s = hold_s
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[object]] = set()
        self._acks = AckCoalescer()

    @property
    def consuming(self) -> bool:
        return self._consumer_tag is not None

    async def start(self) -> None:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await channel.declare_queue(
            self._queue_name, durable=True, arguments=self._arguments
        )
        await self.resume()

    async def resume(self) -> None:
        """Take messages (again)."""
        if self._queue is None or self._consumer_tag is not None:
            return
        self._consumer_tag = await self._queue.consume(self._on_message)
        log.info("consumer.started", queue=self._queue_name, prefetch=self._prefetch)

    async def pause(self) -> None:
        """Take no more messages; those in flight finish (their holds are bounded)."""
        if self._queue is None or self._consumer_tag is None:
            return
        tag, self._consumer_tag = self._consumer_tag, None
        try:
            async with asyncio.timeout(CHANNEL_CALL_TIMEOUT_S):
                await self._queue.cancel(tag)
        except CHANNEL_GONE_OR_SLOW as error:
            # The channel is gone or going: its consumers go with it.
            log.warning(
                "consumer.cancel_failed",
                queue=self._queue_name,
                error=str(error) or type(error).__name__,
            )
        log.info("consumer.paused", queue=self._queue_name)

    async def stop(self, grace_s: float) -> None:
        """Stop taking messages, let in-flight ones finish for up to `grace_s`, then close.

        Whatever is still unacked when the channel closes goes back to the queue.
        """
        if self._queue is None:
            return
        await self.pause()
        queue, self._queue = self._queue, None
        if self._in_flight:
            log.info("consumer.draining", queue=self._queue_name, in_flight=len(self._in_flight))
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "consumer.returned_unfinished", queue=self._queue_name, count=len(pending)
                )
        try:
            async with asyncio.timeout(CHANNEL_CALL_TIMEOUT_S):
                await queue.channel.close()
        except CHANNEL_GONE_OR_SLOW as error:
            log.warning("consumer.close_failed", queue=self._queue_name, error=str(error))
        log.info("consumer.stopped", queue=self._queue_name)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self._settle(message, await self._outcome_of(message))
        except CHANNEL_GONE_OR_LOST as error:
            # The channel is gone (or going: an ack failed): the broker redelivers the message.
            log.warning(
                "consumer.channel_lost",
                queue=self._queue_name,
                message_id=message.message_id,
                error=str(error) or type(error).__name__,
            )
        finally:
            self._in_flight.discard(task)

    async def _outcome_of(self, message: AbstractIncomingMessage) -> Outcome | BaseException:
        """What the handler says becomes of the message, or the exception it crashed with."""
        try:
            outcome: Outcome = await self._handler(message)
        except HandlerError as error:
            return error.outcome()
        except CHANNEL_GONE_OR_LOST as error:
            if channel_closed(message):
                raise
            return error
        except Exception as error:  # a bug in a handler: counted, and never a crash loop
            return error
        return outcome

    async def _settle(
        self, message: AbstractIncomingMessage, outcome: Outcome | BaseException
    ) -> None:
        """The one place a message is acked, returned, republished or quarantined."""
        if isinstance(outcome, Done):
            await self._acks.ack(message)
            if outcome.then is not None:
                try:
                    outcome.then()
                except Exception:  # counting and logging only: the message is settled already
                    log.exception("consumer.after_ack_failed", queue=self._queue_name)
        elif isinstance(outcome, GiveBack):
            self._metrics.returned.labels(queue=self._label, reason=outcome.reason).inc()
            log.warning(
                "message.returned",
                queue=self._queue_name,
                message_id=message.message_id,
                reason=outcome.reason,
                detail=outcome.detail[:MAX_REASON_CHARS],
            )
            await asyncio.sleep(outcome.delay_s)  # not straight back into the same wall
            await message.nack(requeue=True)
            self._acks.settled_alone(message)
        elif isinstance(outcome, Quarantine):
            await self._quarantine(message, outcome.reason)
        else:
            await self._crashed(message, outcome)

    async def _crashed(self, message: AbstractIncomingMessage, error: BaseException) -> None:
        crashes = crashes_of(message) + 1
        self._metrics.crashes.labels(queue=self._label).inc()
        log.error(
            "consumer.handler_crashed",
            queue=self._queue_name,
            message_id=message.message_id,
            crashes=crashes,
            exc_info=error,
        )
        if crashes >= MAX_CRASHES:
            await self._quarantine(
                message, f"crashed {crashes} times in a row: {last_line_of(error)}"
            )
            return
        await asyncio.sleep(CRASH_DELAY_S)

        async def republish() -> None:
            await self._publisher.republish(
                message, self._queue_name, headers={CRASHES_HEADER: crashes, REPEAT_HEADER: True}
            )

        try:
            await confirm(message, [republish], what="crashed message", hold_s=self._hold_s)
        except HoldExpired as expired:
            await self._settle(message, expired.outcome())
            return
        await self._acks.ack(message)

    async def _quarantine(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Park a message with its reason, then ack it."""
        reason = reason[:MAX_REASON_CHARS]
        log.error(
            "message.quarantined",
            reason=reason,
            queue=self._queue_name,
            message_id=message.message_id,
        )

        async def park() -> None:
            await self._publisher.republish(
                message,
                self._quarantine_queue,
                headers={REASON_HEADER: reason, SOURCE_HEADER: self._queue_name},
            )

        try:
            await confirm(message, [park], what="quarantine", hold_s=self._hold_s)
        except HoldExpired as expired:
            await self._settle(message, expired.outcome())
            return
        await self._acks.ack(message)
        self._metrics.quarantined.labels(queue=self._label).inc()


def last_line_of(error: BaseException) -> str:
    """`ValueError: bad thing`: the last line of the traceback, which names what went wrong."""
    lines = traceback.format_exception_only(type(error), error)
    return (lines[-1].strip() if lines else type(error).__name__)[:MAX_REASON_CHARS]
