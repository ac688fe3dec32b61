"""Fixtures the end-to-end modules share: an HTTP client and a recording receiver, one each per
module (each module runs on its own event loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from tests.support.receiver import Receiver


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP server on loopback that records what it gets."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()
