"""The producer SDK: publish events to Hookline over AMQP, each confirmed by the broker.

    async with Producer("amqp://guest:guest@127.0.0.1:5672/") as producer:
        event_id = await producer.publish("problem.update", {"id": 42, "status": "solved"})

`publish` returns only after the broker has the event safely (publisher confirm on a persistent
message); it raises `PublishFailed` otherwise, and publishing again with the same `id` is safe.

Given the event catalog (`Producer(…, catalog=settings.event_catalog())`), each event is checked
against it before anything is published: `EventRefused` names each field that is wrong. The
events it checked are marked so, and senders holding the same catalog do not check them again.
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
from schemas.topology import CATALOG_HEADER, Topology
from services.runtime.broker import Publisher, PublishFailed, declare_topology
from services.runtime.catalog import EventCatalog, EventRefused

__all__ = ["EventRefused", "Producer", "PublishFailed"]

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
        catalog: EventCatalog | None = None,
    ) -> None:
        self._url = url
        # Only what publishing needs: the retry and park tiers depend on settings the SDK does
        # not know (the services declare them), and tiers declared here would be stray queues.
        self._topology = Topology(prefix=prefix, park_delays_s=())
        self._timeout_s = timeout_s
        self._connection = connection
        self._owns_connection = connection is None
        self._publisher: Publisher | None = None
        self._catalog = catalog or EventCatalog()
        # What marks an event as checked against the catalog; none when it checks nothing.
        self._headers = {CATALOG_HEADER: self._catalog.digest} if self._catalog.checks else None

    @property
    def catalog(self) -> EventCatalog:
        """The catalog every event is checked against (an empty one accepts every event)."""
        return self._catalog

    async def __aenter__(self) -> Self:
        if self._connection is None:
            self._connection = await aio_pika.connect_robust(
                self._url, client_properties={"connection_name": "hookline-producer-sdk"}
            )
        # Make sure no event is published before its queues exist; leave existing ones alone.
        await declare_topology(self._connection, self._topology, only_missing=True, retire=True)
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
        """Publish one event and return its id once the broker confirmed it; EventRefused when
        the catalog refuses it."""
        event = EventIn(
            type=type,
            data=dict(data),
            id=id or new_event_id(),
            source=source,
            object_id=object_id,
            time=time,
            account=account,
        )
        self._check([event], single=True)
        return (await self.publish_events([event], checked=True))[0]

    async def publish_events(
        self, events: Iterable[EventIn], *, checked: bool = False
    ) -> list[str]:
        """Publish validated events concurrently; their ids, once every one is confirmed.

        EventRefused, with nothing published, when the catalog refuses any of them (`[2].data…`
        names the third). `checked`: the caller has checked each one with `self.catalog` already
        (the ingest gateway does, to answer field by field), so it is not checked twice."""
        events = list(events)
        if not checked:
            self._check(events, single=False)
        stamped = [event.stamped() for event in events]
        results = await asyncio.gather(
            *(self._publish(event) for event in stamped), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [event.id for event in stamped]

    def _check(self, events: list[EventIn], *, single: bool) -> None:
        refused = [
            (problem.field(() if single else (position,)), problem.message)
            for position, event in enumerate(events)
            for problem in self._catalog.problems(event.type, event.data)
        ]
        if refused:
            raise EventRefused(refused)

    async def _publish(self, event: Event) -> None:
        if self._publisher is None:
            raise RuntimeError("use `async with Producer(...)` before publishing")
        await self._publisher.publish(
            self._topology.events_exchange,
            event.type,
            event.model_dump_json(exclude_none=True).encode(),
            message_id=event.id,
            message_type=event.type,
            headers=self._headers,
        )
