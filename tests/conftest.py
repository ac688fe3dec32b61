"""Fixtures shared by every suite: the broker, a prefix per test, clean-up, a receiver."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings as hypothesis_settings

from schemas.topology import Topology
from tests.support.broker import delete_install, leftover_queues
from tests.support.receiver import Receiver

# Property tests: no time limit per example (the machine is shared, and no test asserts a time),
# and no example database written into the checkout.
hypothesis_settings.register_profile("hookline", deadline=None, database=None)
hypothesis_settings.load_profile("hookline")

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Every queue this run declares starts with this, so runs never collide and leftovers are found.
RUN_PREFIX = f"hltest-{uuid.uuid4().hex[:8]}"
_numbers = itertools.count(1)
_used_broker = False


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2) as s:
            s.settimeout(2)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1) == b"\x01"
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """The broker the tests use: HOOKLINE_AMQP_URL, the local one, or (only as a fallback where
    no broker answers and a Docker engine runs) a testcontainers RabbitMQ."""
    global _used_broker
    _used_broker = True
    url = os.environ.get("HOOKLINE_AMQP_URL", DEFAULT_AMQP_URL)
    if _answers(url):
        yield url
        return
    if shutil.which("docker") is None:
        pytest.fail(
            f"RabbitMQ does not answer at {url}: run `make broker` or set HOOKLINE_AMQP_URL"
        )
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/"


@pytest.fixture(autouse=True)
def _no_hookline_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the shell that runs the suite."""
    for name in list(os.environ):
        if name.startswith("HOOKLINE_") and name != "HOOKLINE_AMQP_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def prefix() -> str:
    """A prefix of this test's own, inside the run's prefix."""
    return f"{RUN_PREFIX}-{next(_numbers)}"


class Installs:
    """Topologies a test declared; each is deleted after the test."""

    def __init__(self) -> None:
        self.topologies: list[Topology] = []

    def add(self, topology: Topology) -> Topology:
        self.topologies.append(topology)
        return topology


@pytest.fixture
async def installs(amqp_url: str) -> AsyncIterator[Installs]:
    registry = Installs()
    yield registry
    for topology in registry.topologies:
        await delete_install(amqp_url, topology)


Client = TestClient[Any, Any]
AppServer = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def serve_app() -> AsyncIterator[AppServer]:
    """Starts a service's app in-process (its broker consumers too); all stop after the test."""
    clients: list[Client] = []

    async def serve(app: web.Application) -> Client:
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield serve
    for client in clients:
        await client.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP server on loopback that records what it receives."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run leaves no queue behind on the broker (checked where rabbitmqctl is at hand)."""
    if not _used_broker:
        return
    left = leftover_queues(RUN_PREFIX)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"FAILED: queues left behind by this run: {left}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
