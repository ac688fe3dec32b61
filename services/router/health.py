"""Each webhook's endpoint health: a projection of the delivery log that starts from a checkpoint.

Replaying a week of the delivery log at every start would grow with traffic. Instead a router
writes the whole projection, with the delivery-log offset it covers, to the health stream every
`checkpoint_s`; at start it reads the latest checkpoint (the stream's last chunk) and follows the
delivery log from the offset after it, in the background: routing never waits for it.

When a webhook has failed long enough (`should_disable`), the router disables it with a
`webhook.disabled` record and queues a notice for its owners.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractRobustConnection
from pydantic import ValidationError

from schemas.deliveries import CIRCUIT_KIND, CircuitChanged, DeliveryAttempted, attempts_in
from schemas.health import (
    CHECKPOINT_ENCODING,
    CHECKPOINT_KIND,
    HEALTHY,
    HealthCheckpoint,
    WebhookHealth,
    decode_checkpoint,
    encode_checkpoint,
    health_after,
    reset_streak,
    should_disable,
)
from schemas.topology import Topology
from schemas.webhooks import WebhookState
from services.runtime.broker import Publisher, PublishFailed
from services.runtime.streams import StreamRecord
from services.runtime.synced_stream import SyncedStream
from services.runtime.webhook_table import WebhookTable

log = structlog.get_logger(__name__)

FailingTooLong = Callable[[WebhookState, WebhookHealth], None]
# How many messages back to look first for a checkpoint when the last chunk holds none.
CHECKPOINT_SEARCH_STEP = 16


class HealthView:
    """Health by webhook id, folded up to `offset` of the delivery log."""

    def __init__(
        self,
        table: WebhookTable,
        *,
        disable_after_s: float,
        disable_after_failures: int,
        on_failing_too_long: FailingTooLong | None = None,
    ) -> None:
        self._table = table
        self._health: dict[str, WebhookHealth] = {}
        # webhook id → sender → until when its circuit is open
        self._circuits: dict[str, dict[str, datetime]] = {}
        self._disable_after_s = disable_after_s
        self._disable_after_failures = disable_after_failures
        self._on_failing_too_long = on_failing_too_long
        self.offset = -1
        self.changed = False  # since the last checkpoint
        # The delivery-log offset of the checkpoint this view started from, if any.
        self.loaded_offset: int | None = None

    def get(self, webhook_id: str) -> WebhookHealth:
        return self._health.get(webhook_id, HEALTHY)

    def __len__(self) -> int:
        return len(self._health)

    def apply_record(self, record: StreamRecord) -> None:
        """Fold one delivery-log message; one that cannot be read is logged and skipped."""
        if record.offset <= self.offset:
            return
        self.offset = record.offset
        if record.kind == CIRCUIT_KIND:
            self._apply_circuit(record)
            return
        try:
            attempts = attempts_in(record.kind, record.body)
        except ValidationError as error:
            log.error(
                "delivery_log.unreadable_record", offset=record.offset, error=str(error)[:500]
            )
            return
        for attempt in attempts:
            self.apply(attempt)

    def _apply_circuit(self, record: StreamRecord) -> None:
        try:
            changed = CircuitChanged.model_validate_json(record.body)
        except ValidationError as error:
            log.error(
                "delivery_log.unreadable_record", offset=record.offset, error=str(error)[:500]
            )
            return
        if self._table.get(changed.webhook_id) is None:
            return
        senders = self._circuits.setdefault(changed.webhook_id, {})
        if changed.open_until is None:
            senders.pop(changed.sender, None)
            if not senders:
                del self._circuits[changed.webhook_id]
        else:
            senders[changed.sender] = changed.open_until

    def circuit_open_until(self, webhook_id: str) -> datetime | None:
        """Until when a sender's circuit for the webhook's endpoint holds attempts back (the
        latest of the senders'); None when every sender's is closed, as far as they said.

        Not checkpointed: a router that starts knows the circuits reported since the checkpoint
        it starts from (a circuit stays open minutes at most)."""
        senders = self._circuits.get(webhook_id)
        return max(senders.values()) if senders else None

    def apply(self, attempt: DeliveryAttempted) -> None:
        webhook = self._table.get(attempt.webhook_id)
        if webhook is None:
            return  # deleted: its health goes with it
        before = self.get(attempt.webhook_id)
        after = health_after(before, attempt, reset_at=webhook.enabled_at)
        if after is before:
            return
        self._health[attempt.webhook_id] = after
        self.changed = True
        if (
            self._on_failing_too_long is not None
            and not webhook.disabled
            and after.consecutive_failures > before.consecutive_failures
            and should_disable(
                after,
                now=attempt.at,
                after_s=self._disable_after_s,
                after_failures=self._disable_after_failures,
            )
        ):
            self._on_failing_too_long(webhook, after)

    def on_webhook_change(self, webhook_id: str, state: WebhookState | None) -> None:
        """A deleted webhook's health goes; one enabled again starts a new streak."""
        if state is None:
            self._circuits.pop(webhook_id, None)
            if self._health.pop(webhook_id, None) is not None:
                self.changed = True
            return
        self._reset_if_enabled_since(webhook_id, state)

    def _reset_if_enabled_since(self, webhook_id: str, state: WebhookState) -> None:
        health = self._health.get(webhook_id)
        if (
            health is not None
            and state.enabled_at is not None
            and health.failing_since is not None
            and health.failing_since < state.enabled_at
        ):
            self._health[webhook_id] = reset_streak(health)
            self.changed = True

    def checkpoint(self) -> HealthCheckpoint:
        return HealthCheckpoint(
            at=datetime.now(UTC), delivery_log_offset=self.offset, webhooks=dict(self._health)
        )

    def load(self, checkpoint: HealthCheckpoint) -> None:
        """Start from a checkpoint: the health it holds of webhooks that still exist."""
        self._health = {}
        for webhook_id, health in checkpoint.webhooks.items():
            state = self._table.get(webhook_id)
            if state is not None:
                self._health[webhook_id] = health
                self._reset_if_enabled_since(webhook_id, state)
        self.offset = checkpoint.delivery_log_offset
        self.loaded_offset = checkpoint.delivery_log_offset
        self.changed = False


class LatestCheckpoint:
    """Collects the last checkpoint among the records it is fed."""

    def __init__(self) -> None:
        self.found: HealthCheckpoint | None = None

    def apply_record(self, record: StreamRecord) -> None:
        if record.kind != CHECKPOINT_KIND:
            return
        try:
            self.found = decode_checkpoint(record.body, record.content_encoding)
        except ValueError as error:
            log.error("health.unreadable_checkpoint", offset=record.offset, error=str(error)[:500])


async def read_latest_checkpoint(
    connection: AbstractRobustConnection, publisher: Publisher, topology: Topology
) -> HealthCheckpoint | None:
    """The newest checkpoint in the health stream.

    It is usually in the stream's last chunk; when that holds only markers (routers that started
    since), look further back, a growing stretch at a time, so the whole stream is read only when
    it holds no checkpoint at all.
    """
    start: str | int = "last"
    stretch = CHECKPOINT_SEARCH_STEP
    while True:
        latest = LatestCheckpoint()
        reader = SyncedStream(
            connection,
            publisher,
            topology.health_stream,
            topology.queues()[topology.health_stream],
            latest.apply_record,
            start=start,
        )
        try:
            await reader.start("router-health")
        finally:
            await reader.stop()
        if latest.found is not None or start == 0:
            return latest.found
        end = reader.offset if isinstance(start, str) else start
        start = max(0, (end or 0) - stretch)
        stretch *= 4


class HealthProjection:
    """The router's health view, kept current from the delivery log and checkpointed."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        view: HealthView,
        *,
        checkpoint_s: float,
    ) -> None:
        self.view = view
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._checkpoint_s = checkpoint_s
        self._follower: SyncedStream | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def current(self) -> bool:
        """The view has caught up with the delivery log (since its start) and follows it."""
        return self._follower is not None and self._follower.is_current

    async def start(self) -> None:
        """Load the latest checkpoint, then follow the delivery log after it, in the background."""
        checkpoint = await read_latest_checkpoint(self._connection, self._publisher, self._topology)
        if checkpoint is not None:
            self.view.load(checkpoint)
        log.info(
            "health.loaded",
            checkpoint_at=checkpoint.at.isoformat() if checkpoint else None,
            webhooks=len(self.view),
            resume_at=self.view.offset + 1,
        )
        self._follower = SyncedStream(
            self._connection,
            self._publisher,
            self._topology.delivery_log_stream,
            self._topology.queues()[self._topology.delivery_log_stream],
            self.view.apply_record,
            start=self.view.offset + 1 if checkpoint is not None else "first",
        )
        self._tasks = [
            asyncio.create_task(self._follower.start("router-health")),
            asyncio.create_task(self._checkpoint_periodically()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._follower is not None:
            await self._follower.stop()

    async def _checkpoint_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_s)
            if self.current and self.view.changed:
                await self.write_checkpoint()

    async def write_checkpoint(self) -> None:
        """Publish the whole view with the offset it covers; a failure waits for the next turn."""
        checkpoint = self.view.checkpoint()
        self.view.changed = False
        try:
            await self._publisher.publish(
                "",
                self._topology.health_stream,
                encode_checkpoint(checkpoint),
                message_type=CHECKPOINT_KIND,
                content_encoding=CHECKPOINT_ENCODING,
            )
        except PublishFailed as error:
            self.view.changed = True
            log.warning("health.checkpoint_failed", error=str(error))
            return
        log.debug(
            "health.checkpointed",
            offset=checkpoint.delivery_log_offset,
            webhooks=len(checkpoint.webhooks),
        )
