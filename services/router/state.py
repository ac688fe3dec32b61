"""What the router's handlers share while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from schemas.targets import TargetPolicy
from schemas.topology import Topology
from schemas.webhooks import WebhookState
from services.router.health import HealthView
from services.router.metrics import RouterMetrics
from services.runtime.broker import Publisher
from services.runtime.webhook_log import WebhookLog


@dataclass
class Router:
    topology: Topology
    metrics: RouterMetrics
    connection: AbstractRobustConnection
    publisher: Publisher
    webhook_log: WebhookLog
    health: HealthView
    # Where webhooks may send: refused targets are answered 422 at create and update.
    target_policy: TargetPolicy
    # How long a rotated-out secret keeps signing beside the new one.
    secret_grace: timedelta
    # Ids of the disabled webhooks, so the gauge costs nothing per change.
    disabled: set[str] = field(default_factory=set)
    # Every webhook newest first, as of a version of the table (its dict and offset): sorted once
    # per change, not once per page asked for.
    _newest_first: tuple[tuple[int, int], list[WebhookState]] | None = None

    def newest_first(self) -> list[WebhookState]:
        table = self.webhook_log.table
        version = (id(table.webhooks), table.offset)
        if self._newest_first is None or self._newest_first[0] != version:
            ordered = sorted(
                table.webhooks.values(),
                key=lambda state: (state.created_at, state.id),
                reverse=True,
            )
            self._newest_first = (version, ordered)
        return self._newest_first[1]

    def __post_init__(self) -> None:
        # Read when scraped.
        self.metrics.webhooks.labels(state="enabled").set_function(
            lambda: len(self.webhook_log.table.webhooks) - len(self.disabled)
        )
        self.metrics.webhooks.labels(state="disabled").set_function(lambda: len(self.disabled))

    def on_webhook_change(self, webhook_id: str, state: WebhookState | None) -> None:
        """Keep the health view and the set of disabled webhooks in step with the table."""
        self.health.on_webhook_change(webhook_id, state)
        if state is not None and state.disabled:
            self.disabled.add(webhook_id)
        else:
            self.disabled.discard(webhook_id)


ROUTER = web.AppKey("router", Router)
