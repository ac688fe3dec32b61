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

    def __post_init__(self) -> None:
        # Read when scraped: the index holds exactly the enabled webhooks.
        self.metrics.webhooks.labels(state="enabled").set_function(lambda: len(self.index))
        self.metrics.webhooks.labels(state="disabled").set_function(
            lambda: len(self.webhook_log.table.webhooks) - len(self.index)
        )

    def on_webhook_change(self, webhook_id: str, state: WebhookState | None) -> None:
        """Keep the routing index and the health view in step with the table."""
        self.health.on_webhook_change(webhook_id, state)
        if state is None:
            self.index.remove(webhook_id)
        else:
            self.index.put(state)


ROUTER = web.AppKey("router", Router)
