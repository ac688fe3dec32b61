"""No request goes where it may not: a canary listening on 127.0.0.2 (only 127.0.0.1 is allowed)
counts every connection made to it while webhooks aimed at it are delivered, in every spelling of
its address, through names that resolve to it, and through redirects."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from services.sender.app import create_app
from services.sender.settings import SenderSettings
from tests.conftest import AppServer
from tests.integration.services.sender.conftest import Upstream

pytestmark = pytest.mark.integration

CANARY_HOST = "127.0.0.2"


class Canary:
    """A TCP listener that counts connections and answers nothing."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    canary = Canary()
    server = await asyncio.start_server(canary._accept, CANARY_HOST, 0)
    canary.port = server.sockets[0].getsockname()[1]
    async with server:
        # The canary counts: a connection made on purpose is seen.
        _reader, writer = await asyncio.open_connection(CANARY_HOST, canary.port)
        writer.close()
        for _ in range(100):
            if canary.connections:
                break
            await asyncio.sleep(0.01)
        assert canary.connections == 1
        canary.connections = 0
        yield canary


class StubResolver(AbstractResolver):
    """Answers each name with its list of answers, one per question (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        answers = self.answers.get(host)
        if not answers:
            raise OSError(f"{host}: no such name")
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in addresses
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def redirector(canary: Canary) -> AsyncIterator[str]:
    """An allowed endpoint (127.0.0.1) that answers each `/<status>` with a redirect to the
    canary."""

    async def redirect(request: web.Request) -> web.Response:
        status = int(request.match_info["status"])
        location = f"http://{CANARY_HOST}:{canary.port}/landed"
        return web.Response(status=status, headers={"Location": location})

    app = web.Application()
    app.router.add_post("/{status}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_nothing_reaches_a_target_that_is_not_allowed(
    settings: SenderSettings,
    serve_app: AppServer,
    upstream: Upstream,
    canary: Canary,
    redirector: str,
) -> None:
    port = canary.port
    resolver = StubResolver(
        {
            "private.test": [[CANARY_HOST]],
            # Allowed when first looked up (as a check at create would see it), the canary when
            # the connection is made.
            "rebind.test": [["127.0.0.1"], [CANARY_HOST]],
            "mixed.test": [[CANARY_HOST, "::ffff:127.0.0.2"]],
        }
    )
    assert (await resolver.resolve("rebind.test"))[0]["host"] == "127.0.0.1"
    only_loopback_one = settings.model_copy(update={"allowed_targets": "127.0.0.1/32"})
    await serve_app(create_app(only_loopback_one, resolver=resolver))
    redirects = [f"{redirector}/{status}" for status in (301, 302, 303, 307, 308)]
    targets = [
        f"http://{CANARY_HOST}:{port}/",
        f"http://[::ffff:127.0.0.2]:{port}/",
        f"http://[::ffff:7f00:2]:{port}/",
        f"http://[64:ff9b::7f00:2]:{port}/",
        f"http://0x7f000002:{port}/",
        f"http://0x7f.0.0.2:{port}/",
        f"http://2130706434:{port}/",
        f"http://127.2:{port}/",
        f"http://0177.0.0.2:{port}/",
        f"http://017700000002:{port}/",
        f"http://%31%32%37.0.0.2:{port}/",
        f"http://127.0.0.1:{port}\\@127.0.0.2:{port}/",
        f"http://127.0.0.1:{port}@127.0.0.2:{port}/",
        f"http://private.test:{port}/",
        f"http://rebind.test:{port}/",
        f"http://mixed.test:{port}/",
        *redirects,
    ]
    for n, uri in enumerate(targets):
        await upstream.webhook(uri, event=f"canary.t{n}")
        await upstream.publish_event({"type": f"canary.t{n}", "id": f"evt_canary_{n}", "data": {}})
    # Every delivery ends: refused at once, or (a redirect) failed, retried twice, dead-lettered.
    records = await upstream.outcomes(len(targets) + 2 * len(redirects))
    finished = {r.event_id for r in records if r.outcome == "dead_lettered"}
    assert finished == {f"evt_canary_{n}" for n in range(len(targets))}
    assert "rebind.test" in resolver.asked
    assert canary.connections == 0
