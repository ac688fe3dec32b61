"""The HTTP edge every service has (/healthz, /readyz, /metrics) and the process's main loop."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

import structlog
import uvloop
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from pydantic import ValidationError

from services.runtime.http_errors import log_rejections
from services.runtime.logging import configure_logging
from services.runtime.settings import ServiceSettings

log = structlog.get_logger(__name__)

REGISTRY = web.AppKey("registry", CollectorRegistry)
# Named checks that must all say True before the service takes traffic.
READINESS = web.AppKey("readiness", dict[str, Callable[[], bool]])
# The collector's thresholds: a delivery allocates hundreds of short-lived objects (messages,
# models, HTTP requests), and with the default of 700 the young generation was collected every
# few deliveries; 50,000 cut the senders' CPU per delivery enough to raise throughput by about a
# quarter in `make bench` (the young generation stays a few MB).
GC_THRESHOLDS = (50_000, 20, 100)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def base_app(registry: CollectorRegistry, *, client_max_size: int = 1024**2) -> web.Application:
    """An application with the operational routes, whose refused requests are logged; services
    add their routes."""
    # Counters' `*_created` series are noise on a dashboard (and twice the series). The switch is
    # the process's, read at each scrape: it covers every registry, made before or after.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped
    app = web.Application(client_max_size=client_max_size, middlewares=[log_rejections])
    app[REGISTRY] = registry
    app[READINESS] = {}
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    checks = {name: check() for name, check in request.app[READINESS].items()}
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (cleanup contexts in reverse)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    setup = asyncio.create_task(runner.setup())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({setup, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not setup.done():  # asked to stop while still connecting to the broker
        setup.cancel()
        log.info("service.stopped", before="started")
        return
    setup.result()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    log.info("service.started", host=host, port=bound_port, url=f"http://{host}:{bound_port}")
    await stopped
    log.info("service.stopping")
    await runner.cleanup()
    log.info("service.stopped")


def run_service(
    name: str,
    load_settings: Callable[[], SettingsT],
    create_app: Callable[[SettingsT], web.Application],
) -> None:
    """The body of `python -m services.<name>`."""
    try:
        settings = load_settings()
    except ValidationError as error:
        print(f"hookline {name}: invalid settings", file=sys.stderr)
        for problem in error.errors():
            field = "HOOKLINE_" + "_".join(str(part) for part in problem["loc"]).upper()
            print(f"  {field}: {problem['msg']}", file=sys.stderr)
        sys.exit(2)
    configure_logging(name, settings.log_level, settings.log_format)
    gc.set_threshold(*GC_THRESHOLDS)
    loop_factory = uvloop.new_event_loop if settings.event_loop == "uvloop" else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(create_app(settings), settings.host, settings.port))
