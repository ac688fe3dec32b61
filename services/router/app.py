"""The router's aiohttp application: the webhooks API, fed by the webhooks stream; endpoint health
with auto-disable; failure mail; and the queues' depths for /metrics. (Events are routed by the
senders, next to their delivery.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.router import (
    api,
    dead_letters_api,
    event_types_api,
    history_api,
    policies_api,
    quarantine_api,
    replay_api,
    ui,
)
from services.router.disabling import AutoDisabler
from services.router.health import HealthProjection, HealthView
from services.router.history import HistoryProjection
from services.router.history_store import HistoryStore
from services.router.mail import MailDigests
from services.router.metrics import RouterMetrics
from services.router.openapi import router_document
from services.router.queue_depths import BrokerProbe, QueueDepthPoller
from services.router.queue_passes import QueuePasses
from services.router.replay import Replays
from services.router.settings import RouterSettings
from services.router.smtp import Mailer, SmtpServer
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
from services.runtime.openapi import add_openapi_route
from services.runtime.server import READINESS, base_app
from services.runtime.webhook_log import WebhookLog

# Descriptions may be 64 KiB; leave room for the rest of the webhook.
MAX_BODY_BYTES = 256 * 1024
# What the admin tokens guard (the operational routes, /openapi.json and the operator page's
# static files are open: the page asks for a token and sends it with each API call).
PROTECTED_PATHS = (
    "/webhooks",
    "/webhook_policies",
    "/deliveries",
    "/dead-letters",
    "/quarantine",
    "/replays",
    "/stats",
    "/event-types",
)
# Notices a mail consumer holds unacked while their digests gather.
MAIL_PREFETCH = 1000


def create_app(settings: RouterSettings) -> web.Application:
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    app = base_app(registry, client_max_size=MAX_BODY_BYTES)
    app.middlewares.append(
        bearer_auth(
            settings.admin_tokens,
            lambda path: path.startswith(PROTECTED_PATHS),
            scoped=settings.scoped_tokens,
        )
    )
    catalog = settings.event_catalog()
    api.add_routes(app)
    policies_api.add_routes(app)
    event_types_api.add_routes(app, catalog)
    history_api.add_routes(app)
    dead_letters_api.add_routes(app)
    quarantine_api.add_routes(app)
    replay_api.add_routes(app)
    ui.add_routes(app)
    add_openapi_route(app, router_document())

    async def run(app: web.Application) -> AsyncIterator[None]:
        topology = settings.topology
        connection = await connect(settings, "router")
        await declare_topology(connection, topology, retire=True)
        redeclare_on_reconnect(connection, topology, retire=True)
        publisher = await Publisher.open(connection, settings.publish_timeout_s)
        webhook_log = WebhookLog(connection, publisher, topology)
        disabler = AutoDisabler(webhook_log, publisher, topology, metrics)
        health = HealthView(
            webhook_log.table,
            disable_after_s=settings.disable_after_s,
            disable_after_failures=settings.disable_after_failures,
            on_failing_too_long=disabler,
        )
        metrics.health_offset.set_function(lambda: health.offset)
        projection = HealthProjection(
            connection, publisher, topology, health, checkpoint_s=settings.health_checkpoint_s
        )
        history_store = await HistoryStore.open(settings.history_file, topology.delivery_log_stream)
        history = HistoryProjection(
            connection,
            publisher,
            topology,
            history_store,
            retention_s=settings.history_retention_s,
        )
        app[history_api.HISTORY] = history
        redrives = QueuePasses(connection, topology.dead_queue, "rdr")
        app[dead_letters_api.REDRIVES] = redrives
        quarantine_passes = QueuePasses(connection, topology.quarantine_queue, "qp")
        app[quarantine_api.QUARANTINE_PASSES] = quarantine_passes
        replays = Replays(connection, publisher, topology, history_store, catalog=catalog)
        app[replay_api.REPLAYS] = replays
        router = Router(
            topology=topology,
            metrics=metrics,
            connection=connection,
            publisher=publisher,
            webhook_log=webhook_log,
            health=health,
            target_policy=settings.target_policy,
            secret_grace=timedelta(seconds=settings.secret_grace_s),
        )
        app[ROUTER] = router
        app[READINESS]["broker"] = lambda: is_connected(connection)
        app[READINESS]["webhooks_synced"] = lambda: webhook_log.synced
        webhook_log.table.on_change(router.on_webhook_change)
        smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else ""
        mailer = Mailer(SmtpServer.from_url(smtp_url), settings.mail_from) if smtp_url else None
        digests = MailDigests(
            mailer,
            webhook_log.table,
            metrics,
            digest_s=settings.mail_digest_s,
            gather_s=settings.mail_gather_s,
        )
        mail_consumer = WorkConsumer(
            connection,
            publisher,
            topology.mail_queue,
            topology.queues()[topology.mail_queue],
            digests.handle,
            prefetch=MAIL_PREFETCH,
            quarantine_queue=topology.quarantine_queue,
            metrics=metrics.consumer,
            label="mail",
            hold_s=settings.hold_s,
        )
        app[READINESS]["consuming"] = lambda: mail_consumer.consuming
        queue_depths = QueueDepthPoller(
            BrokerProbe(connection),
            topology.work_queues(),
            metrics.queues,
            interval_s=settings.queue_metrics_s,
        )
        try:
            await webhook_log.start("router")
            await projection.start()  # the checkpoint now, the delivery log in the background
            await history.start()  # on from where the store stopped, in the background
            await mail_consumer.start()
            await queue_depths.start()
            yield
        finally:
            await queue_depths.stop()
            await mail_consumer.stop(grace_s=1.0)
            await digests.stop()
            await disabler.stop()
            await projection.stop()
            await redrives.stop()
            await quarantine_passes.stop()
            await replays.stop()
            await history.stop()
            await history_store.close()
            await webhook_log.stop()
            await publisher.close()
            await connection.close()

    app.cleanup_ctx.append(run)
    return app
