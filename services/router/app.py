"""The router's aiohttp application: the webhooks API, fed by the webhooks stream, and the fan-out
consumer of the route queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.router import api
from services.router.delivery_log import DeliveryLogView
from services.router.fanout import FanOut
from services.router.metrics import RouterMetrics
from services.router.routing import RoutingIndex
from services.router.settings import RouterSettings
from services.router.state import ROUTER, Router
from services.runtime.broker import (
    Publisher,
    connect,
    declare_topology,
    is_connected,
    redeclare_on_reconnect,
)
from services.runtime.consuming import WorkConsumer
from services.runtime.http_errors import bearer_auth
from services.runtime.server import READINESS, base_app
from services.runtime.streams import StreamReader
from services.runtime.webhook_log import WebhookLog

# Descriptions may be 64 KiB; leave room for the rest of the webhook.
MAX_BODY_BYTES = 256 * 1024
# How long a stopping router lets in-flight fan-outs finish before returning them to the queue.
STOP_GRACE_S = 10.0


def create_app(settings: RouterSettings) -> web.Application:
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    app = base_app(registry, client_max_size=MAX_BODY_BYTES)
    app.middlewares.append(
        bearer_auth(
            settings.admin_token.get_secret_value(), lambda path: path.startswith("/webhooks")
        )
    )
    api.add_routes(app)

    async def run(app: web.Application) -> AsyncIterator[None]:
        topology = settings.topology
        connection = await connect(settings, "router")
        await declare_topology(connection, topology)
        redeclare_on_reconnect(connection, topology)
        publisher = await Publisher.open(connection, settings.publish_timeout_s)
        router = Router(
            topology=topology,
            metrics=metrics,
            connection=connection,
            publisher=publisher,
            webhook_log=WebhookLog(connection, publisher, topology),
            delivery_log=DeliveryLogView(),
            index=RoutingIndex(),
        )
        app[ROUTER] = router
        app[READINESS]["broker"] = lambda: is_connected(connection)
        app[READINESS]["webhooks_synced"] = lambda: router.webhook_log.synced
        router.webhook_log.table.on_change(router.on_webhook_change)
        delivery_log_reader = StreamReader(
            connection,
            topology.delivery_log_stream,
            topology.queues()[topology.delivery_log_stream],
            router.delivery_log.apply_bytes,
        )
        fan_out = FanOut(
            publisher,
            topology,
            router.index,
            metrics,
            router.webhook_log.current,
            dedupe_window=settings.dedupe_window,
            max_event_bytes=settings.max_event_bytes,
        )
        consumer = WorkConsumer(
            connection,
            topology.route_queue,
            topology.queues()[topology.route_queue],
            fan_out.handle,
            prefetch=settings.prefetch,
        )
        app[READINESS]["consuming"] = lambda: consumer.consuming
        try:
            await delivery_log_reader.start()
            await router.webhook_log.start("router")
            await consumer.start()  # only once the table is current: never route on a stale one
            yield
        finally:
            await consumer.stop(STOP_GRACE_S)
            await delivery_log_reader.stop()
            await router.webhook_log.stop()
            await publisher.close()
            await connection.close()

    app.cleanup_ctx.append(run)
    return app
