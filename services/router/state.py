"""What the router's handlers share while it runs."""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from schemas.topology import Topology
from schemas.webhooks import WebhookState
from services.router.health import HealthView
from services.router.metrics import RouterMetrics
from services.router.routing import RoutingIndex
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
    index: RoutingIndex

    def on_webhook_change(self, webhook_id: str, state: WebhookState | None) -> None:
        """Keep the routing index, the health view and the webhook gauge in step with the table."""
        self.health.on_webhook_change(webhook_id, state)
        if state is None:
            self.index.remove(webhook_id)
        else:
            self.index.put(state)
        enabled = len(self.index)  # the index holds exactly the enabled webhooks
        self.metrics.webhooks.labels(state="enabled").set(enabled)
        self.metrics.webhooks.labels(state="disabled").set(
            len(self.webhook_log.table.webhooks) - enabled
        )


ROUTER = web.AppKey("router", Router)
