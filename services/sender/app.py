"""The sender's aiohttp application: /metrics and health, the route queue's consumer (matching each
event to its webhooks), and the deliver queue's consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from prometheus_client import CollectorRegistry

from schemas.events import EVENT_IDS_HEADER, EVENTS_KIND
from schemas.topology import CATALOG_HEADER
from services.runtime.broker import (
    Publisher,
    connect,
    declare_topology,
    is_connected,
    redeclare_on_reconnect,
)
from services.runtime.consuming import MessageHandler, WorkConsumer
from services.runtime.pausing import StreamStateFollower
from services.runtime.record_batches import RecordBatches
from services.runtime.server import READINESS, base_app
from services.runtime.webhook_log import WebhookLog
from services.sender.circuits import CircuitReports
from services.sender.dispatch import Dispatcher
from services.sender.endpoints import EndpointGate
from services.sender.fanout import FanOut
from services.sender.jwt_body import PolicyTokens
from services.sender.metrics import SenderMetrics
from services.sender.routing import RoutingIndex
from services.sender.settings import SenderSettings
from services.sender.settled import SettledLog
from services.sender.targets import GuardedResolver


def create_app(
    settings: SenderSettings, *, resolver: AbstractResolver | None = None
) -> web.Application:
    """The sender; `resolver` answers its DNS questions (the system's by default), filtered by
    the target policy."""
    registry = CollectorRegistry()
    circuits = CircuitReports(settings.topology.delivery_log_stream)
    gate = EndpointGate(
        limit=settings.endpoint_concurrency,
        fast_limit=settings.fast_endpoint_concurrency,
        failures_to_open=settings.circuit_failures,
        open_s=settings.circuit_open_s,
        max_open_s=settings.circuit_max_open_s,
        on_circuit=circuits.changed,
    )
    metrics = SenderMetrics(registry, lambda: gate.open_circuits)
    app = base_app(registry)
    catalog = settings.event_catalog()

    async def run(app: web.Application) -> AsyncIterator[None]:
        topology = settings.topology
        policy = settings.target_policy
        connection = await connect(settings, "sender")
        await declare_topology(connection, topology)
        redeclare_on_reconnect(connection, topology)
        publisher = await Publisher.open(connection, settings.publish_timeout_s)
        pauser = StreamStateFollower()
        webhook_log = WebhookLog(
            connection, publisher, topology, on_lost=pauser.lost, on_current=pauser.current
        )
        settled = SettledLog(
            connection,
            publisher,
            topology,
            capacity=settings.settled_capacity,
            lookback_s=settings.settled_lookback_s,
        )
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.concurrency,
                resolver=GuardedResolver(policy, resolver),
                ttl_dns_cache=60,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),  # subscribers must not be able to set state
            auto_decompress=False,
        )
        dispatcher = Dispatcher(
            publisher=publisher,
            records=RecordBatches(
                publisher,
                topology.delivery_log_stream,
                on_batch=metrics.log_batch_records.observe,
                gather_s=settings.record_gather_s,
            ),
            topology=topology,
            webhook_log=webhook_log,
            settled=settled,
            gate=gate,
            session=session,
            policy=policy,
            metrics=metrics,
            schedule_s=settings.retry_schedule,
            attempt_timeout_s=settings.attempt_timeout_s,
            table_wait_s=settings.table_wait_s,
            hold_s=settings.hold_s,
            first_attempt_max_s=settings.first_attempt_max_s,
            tokens=PolicyTokens(webhook_log.table.policies, issuer=settings.jwt_issuer),
        )

        def work_consumer(
            queue: str, handler: MessageHandler, prefetch: int, label: str
        ) -> WorkConsumer:
            return WorkConsumer(
                connection,
                publisher,
                queue,
                topology.queues()[queue],
                handler,
                prefetch=prefetch,
                quarantine_queue=topology.quarantine_queue,
                metrics=metrics.consumer,
                label=label,
                hold_s=settings.hold_s,
            )

        consumer = work_consumer(
            topology.deliver_queue, dispatcher.handle, settings.concurrency, "deliver"
        )
        index = RoutingIndex()
        webhook_log.table.on_change(index.apply)
        # The events it routes, batched; marked checked against the catalog as they were here.
        events_log = RecordBatches(
            publisher,
            topology.events_stream,
            kind=EVENTS_KIND,
            ids_header=EVENT_IDS_HEADER,
            headers={CATALOG_HEADER: catalog.digest} if catalog.checks else None,
            gather_s=settings.record_gather_s,
        )
        fan_out = FanOut(
            publisher,
            events_log,
            topology,
            index,
            metrics,
            lambda timeout_s: webhook_log.current(timeout_s),
            dedupe_window=settings.dedupe_window,
            max_event_bytes=settings.max_event_bytes,
            hold_s=settings.hold_s,
            first_attempt=dispatcher.first_attempt,
            first_attempt_fanout=settings.first_attempt_fanout,
            first_attempt_slots=max(1, settings.route_prefetch // 2),
            first_attempt_max_s=settings.first_attempt_max_s,
            catalog=catalog,
        )
        route_consumer = work_consumer(
            topology.route_queue, fan_out.handle, settings.route_prefetch, "route"
        )
        pauser.consumers += [consumer, route_consumer]
        app[READINESS]["broker"] = lambda: is_connected(connection)
        app[READINESS]["webhooks_synced"] = lambda: webhook_log.synced
        app[READINESS]["consuming"] = lambda: consumer.consuming and route_consumer.consuming
        try:
            circuits.start(publisher)
            await settled.start("sender")
            await webhook_log.start("sender")
            await consumer.start()
            # Only once the table is current: never route on a stale one.
            await route_consumer.start()
            yield
        finally:
            # In-flight attempts may finish (each bounded by its deadline); the rest returns.
            await route_consumer.stop(grace_s=settings.attempt_timeout_s + 5)
            await consumer.stop(grace_s=settings.attempt_timeout_s + 5)
            await pauser.close()
            await session.close()
            await webhook_log.stop()
            await settled.stop()
            await dispatcher.close()
            await events_log.close()
            await circuits.stop()
            await publisher.close()
            await connection.close()

    app.cleanup_ctx.append(run)
    return app
