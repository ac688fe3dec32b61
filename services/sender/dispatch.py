"""A delivery message's life in the sender: prepare, call, decide, record, then settle.

The message is acked only once what follows it is confirmed by the broker: the outcome record in
the delivery log, and the retry or dead-letter message when there is one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from schemas.deliveries import DELIVERY_TASK, DeliveryAttempted, DeliveryTask
from schemas.topology import REASON_HEADER, Topology, delay_label
from schemas.webhooks import WebhookState
from services.runtime.broker import Publisher
from services.runtime.consuming import (
    Publish,
    channel_closed,
    publish_until_confirmed,
    quarantine,
    settle,
)
from services.runtime.webhook_log import WebhookLog
from services.sender.calling import CallResult, call
from services.sender.fate import Decision, decide
from services.sender.metrics import SenderMetrics
from services.sender.request import prepare_request
from services.sender.targets import TargetPolicy

log = structlog.get_logger(__name__)


class Dispatcher:
    """The deliver queue's message handler."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        topology: Topology,
        webhook_log: WebhookLog,
        session: aiohttp.ClientSession,
        policy: TargetPolicy,
        metrics: SenderMetrics,
        schedule_s: Sequence[float],
        attempt_timeout_s: float,
        table_wait_s: float,
    ) -> None:
        self._publisher = publisher
        self._topology = topology
        self._webhook_log = webhook_log
        self._table = webhook_log.table
        self._session = session
        self._policy = policy
        self._metrics = metrics
        self._schedule_s = tuple(schedule_s)
        self._attempt_timeout_s = attempt_timeout_s
        self._table_wait_s = table_wait_s

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            task = DELIVERY_TASK.validate_json(message.body)
        except ValidationError as error:
            if await quarantine(
                self._publisher,
                self._topology.quarantine_queue,
                message,
                reason=f"not a delivery: {error}",
                source=self._topology.deliver_queue,
            ):
                self._metrics.messages_quarantined.labels(queue="deliver").inc()
            return
        self._metrics.in_flight.inc()
        try:
            await self._deliver(message, task)
        finally:
            self._metrics.in_flight.dec()

    async def _deliver(self, message: AbstractIncomingMessage, task: DeliveryTask) -> None:
        log_ = log.bind(
            delivery_id=task.delivery_id,
            event_id=task.event.id,
            webhook_id=task.webhook_id,
            attempt=task.attempt,
        )
        webhook = await self._webhook_as_routed(message, task)
        result: CallResult | None = None
        reason: str | None
        if webhook is None:
            decision, reason = Decision("cancelled"), "webhook deleted"
        elif webhook.disabled and not task.test:
            decision, reason = Decision("cancelled"), "webhook disabled"
        else:
            request = prepare_request(task, webhook, int(time.time()))
            result = await call(self._session, request, self._attempt_timeout_s, self._policy)
            decision = decide(
                succeeded=result.succeeded,
                attempt=task.attempt,
                test=task.test,
                schedule_s=self._schedule_s,
            )
            reason = result.error
        record = DeliveryAttempted(
            delivery_id=task.delivery_id,
            event_id=task.event.id,
            event_type=task.event.type,
            webhook_id=task.webhook_id,
            attempt=task.attempt,
            at=datetime.now(UTC),
            outcome=decision.outcome,
            status_code=result.status_code if result else None,
            error=reason,
            duration_s=round(result.duration_s, 6) if result else None,
            next_attempt_in_s=decision.delay_s,
            test=task.test,
        )
        publishes = [self._log_publish(record)]
        if decision.outcome == "retry_scheduled":
            assert decision.delay_s is not None
            publishes.append(self._retry_publish(task, decision.delay_s, reason))
        elif decision.outcome == "dead_lettered":
            publishes.append(self._dead_letter_publish(task, reason))
        if not await publish_until_confirmed(message, publishes, what=decision.outcome):
            return  # the channel is gone: the broker redelivers, nothing is acked
        if not await settle(message.ack()):
            return
        self._count(decision, result)
        log_.info(
            "delivery.attempted",
            outcome=decision.outcome,
            status_code=record.status_code,
            error=reason,
            duration_s=record.duration_s,
            next_attempt_in_s=decision.delay_s,
            test=task.test or None,
        )

    async def _webhook_as_routed(
        self, message: AbstractIncomingMessage, task: DeliveryTask
    ) -> WebhookState | None:
        """The webhook as of the revision the router routed with, or newer.

        While the table is behind, the message is held (not requeued): that is the backpressure.
        """
        await self._webhook_log.current()  # not while reconnecting: changes may be unread
        while True:
            try:
                await self._table.wait_for_offset(task.webhook_revision, self._table_wait_s)
                return self._table.get(task.webhook_id)
            except TimeoutError:
                log.warning(
                    "webhook_table.behind",
                    wanted=task.webhook_revision,
                    have=self._table.offset,
                    delivery_id=task.delivery_id,
                )
                if channel_closed(message):
                    raise

    def _count(self, decision: Decision, result: CallResult | None) -> None:
        self._metrics.outcomes.labels(outcome=decision.outcome).inc()
        if result is not None:
            self._metrics.attempts.labels(status_class=result.status_class).inc()
            self._metrics.attempt_duration.labels(
                result="success" if result.succeeded else "failure"
            ).observe(result.duration_s)
        if decision.outcome == "retry_scheduled" and decision.delay_s is not None:
            self._metrics.retries.labels(tier=delay_label(decision.delay_s)).inc()
        elif decision.outcome == "dead_lettered":
            self._metrics.dead_letters.inc()

    def _log_publish(self, record: DeliveryAttempted) -> Publish:
        body = record.model_dump_json(exclude_none=True).encode()

        async def publish() -> None:
            await self._publisher.publish(
                "", self._topology.delivery_log_stream, body, message_type=record.kind
            )

        return publish

    def _retry_publish(self, task: DeliveryTask, delay_s: float, reason: str | None) -> Publish:
        body = task.model_copy(update={"attempt": task.attempt + 1}).model_dump_json().encode()
        queue = self._topology.retry_queue(delay_s)

        async def publish() -> None:
            await self._publisher.publish(
                "", queue, body, message_id=task.delivery_id, headers={REASON_HEADER: reason or ""}
            )

        return publish

    def _dead_letter_publish(self, task: DeliveryTask, reason: str | None) -> Publish:
        body = task.model_dump_json().encode()

        async def publish() -> None:
            await self._publisher.publish(
                "",
                self._topology.dead_queue,
                body,
                message_id=task.delivery_id,
                headers={REASON_HEADER: reason or "", "x-hookline-attempts": task.attempt},
            )

        return publish
