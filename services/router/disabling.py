"""Disabling a webhook whose endpoint has failed for too long, and telling its owners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from schemas.health import WebhookHealth
from schemas.mail import FailureNotice
from schemas.topology import Topology
from schemas.webhooks import WebhookDisabled, WebhookState
from services.router.metrics import RouterMetrics
from services.runtime.broker import Publisher, PublishFailed
from services.runtime.webhook_log import WebhookLog

log = structlog.get_logger(__name__)


def disable_reason(health: WebhookHealth) -> str:
    """Why a webhook was disabled, as its owners and the API see it."""
    since = health.failing_since.strftime("%Y-%m-%d %H:%M:%SZ") if health.failing_since else "?"
    reason = f"failed continuously since {since} ({health.consecutive_failures} attempts in a row)"
    if health.last_error:
        reason += f"; last error: {health.last_error}"
    return reason


class AutoDisabler:
    """Appends `webhook.disabled` for a webhook the health view found failing too long."""

    def __init__(
        self,
        webhook_log: WebhookLog,
        publisher: Publisher,
        topology: Topology,
        metrics: RouterMetrics,
    ) -> None:
        self._webhook_log = webhook_log
        self._publisher = publisher
        self._topology = topology
        self._metrics = metrics
        self._disabling: dict[str, asyncio.Task[None]] = {}

    def __call__(self, webhook: WebhookState, health: WebhookHealth) -> None:
        if webhook.id in self._disabling:
            return
        task = asyncio.create_task(self._disable(webhook, health))
        self._disabling[webhook.id] = task
        task.add_done_callback(lambda _: self._disabling.pop(webhook.id, None))

    async def _disable(self, webhook: WebhookState, health: WebhookHealth) -> None:
        now = datetime.now(UTC)
        reason = disable_reason(health)
        try:
            # The notice first: if the record then fails, the next failure tries again, and a
            # repeated notice is merged into the same digest.
            if webhook.mail_exceptions_to:
                notice = FailureNotice(
                    kind="disabled", webhook_id=webhook.id, at=now, reason=reason
                )
                await self._publisher.publish(
                    "",
                    self._topology.mail_queue,
                    notice.model_dump_json(exclude_none=True).encode(),
                )
            await self._webhook_log.publish(
                WebhookDisabled(at=now, webhook_id=webhook.id, reason=reason)
            )
        except PublishFailed as error:
            log.warning("webhook.disable_failed", webhook_id=webhook.id, error=str(error))
            return
        self._metrics.webhooks_auto_disabled.inc()
        log.warning("webhook.auto_disabled", webhook_id=webhook.id, reason=reason)

    async def stop(self) -> None:
        for task in list(self._disabling.values()):
            task.cancel()
        await asyncio.gather(*self._disabling.values(), return_exceptions=True)
