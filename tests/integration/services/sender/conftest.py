"""What the sender's integration tests share: settings of a test's own install, an upstream that
plays the router's part (webhooks in the stream, events and deliveries on the queues), and
senders in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp.test_utils import TestClient

from schemas.deliveries import DeliveryAttempted, DeliveryTask, delivery_id_for
from schemas.events import Event
from schemas.topology import DELIVER_KEY
from schemas.webhooks import (
    WebhookCreated,
    WebhookDeleted,
    WebhookState,
    WebhookUpdated,
    new_secret,
)
from services.runtime.broker import Publisher, declare_topology
from services.runtime.webhook_log import WebhookLog
from services.sender.app import create_app
from services.sender.settings import SenderSettings
from tests.conftest import AppServer, Installs
from tests.support.broker import read_attempts

SenderFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@dataclass
class Upstream:
    """Plays the router: writes webhooks to the stream and queues deliveries."""

    settings: SenderSettings
    connection: AbstractRobustConnection
    publisher: Publisher
    log: WebhookLog
    events: int = 0

    async def webhook(self, uri: str, event: str = "a.b", **fields: Any) -> WebhookState:
        record = WebhookCreated(
            at=datetime.now(UTC),
            webhook_id=f"wh_{len(self.log.table.webhooks)}_{uri[-6:]}",
            name="n",
            event=event,
            uri=uri,
            secret=new_secret(),
            **fields,
        )
        await self.log.append(record)
        state = self.log.table.get(record.webhook_id)
        assert state is not None
        return state

    async def change(self, webhook: WebhookState, **changes: Any) -> WebhookState:
        await self.log.append(
            WebhookUpdated(at=datetime.now(UTC), webhook_id=webhook.id, changes=changes)
        )
        state = self.log.table.get(webhook.id)
        assert state is not None
        return state

    async def delete(self, webhook: WebhookState) -> None:
        await self.log.append(WebhookDeleted(at=datetime.now(UTC), webhook_id=webhook.id))

    async def deliver(
        self,
        webhook: WebhookState,
        *,
        test: bool = False,
        revision: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> DeliveryTask:
        self.events += 1
        event = Event(
            id=f"evt_{self.events}",
            type="a.b",
            data=data or {"n": self.events},
            time=datetime.now(UTC),
            object_id=self.events,
        )
        task = DeliveryTask(
            delivery_id=delivery_id_for(event.id, webhook.id),
            webhook_id=webhook.id,
            webhook_revision=webhook.revision if revision is None else revision,
            event=event,
            test=test,
        )
        await self.send(task)
        return task

    async def send(self, task: DeliveryTask, *, headers: dict[str, Any] | None = None) -> None:
        """Put a delivery message on the deliver queue, as a router or a retry tier would."""
        await self.publisher.publish(
            self.settings.topology.deliveries_exchange,
            DELIVER_KEY,
            task.model_dump_json().encode(),
            message_id=task.delivery_id,
            headers=headers,
        )

    async def publish_event(self, body: dict[str, Any], *, routing_key: str | None = None) -> None:
        """A plain AMQP publish of an event, as an upstream system without the SDK makes it."""
        await self.publisher.publish(
            self.settings.topology.events_exchange,
            routing_key or body["type"],
            json.dumps(body).encode(),
        )

    async def outcomes(self, count: int) -> list[DeliveryAttempted]:
        return await read_attempts(
            self.settings.amqp_url.get_secret_value(),
            self.settings.topology.delivery_log_stream,
            expect=count,
        )


@pytest.fixture
def settings(amqp_url: str, prefix: str, installs: Installs) -> SenderSettings:
    settings = SenderSettings(
        amqp_url=amqp_url,
        prefix=prefix,
        retry_schedule=(0.3, 0.3),
        attempt_timeout_s=1.0,
        allowed_targets="127.0.0.0/8",
        concurrency=16,
    )
    installs.add(settings.topology)
    return settings


@pytest.fixture
async def upstream(settings: SenderSettings, amqp_url: str) -> AsyncIterator[Upstream]:
    connection = await aio_pika.connect_robust(amqp_url)
    await declare_topology(connection, settings.topology)
    publisher = await Publisher.open(connection, timeout_s=5)
    log = WebhookLog(connection, publisher, settings.topology)
    await log.start("test-upstream")
    yield Upstream(settings, connection, publisher, log)
    await log.stop()
    await publisher.close()
    await connection.close()


@pytest.fixture
def start_sender(
    settings: SenderSettings, serve_app: AppServer, installs: Installs
) -> SenderFactory:
    """Starts senders with the test's settings, changed by keyword; all stop after the test, and
    the queues their settings declare are deleted."""

    def start(**overrides: Any) -> Awaitable[TestClient[Any, Any]]:
        changed = settings.model_copy(update=overrides)
        installs.add(changed.topology)
        return serve_app(create_app(changed))

    return start


@pytest.fixture
async def sender(start_sender: SenderFactory) -> TestClient[Any, Any]:
    return await start_sender()
