"""Taking events off the route queue: one delivery per matching webhook.

An event with few deliveries (`first_attempt_fanout`) has their first attempts made right here,
where it was routed, when their endpoints are healthy and fast: no trip through the deliver queue
(the broker's costliest hop). Every other delivery, and every delivery of a redelivered event, is
published to the deliver queue. Each event is also appended to the events stream (for replay), in
a batch with others. An event is acked only after that append and every delivery it produced were
confirmed by the broker: published, or attempted with its record and decision confirmed. Delivery
ids are derived from (event id, webhook id), so a redelivered event produces the very same
deliveries, and senders check the delivery log before attempting them again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractIncomingMessage

from schemas.deliveries import DeliveryTask
from schemas.deliveries import first_attempt as first_attempt_task
from schemas.events import Event
from schemas.topology import DELIVER_KEY, REPEAT_HEADER, Topology
from schemas.webhooks import WebhookState
from services.runtime.broker import Publisher
from services.runtime.catalog import EventCatalog
from services.runtime.consuming import Publish, confirm, may_repeat
from services.runtime.event_messages import UnreadableEvent, read_event_to_log
from services.runtime.outcomes import Done, HoldExpired, Outcome
from services.runtime.recent_ids import RecentIds
from services.runtime.record_batches import RecordBatches
from services.sender.attempt_slots import AttemptSlots
from services.sender.metrics import SenderMetrics
from services.sender.routing import RoutingIndex

log = structlog.get_logger(__name__)


class TableNotCurrent(HoldExpired):
    """The webhook table is not following the stream (reconnecting, or the stream is lost)."""


# Makes a just-routed delivery's first attempt with the event's message, or says None: not here.
# The callback is told once the call is over (its record is confirmed after that, with the event).
FirstAttempt = Callable[
    [AbstractIncomingMessage, DeliveryTask, WebhookState, Callable[[], None]],
    Awaitable[Outcome | None],
]


class FanOut:
    """The route queue's message handler."""

    def __init__(
        self,
        publisher: Publisher,
        events_log: RecordBatches,
        topology: Topology,
        index: RoutingIndex,
        metrics: SenderMetrics,
        table_current: Callable[[float], Awaitable[None]],
        *,
        dedupe_window: int,
        max_event_bytes: int,
        hold_s: float,
        first_attempt: FirstAttempt | None = None,
        first_attempt_fanout: int = 0,
        first_attempt_slots: int = 1,
        first_attempt_max_s: float = 1.0,
        catalog: EventCatalog | None = None,
    ) -> None:
        self._publisher = publisher
        self._events_log = events_log
        self._topology = topology
        self._index = index
        self._metrics = metrics
        self._table_current = table_current
        self._recent = RecentIds(dedupe_window)
        self._max_event_bytes = max_event_bytes
        self._hold_s = hold_s
        self._first_attempt = first_attempt
        self._first_attempt_fanout = first_attempt_fanout
        # Events off the route queue are checked against it here, where they come in: those the
        # producer checked already are marked so (see read_event).
        self._catalog = catalog
        # First attempts made here at once, one slot each: bounded, so that endpoints that turn
        # slow cannot hold every event this sender has taken. Attempts made here take at most
        # `first_attempt_max_s` as a rule: none finishing for that long means they turned slow.
        self._slots = AttemptSlots(first_attempt_slots, stall_s=first_attempt_max_s)
        # Events being routed now, by id: a second copy waits for the first one's outcome.
        self._routing: dict[str, asyncio.Future[None]] = {}

    async def handle(self, message: AbstractIncomingMessage) -> Outcome:
        started = time.monotonic()
        if len(message.body) > self._max_event_bytes:
            raise UnreadableEvent(
                f"event is {len(message.body)} bytes, more than {self._max_event_bytes}"
            )
        event, logged = read_event_to_log(message, self._catalog)
        while (first := self._routing.get(event.id)) is not None:
            await asyncio.shield(first)
        if event.id in self._recent:
            return Done(then=lambda: self._dropped_duplicate(event))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._routing[event.id] = done
        try:
            # Appended now, so its batch is confirmed while the event is routed and attempted.
            stored = _Stored(self._events_log, event.id, logged)
            routed, attempted = await self._route(message, event, stored)
        finally:
            del self._routing[event.id]
            done.set_result(None)

        def after_ack() -> None:
            for outcome in attempted:
                if outcome.then is not None:
                    outcome.then()
            self._routed(event, routed, len(attempted), time.monotonic() - started)

        return Done(then=after_ack)

    async def _route(
        self, message: AbstractIncomingMessage, event: Event, stored: _Stored
    ) -> tuple[list[str], list[Done]]:
        """Make the first attempts that may be made here, publish a delivery for every other
        matching webhook, and wait until all is confirmed, the event's append to the events
        stream included; the webhook ids, and the attempts. An event given back meanwhile may
        have been appended: a redelivered event is appended again, and replay reads each id
        once."""
        try:  # never route on a table that missed changes
            await self._table_current(self._hold_s)
        except TimeoutError:
            raise TableNotCurrent(
                "not_current", f"the webhooks stream was not followed within {self._hold_s:g}s"
            ) from None
        webhooks = self._index.route(event.type, event.account)
        # A redelivered event may have been routed already: its deliveries say so, and senders
        # check what is recorded before they attempt them.
        repeat = may_repeat(message)
        attempted: list[Done] = []
        queued = webhooks
        if not repeat and self._first_attempt and 0 < len(webhooks) <= self._first_attempt_fanout:
            attempted, queued = await self._attempt_first(message, event, webhooks)
        await confirm(
            message,
            [
                stored.publish,
                *(self._publisher_of(event, webhook, repeat=repeat) for webhook in queued),
            ],
            what="deliveries",
            hold_s=self._hold_s,
        )
        # Its deliveries are confirmed: a copy of this event is a duplicate now, even if the ack
        # that follows is lost.
        self._recent.add(event.id)
        return [webhook.id for webhook in webhooks], attempted

    async def _attempt_first(
        self, message: AbstractIncomingMessage, event: Event, webhooks: list[WebhookState]
    ) -> tuple[list[Done], list[WebhookState]]:
        """The first attempts made here (settled with the event), and the webhooks whose first
        attempt takes the deliver queue. Every attempt ends before an error goes on: none is left
        running after its event was given back."""
        assert self._first_attempt is not None
        first_attempt = self._first_attempt
        try:
            taken = await self._slots.acquire(len(webhooks))
        except TimeoutError:  # the attempts ahead stopped finishing: take the deliver queue
            return [], webhooks
        here, queued = webhooks[:taken], webhooks[taken:]

        async def attempt(webhook: WebhookState) -> Outcome | None:
            # A slot is held for the call, not while its record is gathered and confirmed: the
            # slots bound what endpoints serve at once (the event's message holds the rest).
            released = False

            def called() -> None:
                nonlocal released
                if not released:
                    released = True
                    self._slots.release(1)

            try:
                task = first_attempt_task(event, webhook)
                return await first_attempt(message, task, webhook, called)
            finally:
                called()

        outcomes = await asyncio.gather(*(attempt(w) for w in here), return_exceptions=True)
        attempted: list[Done] = []
        for webhook, outcome in zip(here, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is None:
                queued.append(webhook)
            elif isinstance(outcome, Done):
                attempted.append(outcome)
            else:  # a first attempt is settled with its record, never given back or parked
                raise AssertionError(f"a first attempt ended as {outcome!r}")
        return attempted, queued

    def _routed(
        self, event: Event, routed: list[str], attempted_here: int, duration_s: float
    ) -> None:
        self._metrics.events_routed.inc()
        self._metrics.deliveries_routed.inc(len(routed))
        self._metrics.first_attempts.labels(where="routed_here").inc(attempted_here)
        self._metrics.first_attempts.labels(where="deliver_queue").inc(len(routed) - attempted_here)
        if not routed:
            self._metrics.events_unmatched.inc()
        self._metrics.fanout_duration.observe(duration_s)
        # Each attempt has its own line (with the event id): a routed event's is for debugging,
        # one that matched nothing is worth a line.
        emit = log.debug if routed else log.info
        emit(
            "event.routed",
            event_id=event.id,
            event_type=event.type,
            deliveries=len(routed),
            webhook_ids=routed[:20],
        )

    def _dropped_duplicate(self, event: Event) -> None:
        self._metrics.events_duplicate.inc()
        log.info("event.duplicate_dropped", event_id=event.id, event_type=event.type)

    def _publisher_of(self, event: Event, webhook: WebhookState, *, repeat: bool) -> Publish:
        headers = {"event_id": event.id, "webhook_id": webhook.id}
        if repeat:
            headers[REPEAT_HEADER] = "1"

        async def publish() -> None:
            # The body is built only now, so a large fan-out holds one batch of bodies at a time.
            task = first_attempt_task(event, webhook)
            await self._publisher.publish(
                self._topology.deliveries_exchange,
                DELIVER_KEY,
                task.model_dump_json().encode(),
                message_id=task.delivery_id,
                headers=headers,
            )

        return publish


class _Stored:
    """An event's append to the events stream, submitted before it is routed: the first publish
    awaits that append; one retried after a failure appends again."""

    def __init__(self, events_log: RecordBatches, event_id: str, logged: bytes) -> None:
        self._events_log = events_log
        self._event_id = event_id
        self._logged = logged
        self._first_try: asyncio.Future[None] | None = events_log.submit(event_id, logged)

    async def publish(self) -> None:
        first_try, self._first_try = self._first_try, None
        if first_try is not None:
            await asyncio.shield(first_try)
        else:
            await self._events_log.add(self._event_id, self._logged)
