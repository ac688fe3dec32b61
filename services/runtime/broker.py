"""The broker connection, the topology declaration and confirmed publishing.

Facts this builds on (measured on RabbitMQ 3.10.8, aio-pika 10.2, see DESIGN.md): messages are not
persistent unless asked; an unroutable mandatory publish returns normally unless the channel has
`on_return_raises`; a publish that timed out may still have been enqueued.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    AMQPConnectionError,
    ChannelClosed,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
)
from yarl import URL

from schemas.topology import ROUTING_KEY_HEADER, Topology
from services.runtime.coalesced_writes import CoalescingTransportFactory
from services.runtime.settings import ServiceSettings

log = structlog.get_logger(__name__)

CONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)

# The exceptions that mean a channel or connection is gone. aio-pika's CONNECTION_EXCEPTIONS also
# holds RuntimeError and OSError, so catching it would treat a bug as a broker blip and hide it.
CHANNEL_GONE: tuple[type[Exception], ...] = (
    AMQPConnectionError,
    ChannelClosed,
    ChannelInvalidStateError,  # aiormq's "channel closed" (a RuntimeError subclass)
    ConnectionError,
)
# Headers the broker manages itself; a republished message must not carry them.
BROKER_HEADERS = frozenset({"x-delivery-count"})


class PublishFailed(Exception):
    """The broker did not confirm a publish: it was refused, returned, or its fate is unknown.

    Whoever published must not ack its input or answer success; retrying with the same message id
    is safe because every id downstream is stable.
    """


class PublishOutcomeUnknown(PublishFailed):
    """No confirm came (a timeout, a connection lost in flight): the message may be enqueued."""


class RobustConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, whose frames of one loop turn leave in one write: a dozen
    acks, one `send`. The transport factory is set here, not passed to `connect_robust`, which
    would turn it into a URL query string."""

    def __init__(
        self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        super().__init__(url, loop, **kwargs)
        self.kwargs = {
            **self.kwargs,
            "transport_factory": CoalescingTransportFactory(self.url.scheme),
        }


async def connect(settings: ServiceSettings, name: str) -> AbstractRobustConnection:
    """A robust connection, retried with backoff until the broker answers (it may start later)."""
    url = settings.amqp_url.get_secret_value()
    for attempt in range(1, 1_000_000):
        try:
            connection = await aio_pika.connect_robust(
                url,
                connection_class=RobustConnection,
                heartbeat=settings.heartbeat_s,
                reconnect_interval=1,
                client_properties={"connection_name": f"hookline-{name}-{os.getpid()}"},
            )
        except (AMQPConnectionError, OSError) as error:  # refused, unreachable, not a broker yet
            delay_s = CONNECT_BACKOFF_S[min(attempt, len(CONNECT_BACKOFF_S)) - 1]
            log.warning(
                "broker.unreachable",
                error=str(error) or type(error).__name__,
                attempt=attempt,
                retry_in_s=delay_s,
            )
            await asyncio.sleep(delay_s)
            continue
        log.info("broker.connected", attempt=attempt)
        connection.reconnect_callbacks.add(_log_reconnect)
        return connection
    raise AssertionError("unreachable")


def _log_reconnect(_connection: object) -> None:
    log.warning("broker.reconnected")


def is_connected(connection: AbstractRobustConnection) -> bool:
    return not connection.is_closed and connection.connected.is_set()


async def declare_topology(
    connection: AbstractRobustConnection,
    topology: Topology,
    *,
    only_missing: bool = False,
    retire: bool = False,
) -> None:
    """Declare every exchange, queue and binding of the install; idempotent, safe to repeat.

    A queue that exists with other arguments fails the declaration (PRECONDITION_FAILED), which a
    service should stop on. `only_missing` leaves existing queues as they are, for clients (the
    SDK) that do not know the install's settings. `retire` removes the bindings of earlier
    versions: routers and producers do, senders not, since they are upgraded first (a 0.6 sender
    still running relies on the exchange to store the events it routes).
    """
    channel = await connection.channel()
    try:
        exchanges: dict[str, AbstractExchange] = {}
        for name, kind in topology.exchanges().items():
            exchanges[name] = await channel.declare_exchange(
                name, aio_pika.ExchangeType(kind), durable=True
            )
        for name, arguments in topology.queues().items():
            if only_missing and await _queue_exists(connection, name):
                continue
            try:
                await channel.declare_queue(name, durable=True, arguments=arguments)
            except ChannelPreconditionFailed as error:
                raise TopologyMismatch(name, str(error)) from None
        for queue_name, exchange_name, routing_key in topology.bindings():
            queue = await channel.get_queue(queue_name, ensure=False)
            await queue.bind(exchanges[exchange_name], routing_key)
        if retire:
            for queue_name, exchange_name, routing_key in topology.retired_bindings():
                queue = await channel.get_queue(queue_name, ensure=False)
                await queue.unbind(exchanges[exchange_name], routing_key)
    finally:
        await channel.close()


class TopologyMismatch(Exception):
    """A queue exists with other arguments than this version declares (an older install)."""

    def __init__(self, queue: str, detail: str) -> None:
        super().__init__(
            f"queue {queue} exists with other arguments than this version of Hookline declares "
            f"({detail}); see the README's 'Upgrading' section"
        )


async def _queue_exists(connection: AbstractRobustConnection, name: str) -> bool:
    # A passive declare of a missing queue closes its channel, so it gets a channel of its own.
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    finally:
        # Always: a robust channel closed by the broker would otherwise reopen itself and linger.
        await channel.close()
    return True


# What may stop a redeclaration after a reconnect: it is logged, and the services go on.
REDECLARE_FAILURES: tuple[type[Exception], ...] = (*CHANNEL_GONE, TopologyMismatch)


def redeclare_on_reconnect(
    connection: AbstractRobustConnection, topology: Topology, *, retire: bool = False
) -> None:
    """A broker that came back empty (a new node, a reset) gets the topology again."""

    async def redeclare(_connection: object) -> None:
        try:
            await declare_topology(connection, topology, retire=retire)
        except REDECLARE_FAILURES as error:
            log.error("broker.redeclare_failed", error=str(error))

    connection.reconnect_callbacks.add(redeclare)


class Publisher:
    """Publishes persistent messages and returns only once the broker has confirmed them."""

    def __init__(self, channel: AbstractRobustChannel, timeout_s: float) -> None:
        self._channel = channel
        self._timeout_s = timeout_s
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    async def open(cls, connection: AbstractRobustConnection, timeout_s: float) -> Publisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel, timeout_s)

    async def close(self) -> None:
        await self._channel.close()

    async def _exchange(self, name: str) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = (
                self._channel.default_exchange
                if name == ""
                else await self._channel.get_exchange(name, ensure=False)
            )
            self._exchanges[name] = exchange
        return exchange

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        message_type: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        """Publish one persistent, mandatory message; raise PublishFailed unless it is confirmed."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            content_encoding=content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            headers=dict(headers) if headers else None,
            timestamp=timestamp,
            type=message_type,
        )
        target = await self._exchange(exchange)
        try:
            await target.publish(
                message, routing_key=routing_key, mandatory=True, timeout=self._timeout_s
            )
        except TimeoutError:
            raise PublishOutcomeUnknown(
                f"no confirm within {self._timeout_s:g}s (outcome unknown)"
            ) from None
        except (DeliveryError, ChannelInvalidStateError, ChannelNotFoundEntity) as error:
            # nacked, returned (no queue), not sent, or no such exchange: surely not enqueued
            raise PublishFailed(str(error) or type(error).__name__) from error
        except CHANNEL_GONE as error:  # lost while in flight: it may have been enqueued
            raise PublishOutcomeUnknown(str(error) or type(error).__name__) from error

    async def republish(
        self, message: AbstractIncomingMessage, queue: str, *, headers: Mapping[str, Any]
    ) -> None:
        """Publish a consumed message again, straight to `queue`, with its properties and these
        extra headers; its original routing key is kept in a header."""
        kept = {
            key: value
            for key, value in (message.headers or {}).items()
            if key not in BROKER_HEADERS
        }
        kept.setdefault(ROUTING_KEY_HEADER, message.routing_key or "")
        await self.publish(
            "",
            queue,
            message.body,
            message_id=message.message_id,
            headers={**kept, **headers},
            timestamp=message.timestamp,
            message_type=message.type,
        )
