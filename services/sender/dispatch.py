"""A delivery message's life in the sender, as a pipeline: read, find the webhook, skip what is
recorded already, pass the endpoint's gate (or park), call, decide, record, then hand the outcome
to the runtime, which settles the message.

The message is acked only once what follows it is confirmed by the broker: first the attempt's
record in the delivery log (in a batch with others, `RecordBatches`), then the retry, dead letter,
disable or notice its decision produced. The record comes first because it says what the attempt
decided to every sender: a repeat of the message produces that decision again instead of calling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import aiohttp
import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from schemas.deliveries import (
    DELIVERY_TASK,
    FINAL_OUTCOMES,
    DeliveryAttempted,
    DeliveryTask,
    RecordId,
)
from schemas.mail import FailureNotice
from schemas.targets import TargetPolicy
from schemas.topology import (
    ATTEMPTS_HEADER,
    DELIVER_KEY,
    REASON_HEADER,
    RECHECK_AT_HEADER,
    REPEAT_HEADER,
    REPEAT_PRODUCT,
    Topology,
    delay_label,
)
from schemas.webhooks import WebhookDisabled, WebhookState
from services.runtime.broker import Publisher, PublishFailed
from services.runtime.consuming import Publish, confirm, may_repeat
from services.runtime.outcomes import Done, HoldExpired, Outcome, Unreadable
from services.runtime.record_batches import RecordBatches
from services.runtime.sanitize import clean_bytes, clean_text
from services.runtime.webhook_log import WebhookLog
from services.sender.calling import KEPT_BODY_BYTES, CallResult, call
from services.sender.endpoints import Admitted, EndpointGate, Refused
from services.sender.fate import Decision, cancelled, decide
from services.sender.jwt_body import PolicyTokens
from services.sender.metrics import SenderMetrics
from services.sender.not_sent import NotSent, RequestNotPrepared
from services.sender.request import prepare_request
from services.sender.retry import tier_for
from services.sender.settled import Recorded, SettledLog

log = structlog.get_logger(__name__)

# A parked delivery waits at least this long before it is tried again.
MIN_PARK_S = 1.0
# How long a possible repeat waits past an attempt's deadline before it is checked once more, and
# how long a redelivered one waits for records that were in flight when its channel was lost.
RECHECK_MARGIN_S = 5.0
RECHECK_AFTER_REDELIVERY_S = 1.0


class TaskUnreadable(Unreadable):
    """Before the attempt: the message on the deliver queue is not a delivery."""


class TableBehind(HoldExpired):
    """Before the attempt: the webhook table did not reach the revision the router routed with."""


class Dispatcher:
    """The deliver queue's message handler."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        records: RecordBatches,
        topology: Topology,
        webhook_log: WebhookLog,
        settled: SettledLog,
        gate: EndpointGate,
        session: aiohttp.ClientSession,
        policy: TargetPolicy,
        metrics: SenderMetrics,
        schedule_s: Sequence[float],
        attempt_timeout_s: float,
        table_wait_s: float,
        hold_s: float,
        first_attempt_max_s: float = 1.0,
        tokens: PolicyTokens | None = None,
    ) -> None:
        self._publisher = publisher
        self._records = records
        self._topology = topology
        self._webhook_log = webhook_log
        self._table = webhook_log.table
        self._settled = settled
        self._gate = gate
        self._session = session
        self._policy = policy
        self._metrics = metrics
        self._schedule_s = tuple(schedule_s)
        self._attempt_timeout_s = attempt_timeout_s
        self._table_wait_s = table_wait_s
        self._hold_s = hold_s
        # Deliveries being attempted now, by id, so another message of one (a copy of the same
        # attempt, or a repeated attempt whose retry was already published) waits for its record.
        self._attempting: dict[str, asyncio.Future[None]] = {}
        # First attempts made where their events were routed go only to endpoints that answered
        # within `first_attempt_max_s` so far (and did not fail since).
        self._first_attempt_max_s = first_attempt_max_s
        # Signs the bodies of webhooks that name a policy.
        self._tokens = tokens or PolicyTokens(webhook_log.table.policies)

    async def close(self) -> None:
        """Wait for the records still being confirmed."""
        await self._records.close()

    async def handle(self, message: AbstractIncomingMessage) -> Outcome:
        task = read_task(message)
        webhook = await self._webhook_as_routed(task)
        recorded = await self._latest_recorded(message, task)
        if recorded is not None and recorded.attempt >= task.attempt:
            if recorded.attempt == task.attempt and reproduces(message, recorded):
                return await self._reproduce(message, task, webhook, recorded)
            return Done(then=lambda: self._dropped_repeat(task))
        if (
            recorded is not None
            and recorded.outcome in FINAL_OUTCOMES
            and task.schedule_from <= recorded.attempt  # a redrive starts after the final one
        ):
            return Done(then=lambda: self._dropped_repeat(task))  # a forked chain's retry
        if may_repeat(message):
            wait_s = self._recheck_wait_s(message)
            if wait_s > 0:
                return await self._park_for_recheck(message, task, wait_s)
        with self._claimed(task):
            return await self._deliver(message, task, webhook)

    async def first_attempt(
        self,
        message: AbstractIncomingMessage,
        task: DeliveryTask,
        webhook: WebhookState,
        called: Callable[[], None] | None = None,
    ) -> Outcome | None:
        """Make a delivery's first attempt right where its event was routed, with no trip through
        the deliver queue, when its endpoint is healthy and fast and has a slot now or soon. The
        attempt is settled with `message`, the event: its record and decision are confirmed
        before the event is acked. `called` is told as soon as the call is over, before that.
        None when the delivery must take the deliver queue instead.
        """
        if task.delivery_id in self._attempting or not self._gate.fast_and_healthy(
            webhook.id, self._first_attempt_max_s
        ):
            return None
        admission = await self._gate.admit_or_wait(webhook.id)
        if isinstance(admission, Refused):
            return None
        with self._claimed(task):
            return await self._attempt(message, task, webhook, admission, called)

    @contextmanager
    def _claimed(self, task: DeliveryTask) -> Iterator[None]:
        """This process is attempting the delivery: another message of it waits for the record."""
        attempting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._attempting[task.delivery_id] = attempting
        self._metrics.in_flight.inc()
        try:
            yield
        finally:
            self._metrics.in_flight.dec()
            del self._attempting[task.delivery_id]
            attempting.set_result(None)

    async def _deliver(
        self, message: AbstractIncomingMessage, task: DeliveryTask, webhook: WebhookState | None
    ) -> Outcome:
        if webhook is None:
            return await self._settle(message, task, webhook, cancelled("webhook deleted"), None)
        if webhook.disabled and not task.test:
            return await self._settle(message, task, webhook, cancelled("webhook disabled"), None)
        # Test calls are single calls an operator asked for: they pass the gate.
        admission = (
            Admitted(webhook.id) if task.test else await self._gate.admit_or_wait(webhook.id)
        )
        if isinstance(admission, Refused):
            return await self._park(message, task, admission)
        return await self._attempt(message, task, webhook, admission)

    async def _attempt(
        self,
        message: AbstractIncomingMessage,
        task: DeliveryTask,
        webhook: WebhookState,
        admission: Admitted,
        called: Callable[[], None] | None = None,
    ) -> Outcome:
        """Call the endpoint, decide and settle; the admission is released whatever happens (as
        no call when none was made: the endpoint's record is not touched), and then `called` is
        told, before the settling."""
        result: CallResult | NotSent | None = None
        try:
            result = await self._call(task, webhook)
        finally:
            if not task.test:
                made = result if isinstance(result, CallResult) else None
                self._gate.release(
                    admission,
                    succeeded=None if made is None else made.succeeded,
                    duration_s=made.duration_s if made else 0.0,
                    retry_after_s=made.retry_after_s if made else None,
                )
            if called is not None:
                called()
        assert result is not None, "_call() returns every failure as a result"
        decision = decide(
            result, attempt=task.attempt_of_schedule, test=task.test, schedule_s=self._schedule_s
        )
        return await self._settle(message, task, webhook, decision, result)

    async def _call(self, task: DeliveryTask, webhook: WebhookState) -> CallResult | NotSent:
        """One call to the endpoint, or why none could be made (its policy is disabled or gone)."""
        try:
            request = prepare_request(task, webhook, int(time.time()), self._tokens)
        except RequestNotPrepared as not_prepared:
            return not_prepared.not_sent
        return await call(self._session, request, self._attempt_timeout_s, self._policy)

    async def _webhook_as_routed(self, task: DeliveryTask) -> WebhookState | None:
        """The webhook as of the revision the router routed with, or newer.

        While the table is behind, the message is held (that is the backpressure), for a bounded
        time; then it goes back to the queue.
        """
        try:
            await self._webhook_log.current(timeout_s=self._table_wait_s)
            await self._table.wait_for_offset(task.webhook_revision, self._table_wait_s)
        except TimeoutError:
            raise TableBehind(
                "table_behind",
                f"webhook table at offset {self._table.offset}, not at {task.webhook_revision} "
                f"within {self._table_wait_s:g}s",
            ) from None
        return self._table.get(task.webhook_id)

    async def _latest_recorded(
        self, message: AbstractIncomingMessage, task: DeliveryTask
    ) -> Recorded | None:
        """The latest attempt of this delivery with an outcome in the delivery log, if any.

        For a message that may repeat work, the delivery log is read up to now first. Then an
        attempt of the same delivery being made in this process now is waited for (a copy of this
        attempt, or the next one). Last, so that nothing awaits between this look and the caller
        claiming the delivery (two messages that caught up together would otherwise both be
        attempted, and go on as two retry chains).
        """
        if may_repeat(message):
            try:
                async with asyncio.timeout(self._hold_s):
                    await self._settled.caught_up()
            except (TimeoutError, PublishFailed) as error:
                raise HoldExpired(
                    "hold_expired",
                    f"delivery log not read up to now within {self._hold_s:g}s: "
                    f"{error or type(error).__name__}",
                ) from None
        while (first := self._attempting.get(task.delivery_id)) is not None:
            await asyncio.shield(first)
        return self._settled.latest(task.delivery_id)

    async def _reproduce(
        self,
        message: AbstractIncomingMessage,
        task: DeliveryTask,
        webhook: WebhookState | None,
        recorded: Recorded,
    ) -> Outcome:
        """The attempt is recorded, but what it decided may not have gone out (the broker went
        away between the record and its retry or dead letter): produce it again, marked, so a
        copy of something that did go out is dropped before it is attempted."""
        decision = Decision(recorded.outcome, recorded.next_attempt_in_s, reason=recorded.error)
        now = datetime.now(UTC)
        if decision.outcome == "retry_scheduled" and recorded.next_attempt_due_ms is not None:
            # Due when it was due the first time, not a whole delay from now.
            produced = [self._retry_again_publish(task, recorded.next_attempt_due_ms)]
        else:
            produced = self._produced_by(task, webhook, decision, now)
        await confirm(message, produced, what=f"{decision.outcome} again", hold_s=self._hold_s)

        def reproduced() -> None:
            self._metrics.decisions_reproduced.inc()
            log.info(
                "delivery.decision_produced_again",
                **ids_of(task),
                outcome=decision.outcome,
            )

        return Done(then=reproduced)

    def _recheck_wait_s(self, message: AbstractIncomingMessage) -> float:
        """How much longer a message that may repeat work waits before it is checked once more and
        attempted: until any earlier making of its attempt must have been recorded.

        A redelivered message's earlier holder lost its channel and publishes nothing after that
        (`confirm` checks), so a moment covers what was in flight. A copy marked as a repeat (a
        router's redelivery, a crash, a retry produced again) may have a twin being attempted
        right now in another sender: that one is recorded within an attempt's deadline.
        """
        headers = message.headers or {}
        recheck_at_ms = headers.get(RECHECK_AT_HEADER)
        if isinstance(recheck_at_ms, int):
            return max(0.0, recheck_at_ms / 1000 - time.time())
        if headers.get(REPEAT_HEADER):
            return self._attempt_timeout_s + RECHECK_MARGIN_S
        return RECHECK_AFTER_REDELIVERY_S

    async def _park_for_recheck(
        self, message: AbstractIncomingMessage, task: DeliveryTask, wait_s: float
    ) -> Outcome:
        """Put a possible repeat aside until it may be checked once more (parked again while the
        tiers are shorter than the wait)."""
        headers = message.headers or {}
        recheck_at_ms = headers.get(RECHECK_AT_HEADER)
        if not isinstance(recheck_at_ms, int):
            # Whole milliseconds: AMQP tables carry a float in 32 bits, which is off by a minute.
            recheck_at_ms = round((time.time() + wait_s) * 1000)
        # The longest tier that does not overshoot, parked again until due: a recheck should come
        # when it may, not a tier's rounding later.
        tiers_s = self._topology.park_tiers_s
        delay_s = max((t for t in tiers_s if t <= wait_s), default=min(tiers_s))
        queue = self._topology.park_queue(delay_s)
        repeat = headers.get(REPEAT_HEADER) or "redelivered"

        async def park() -> None:
            await self._publisher.republish(
                message, queue, headers={REPEAT_HEADER: repeat, RECHECK_AT_HEADER: recheck_at_ms}
            )

        await confirm(message, [park], what="recheck", hold_s=self._hold_s)

        def parked() -> None:
            self._metrics.parked.labels(reason="recheck").inc()
            log.info(
                "delivery.recheck_later",
                **ids_of(task),
                wait_s=round(wait_s, 3),
            )

        return Done(then=parked)

    async def _park(
        self, message: AbstractIncomingMessage, task: DeliveryTask, refused: Refused
    ) -> Outcome:
        """Put the delivery aside, with its attempt number unchanged, and take the next message."""
        delay_s = tier_for(max(refused.wait_s, MIN_PARK_S), self._topology.park_tiers_s)
        queue = self._topology.park_queue(delay_s)

        async def park() -> None:
            await self._publisher.republish(message, queue, headers={REASON_HEADER: refused.reason})

        await confirm(message, [park], what="park", hold_s=self._hold_s)

        def parked() -> None:
            self._metrics.parked.labels(reason=refused.reason).inc()
            log.debug(
                "delivery.parked",
                **ids_of(task),
                reason=refused.reason,
                park_s=delay_s,
            )

        return Done(then=parked)

    async def _settle(
        self,
        message: AbstractIncomingMessage,
        task: DeliveryTask,
        webhook: WebhookState | None,
        decision: Decision,
        result: CallResult | NotSent | None,
    ) -> Outcome:
        """Confirm the attempt's record, then what its decision produced; then it may be acked.

        The record comes first: once it is in the log, every sender knows what this attempt
        decided, and a repeat of the message produces the retry or dead letter again rather than
        making the attempt again (which could fork the chain).
        """
        now = datetime.now(UTC)
        called = result if isinstance(result, CallResult) else None
        record = DeliveryAttempted(
            delivery_id=task.delivery_id,
            event_id=task.event.id,
            event_type=task.event.type,
            webhook_id=task.webhook_id,
            attempt=task.attempt,
            at=now,
            outcome=decision.outcome,
            status_code=called.status_code if called else None,
            error=decision.reason,
            duration_s=round(called.duration_s, 6) if called else None,
            next_attempt_in_s=decision.delay_s,
            test=task.test,
            replay=task.replay is not None,
            response_body=_shown(called),
            # No call was made: the record says nothing about the endpoint's health.
            not_sent=True if isinstance(result, NotSent) else None,
        )
        record_id = RecordId.of(record)
        await confirm(
            message, [self._log_publish(record, record_id)], what="record", hold_s=self._hold_s
        )
        self._settled.add(record_id, record.error)
        produced = self._produced_by(task, webhook, decision, now)
        if produced:
            await confirm(message, produced, what=decision.outcome, hold_s=self._hold_s)
        return Done(then=lambda: self._attempted(record, decision, result))

    def _produced_by(
        self,
        task: DeliveryTask,
        webhook: WebhookState | None,
        decision: Decision,
        now: datetime,
    ) -> list[Publish]:
        """The messages a decision produces besides its record."""
        produced: list[Publish] = []
        if decision.outcome == "retry_scheduled":
            assert decision.delay_s is not None
            produced.append(self._retry_publish(task, decision.delay_s, decision.reason))
        elif decision.outcome == "dead_lettered":
            produced.append(self._dead_letter_publish(task, decision.reason))
        if decision.disable and webhook is not None and not webhook.disabled:
            reason = clean_text(f"the endpoint answered {decision.reason}")
            produced.append(self._disable_publish(webhook, reason, now))
            if webhook.mail_exceptions_to:
                produced.append(
                    self._notice_publish(
                        FailureNotice(kind="disabled", webhook_id=webhook.id, at=now, reason=reason)
                    )
                )
        if decision.outcome == "dead_lettered" and webhook and webhook.mail_exceptions_to:
            produced.append(
                self._notice_publish(
                    FailureNotice(
                        kind="dead_lettered",
                        webhook_id=webhook.id,
                        at=now,
                        reason=decision.reason or "",
                        delivery_id=task.delivery_id,
                        event_id=task.event.id,
                        event_type=task.event.type,
                        attempts=task.attempt,
                    )
                )
            )
        return produced

    def _attempted(
        self, record: DeliveryAttempted, decision: Decision, result: CallResult | NotSent | None
    ) -> None:
        """Count and log an attempt once its message is acked: one line per attempt."""
        metrics = self._metrics
        metrics.outcomes.labels(outcome=decision.outcome).inc()
        if isinstance(result, NotSent):
            metrics.not_sent.labels(reason=result.why).inc()
        elif result is not None:
            metrics.attempts.labels(status_class=result.status_class).inc()
            metrics.attempt_duration.labels(
                result="success" if result.succeeded else "failure"
            ).observe(result.duration_s)
        if decision.outcome == "retry_scheduled" and decision.delay_s is not None:
            metrics.retries.labels(tier=delay_label(decision.delay_s)).inc()
        elif decision.outcome == "dead_lettered":
            metrics.dead_letters.inc()
        if decision.disable:
            metrics.webhooks_disabled.inc()
        emit: Callable[..., None] = log.info
        if decision.outcome == "dead_lettered":
            # An error: the delivery is given up, and the subscriber misses the event until a
            # person acts (fixes the endpoint, redrives). A retry, or a failed test call (tried
            # once, at someone's request), needs nobody yet: a warning.
            emit = log.error
        elif decision.outcome in ("retry_scheduled", "failed"):
            emit = log.warning
        fields = {
            "delivery_id": record.delivery_id,
            "event_id": record.event_id,
            "webhook_id": record.webhook_id,
            "attempt": record.attempt,
            "outcome": record.outcome,
            "status_code": record.status_code,
            "error": record.error,
            "duration_s": record.duration_s,
            "next_attempt_in_s": record.next_attempt_in_s,
            "test": record.test or None,
            "not_sent": record.not_sent,
            "disabled_webhook": decision.disable or None,
        }
        # One line per attempt; fields that say nothing are left out.
        emit("delivery.attempted", **{k: v for k, v in fields.items() if v is not None})

    def _dropped_repeat(self, task: DeliveryTask) -> None:
        self._metrics.repeats_dropped.inc()
        log.info(
            "delivery.already_recorded",
            **ids_of(task),
        )

    def _log_publish(self, record: DeliveryAttempted, record_id: RecordId) -> Publish:
        body = record.model_dump_json(exclude_none=True).encode()

        async def publish() -> None:
            await self._records.add(str(record_id), body)

        return publish

    def _retry_publish(self, task: DeliveryTask, delay_s: float, reason: str | None) -> Publish:
        body = task.model_copy(update={"attempt": task.attempt + 1}).model_dump_json().encode()
        queue = self._topology.retry_queue(delay_s)

        async def publish() -> None:
            await self._publisher.publish(
                "", queue, body, message_id=task.delivery_id, headers={REASON_HEADER: reason or ""}
            )

        return publish

    def _retry_again_publish(self, task: DeliveryTask, due_ms: int) -> Publish:
        """The retry an attempt's record says was scheduled, produced again: marked (a copy of one
        that went out is dropped before it is attempted), and due when the first was due, so it
        goes to the retry tier that ends closest before then, or straight to the deliver queue."""
        body = task.model_copy(update={"attempt": task.attempt + 1}).model_dump_json().encode()
        headers = {REPEAT_HEADER: REPEAT_PRODUCT}
        wait_s = due_ms / 1000 - time.time()
        tiers_s = [t for t in self._topology.retry_tiers_s if t <= wait_s]

        async def publish() -> None:
            if tiers_s:
                queue = self._topology.retry_queue(max(tiers_s))
                await self._publisher.publish(
                    "", queue, body, message_id=task.delivery_id, headers=headers
                )
            else:
                await self._publisher.publish(
                    self._topology.deliveries_exchange,
                    DELIVER_KEY,
                    body,
                    message_id=task.delivery_id,
                    headers=headers,
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
                headers={REASON_HEADER: reason or "", ATTEMPTS_HEADER: task.attempt},
            )

        return publish

    def _disable_publish(self, webhook: WebhookState, reason: str, now: datetime) -> Publish:
        record = WebhookDisabled(at=now, webhook_id=webhook.id, reason=reason)

        async def publish() -> None:
            await self._webhook_log.publish(record)

        return publish

    def _notice_publish(self, notice: FailureNotice) -> Publish:
        body = notice.model_dump_json(exclude_none=True).encode()

        async def publish() -> None:
            await self._publisher.publish("", self._topology.mail_queue, body)

        return publish


