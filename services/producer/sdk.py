"""The producer SDK: publish events to Hookline over AMQP, each confirmed by the broker.

    async with Producer("amqp://guest:guest@127.0.0.1:5672/") as producer:
        event_id = await producer.publish("problem.update", {"id": 42, "status": "solved"})

`publish` returns only after the broker has the event safely (publisher confirm on a persistent
message); it raises `PublishFailed` otherwise, and publishing again with the same `id` is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from schemas.events import Event, EventIn, ObjectId, new_event_id
from schemas.topology import Topology
from services.runtime.broker import Publisher, PublishFailed, declare_topology

__all__ = ["Producer", "PublishFailed"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


class Producer:
    """An async context manager around one robust broker connection and one confirming channel."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = "hookline",
        *,
        timeout_s: float = 10.0,
        connection: AbstractRobustConnection | None = None,
    ) -> None:
        self._url = url
        # The park tiers depend on the install's settings, which the SDK does not know: the
        # senders declare them (the default tiers made here would be strays nobody deletes).
        self._topology = Topology(prefix=prefix, park_delays_s=())
        self._timeout_s = timeout_s
        self._connection = connection
        self._owns_connection = connection is None
        self._publisher: Publisher | None = None

    async def __aenter__(self) -> Self:
        if self._connection is None:
            self._connection = await aio_pika.connect_robust(
                self._url, client_properties={"connection_name": "hookline-producer-sdk"}
            )
        # Make sure no event is published before its queues exist; leave existing ones alone.
        await declare_topology(self._connection, self._topology, only_missing=True)
        self._publisher = await Publisher.open(self._connection, self._timeout_s)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._publisher is not None:
            await self._publisher.close()
            self._publisher = None
        if self._owns_connection and self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def publish(
        self,
        type: str,  # the event's field is called type
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        source: str | None = None,
        object_id: ObjectId | None = None,
        time: datetime | None = None,
        account: str | None = None,
    ) -> str:
        """Publish one event and return its id once the broker confirmed it."""
        event = EventIn(
            type=type,
            data=dict(data),
            id=id or new_event_id(),
            source=source,
            object_id=object_id,
            time=time,
            account=account,
        )
        return (await self.publish_events([event]))[0]

    async def publish_events(self, events: Iterable[EventIn]) -> list[str]:
        """Publish validated events concurrently; their ids, once every one is confirmed."""
        stamped = [event.stamped() for event in events]
        results = await asyncio.gather(
            *(self._publish(event) for event in stamped), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [event.id for event in stamped]

    async def _publish(self, event: Event) -> None:
        if self._publisher is None:
            raise RuntimeError("use `async with Producer(...)` before publishing")
        await self._publisher.publish(
            self._topology.events_exchange,
            event.type,
            event.model_dump_json(exclude_none=True).encode(),
            message_id=event.id,
            message_type=event.type,
        )
