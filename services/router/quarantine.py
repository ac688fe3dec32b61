"""The quarantine, `<prefix>.quarantine`: messages a consumer could not read or that crashed its
handler again and again, each with its reason and the queue it came from.

Listing peeks: a consumer takes the first messages without acking them and closes its channel,
and the broker puts them back in front, in their order (probed on RabbitMQ 3.10: a quorum queue
returns them ahead of the rest, `x-delivery-count` one higher). Redrive and discard are passes
(`queue_passes`): a chosen message is published back to the queue it came from, or dropped on
purpose; every other one is published again at the back.

A quarantined message has no id of its own that is sure to be there or to be unique, so it is
named by a digest of what does not change while it waits: its message id, time, type, reason,
source and body. Identical messages share a name, and are redriven or discarded together.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelAccessRefused

from schemas.history import QuarantinedView
from schemas.topology import CRASHES_HEADER, REASON_HEADER, ROUTING_KEY_HEADER, SOURCE_HEADER
from services.router.queue_passes import Action, PassBusy, PassProgress, SettleOne
from services.runtime.broker import BROKER_HEADERS, CHANNEL_GONE, Publisher
from services.runtime.sanitize import clean_bytes, clean_text

log = structlog.get_logger(__name__)

# Of a body, this much is shown.
PREVIEW_BYTES = 1024
# A peek waits this long for the messages the queue said it holds.
PEEK_WAIT_S = 5.0
# ... and this long for the queue to count them again once given back.
GIVEN_BACK_WAIT_S = 2.0
# Headers of the quarantine's own, and the broker's record of dead-lettering, which a message
# sent back to its queue leaves behind.
QUARANTINE_HEADERS = frozenset(
    {
        REASON_HEADER,
        SOURCE_HEADER,
        CRASHES_HEADER,
        "x-death",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-first-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-last-death-exchange",
    }
)


def source_of(headers: Mapping[str, Any]) -> str | None:
    """The queue a message was quarantined from: ours, or the broker's dead-lettering's."""
    for name in (SOURCE_HEADER, "x-first-death-queue"):
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value:
            return value
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return None if value is None else clean_text(str(value))


def quarantine_id(message: AbstractIncomingMessage) -> str:
    """`q_…`: a digest of what does not change while the message waits."""
    headers = message.headers or {}
    digest = hashlib.sha256()
    for part in (
        message.message_id,
        message.timestamp.isoformat() if message.timestamp else None,
        message.type,
        _text(headers.get(REASON_HEADER)),
        source_of(headers),
    ):
        digest.update(f"{part}\0".encode())
    digest.update(message.body)
    return f"q_{digest.hexdigest()[:24]}"


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def view_of(message: AbstractIncomingMessage) -> QuarantinedView:
    headers = message.headers or {}
    count = headers.get("x-delivery-count")
    return QuarantinedView(
        id=quarantine_id(message),
        source_queue=source_of(headers),
        reason=_text(headers.get(REASON_HEADER)),
        message_id=_text(message.message_id),
        type=_text(message.type),
        routing_key=_text(headers.get(ROUTING_KEY_HEADER)),
        quarantined_at=_aware(message.timestamp),
        size=len(message.body),
        body=clean_bytes(message.body, PREVIEW_BYTES),
        times_looked_at=count if isinstance(count, int) else 0,
    )


async def peek(
    connection: AbstractRobustConnection, queue: str, limit: int
) -> tuple[int, list[QuarantinedView]]:
    """The queue's depth and its first `limit` messages, which stay where they are.

    PassBusy while a pass holds the queue (its consumer is exclusive)."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        await channel.set_qos(prefetch_count=limit)
        declared = await channel.declare_queue(queue, passive=True, robust=False)
        depth = declared.declaration_result.message_count or 0
        wanted = min(depth, limit)
        seen: list[QuarantinedView] = []
        if wanted == 0:
            return depth, seen  # (the finally closes the channel)
        try:
            iterator = declared.iterator(robust=False)
            await iterator.consume()
        except ChannelAccessRefused:
            raise PassBusy("a redrive or discard holds the quarantine") from None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PEEK_WAIT_S):
                while len(seen) < wanted:
                    seen.append(view_of(await anext(iterator)))
    finally:
        # Closing the channel gives every unacked message back, in front, in order.
        with contextlib.suppress(*CHANNEL_GONE):
            await channel.close()
    await _until_given_back(connection, queue, depth)
    return depth, seen


async def _until_given_back(connection: AbstractRobustConnection, queue: str, depth: int) -> None:
    """Wait (a little) until the queue counts the messages it was given back: a quorum queue
    takes them back after the channel's close, and the next listing or pass must see them."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GIVEN_BACK_WAIT_S):
                while True:
                    declared = await channel.declare_queue(queue, passive=True, robust=False)
                    if (declared.declaration_result.message_count or 0) >= depth:
                        return
                    await asyncio.sleep(0.02)
    finally:
        with contextlib.suppress(*CHANNEL_GONE):
            await channel.close()


def _kept(publisher: Publisher, queue: str) -> SettleOne:
    async def keep(_progress: PassProgress, message: AbstractIncomingMessage) -> Action:
        await publisher.republish(message, queue, headers={})
        return Action.KEPT

    return keep


def redrive_to_source(
    publisher: Publisher,
    queue: str,
    ids: Collection[str] | None,
    sources: Collection[str],
) -> SettleOne:
    """Each chosen message (all, when `ids` is None) back to the queue it came from, as it was
    before it was quarantined; one whose source is not among `sources` stays."""
    keep = _kept(publisher, queue)

    async def settle(progress: PassProgress, message: AbstractIncomingMessage) -> Action:
        headers = message.headers or {}
        source = source_of(headers)
        chosen = ids is None or quarantine_id(message) in ids
        if not chosen or source not in sources:
            return await keep(progress, message)
        assert source is not None
        await publisher.publish(
            "",
            source,
            message.body,
            message_id=message.message_id,
            headers={
                key: value
                for key, value in headers.items()
                if key not in QUARANTINE_HEADERS and key not in BROKER_HEADERS
            },
            timestamp=message.timestamp,
            message_type=message.type,
        )
        log.info(
            "quarantine.redriven",
            pass_id=progress.id,
            quarantine_id=quarantine_id(message),
            source=source,
        )
        return Action.MOVED

    return settle


def discard_chosen(publisher: Publisher, queue: str, ids: Collection[str]) -> SettleOne:
    """Drop the chosen messages on purpose, each with a log line saying what went."""
    keep = _kept(publisher, queue)

    async def settle(progress: PassProgress, message: AbstractIncomingMessage) -> Action:
        name = quarantine_id(message)
        if name not in ids:
            return await keep(progress, message)
        headers = message.headers or {}
        log.warning(
            "quarantine.discarded",
            pass_id=progress.id,
            quarantine_id=name,
            source=source_of(headers),
            reason=_text(headers.get(REASON_HEADER)),
            message_id=_text(message.message_id),
        )
        return Action.DROPPED

    return settle