def reproduces(message: AbstractIncomingMessage, recorded: Recorded) -> bool:
    """Whether a message whose own attempt is recorded produces that attempt's decision again.

    Only a repeat of the message that made the attempt does (its retry or dead letter may not
    have gone out); a marked copy of a retry that was produced again does not, or copies would
    follow the chain step by step.
    """
    return (
        recorded.outcome in ("retry_scheduled", "dead_lettered")
        and may_repeat(message)
        and (message.headers or {}).get(REPEAT_HEADER) != REPEAT_PRODUCT
    )


def ids_of(task: DeliveryTask) -> dict[str, object]:
    """The fields every log line about a delivery carries."""
    return {"delivery_id": task.delivery_id, "webhook_id": task.webhook_id, "attempt": task.attempt}


def read_task(message: AbstractIncomingMessage) -> DeliveryTask:
    """The delivery a message carries, or TaskUnreadable saying what is wrong."""
    try:
        return DELIVERY_TASK.validate_json(message.body)
    except ValidationError as error:
        raise TaskUnreadable(f"not a delivery: {clean_text(str(error))}") from None


def _shown(result: CallResult | None) -> str | None:
    """The start of the answer's body as the history shows it; none when there was none."""
    if result is None or not result.body:
        return None
    return clean_bytes(result.body, KEPT_BODY_BYTES)
