"""The producer's aiohttp application: POST /events in front of the SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.producer.ingest import PRODUCER, Ingest
from services.producer.metrics import ProducerMetrics
from services.producer.openapi import producer_document
from services.producer.sdk import Producer
from services.producer.settings import ProducerSettings
from services.runtime.broker import (
    connect,
    declare_topology,
    is_connected,
    redeclare_on_reconnect,
)
from services.runtime.http_errors import bearer_auth
from services.runtime.openapi import add_openapi_route
from services.runtime.server import READINESS, base_app


def create_app(settings: ProducerSettings) -> web.Application:
    registry = CollectorRegistry()
    metrics = ProducerMetrics(registry)
    app = base_app(registry, client_max_size=settings.max_body_bytes)
    catalog = settings.event_catalog()
    app.middlewares.append(bearer_auth(settings.ingest_tokens, lambda path: path == "/events"))
    ingest = Ingest(
        metrics,
        max_batch=settings.max_batch,
        max_body_bytes=settings.max_body_bytes,
        connected=lambda: all(check() for check in app[READINESS].values()),
    )
    app.router.add_post("/events", ingest.post_events)
    add_openapi_route(app, producer_document(max_batch=settings.max_batch))

    async def run(app: web.Application) -> AsyncIterator[None]:
        connection = await connect(settings, "producer")
        await declare_topology(connection, settings.topology, retire=True)
        redeclare_on_reconnect(connection, settings.topology, retire=True)
        app[READINESS]["broker"] = lambda: is_connected(connection)
        try:
            async with Producer(
                prefix=settings.prefix,
                timeout_s=settings.publish_timeout_s,
                connection=connection,
                catalog=catalog,
            ) as producer:
                app[PRODUCER] = producer
                yield
        finally:
            await connection.close()

    app.cleanup_ctx.append(run)
    return app
