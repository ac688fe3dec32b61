"""What the router's integration tests share: its settings on a fresh install, replicas of it
served in-process, and API helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from services.router.app import create_app
from services.router.settings import RouterSettings
from services.router.state import ROUTER, Router
from services.runtime.broker import Publisher
from tests.conftest import AppServer, Installs

AUTH = {"Authorization": "Bearer admin-token"}
RouterFactory = Callable[[], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def settings(amqp_url: str, prefix: str, installs: Installs, tmp_path: Path) -> RouterSettings:
    settings = RouterSettings(
        amqp_url=amqp_url,
        prefix=prefix,
        admin_token="admin-token",
        history_path=str(tmp_path / "history.sqlite3"),
    )
    installs.add(settings.topology)
    return settings


@pytest.fixture
def start_router(settings: RouterSettings, serve_app: AppServer) -> RouterFactory:
    """Starts router replicas on one install; all are stopped after the test."""
    return lambda: serve_app(create_app(settings))


@pytest.fixture
async def router(start_router: RouterFactory) -> TestClient[Any, Any]:
    return await start_router()


def router_state(client: TestClient[Any, Any]) -> Router:
    app = client.app
    assert app is not None
    state: Router = app[ROUTER]
    return state


async def create_webhook(client: TestClient[Any, Any], **fields: Any) -> dict[str, Any]:
    response = await client.post("/webhooks", json=fields, headers=AUTH)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


@pytest.fixture
async def publisher(amqp_url: str) -> AsyncIterator[Publisher]:
    """A confirming publisher on a connection of its own, as upstream systems and senders have."""
    connection = await aio_pika.connect_robust(amqp_url)
    opened = await Publisher.open(connection, timeout_s=5)
    yield opened
    await opened.close()
    await connection.close()
