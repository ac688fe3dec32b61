"""What the runtime's integration tests share: a robust connection, a confirming publisher and a
declared install of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from schemas.topology import Topology
from services.runtime.broker import Publisher, declare_topology
from tests.conftest import Installs

Broker = tuple[AbstractRobustConnection, Publisher, Topology]


@pytest.fixture
async def broker(amqp_url: str, installs: Installs, prefix: str) -> AsyncIterator[Broker]:
    """A connection, a publisher and the topology of this test's install (deleted after)."""
    topology = installs.add(Topology(prefix))
    connection = await aio_pika.connect_robust(amqp_url)
    await declare_topology(connection, topology)
    publisher = await Publisher.open(connection, timeout_s=5)
    yield connection, publisher, topology
    await publisher.close()
    await connection.close()
