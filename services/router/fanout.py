"""Taking events off the route queue and publishing one delivery per matching webhook.

An event is acked only after every delivery it produced was confirmed by the broker. Delivery ids
are derived from (event id, webhook id), so a redelivered event produces the very same deliveries.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from schemas.deliveries import DeliveryTask, delivery_id_for
from schemas.events import Event, EventIn, content_event_id
from schemas.topology import DELIVER_KEY, Topology
from schemas.webhooks import WebhookState
from services.router.metrics import RouterMetrics
from services.router.routing import RoutingIndex
from services.runtime.broker import Publisher
from services.runtime.consuming import publish_until_confirmed, quarantine, settle

log = structlog.get_logger(__name__)


class UnreadableEvent(ValueError):
    """The message is not an event we can route; it goes to quarantine with this reason."""


def read_event(message: AbstractIncomingMessage) -> Event:
    """The stamped event in an AMQP message, or UnreadableEvent saying what is wrong."""
    try:
        raw = json.loads(message.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise UnreadableEvent(f"body is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise UnreadableEvent("body is not a JSON object")
    try:
        event_in = EventIn.model_validate(raw)
    except ValidationError as error:
        raise UnreadableEvent(describe_validation_error(error)) from None
    routing_key = message.routing_key or ""
    if routing_key != event_in.type:
        raise UnreadableEvent(
            f"routing key {routing_key!r} is not the event type {event_in.type!r}"
        )
    event_id = event_in.id or message.message_id or content_event_id(routing_key, message.body)
    received = message.timestamp or datetime.now(UTC)
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    try:
        return event_in.stamped(id_=event_id, now=received)
    except ValidationError as error:  # only the AMQP message_id can be wrong by now
        raise UnreadableEvent(f"message_id: {describe_validation_error(error)}") from None


def describe_validation_error(error: ValidationError) -> str:
    """`type: String should match pattern …; data: Field required` — field first."""
    parts = []
    for problem in error.errors()[:10]:
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        parts.append(f"{field}: {problem['msg']}")
    return "; ".join(parts)


class RecentIds:
    """The last `size` ids seen, to drop an event whose id was routed already."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        if self._size <= 0:
            return
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)


class FanOut:
    """The route queue's message handler."""

    def __init__(
        self,
        publisher: Publisher,
        topology: Topology,
        index: RoutingIndex,
        metrics: RouterMetrics,
        *,
        dedupe_window: int,
    ) -> None:
        self._publisher = publisher
        self._topology = topology
        self._index = index
        self._metrics = metrics
        self._recent = RecentIds(dedupe_window)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        started = time.monotonic()
        try:
            event = read_event(message)
        except UnreadableEvent as error:
            if await quarantine(
                self._publisher,
                self._topology.quarantine_queue,
                message,
                reason=str(error),
                source=self._topology.route_queue,
            ):
                self._metrics.messages_quarantined.labels(queue="route").inc()
            return
        log_ = log.bind(event_id=event.id, event_type=event.type)
        if event.id in self._recent:
            self._metrics.events_duplicate.inc()
            log_.info("event.duplicate_dropped")
            await settle(message.ack())
            return
        webhooks = self._index.route(event.type)
        tasks = [deliver_task(event, webhook) for webhook in webhooks]
        published = await publish_until_confirmed(
            message, [self._publisher_of(task) for task in tasks], what="deliveries"
        )
        if not published or not await settle(message.ack()):
            return
        self._recent.add(event.id)
        self._metrics.events_routed.inc()
        self._metrics.deliveries_routed.inc(len(tasks))
        if not tasks:
            self._metrics.events_unmatched.inc()
        self._metrics.fanout_duration.observe(time.monotonic() - started)
        log_.info(
            "event.routed",
            deliveries=len(tasks),
            webhook_ids=[task.webhook_id for task in tasks][:20],
        )

    def _publisher_of(self, task: DeliveryTask) -> Any:
        body = task.model_dump_json().encode()

        async def publish() -> None:
            await self._publisher.publish(
                self._topology.deliveries_exchange,
                DELIVER_KEY,
                body,
                message_id=task.delivery_id,
                headers={"event_id": task.event.id, "webhook_id": task.webhook_id},
            )

        return publish


def deliver_task(event: Event, webhook: WebhookState, *, test: bool = False) -> DeliveryTask:
    return DeliveryTask(
        delivery_id=delivery_id_for(event.id, webhook.id),
        webhook_id=webhook.id,
        webhook_revision=webhook.revision,
        attempt=1,
        test=test,
        event=event,
    )
