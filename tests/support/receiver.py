"""A real HTTP receiver for tests: records every request and answers from a per-path script."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float
    # The status this request was (or, if the caller hung up meanwhile, would have been) answered.
    status: int = 200
    # The query string as it came, still percent-encoded (what a GET delivery signs).
    query: str = ""
    scheme: str = "http"

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers 200 unless a path was given a script of statuses (or delays) to answer with.

    The answer is chosen when a request arrives, before its path's delay: scripts follow the
    order requests come in. `fail_first` makes a path answer 500 to the first N requests of each
    delivery (told apart by their `webhook-id` header). `down()` refuses connections (and cuts
    those open) until `up()` listens again on the same port.
    """

    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    always: dict[str, int] = field(default_factory=dict)
    delays_s: dict[str, float] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)
    url: str = ""
    # Serve https with this context (its certificate for 127.0.0.1) instead of http.
    ssl_context: ssl.SSLContext | None = None
    _seen: Counter[str] = field(default_factory=Counter)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    _port: int = 0
    # The connections requests came on: what a graceful stop leaves open is cut.
    _transports: set[asyncio.Transport] = field(default_factory=set)

    def script(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` with these statuses, then 200."""
        self.scripts[path].extend(statuses)

    def to(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    def _status_for(self, path: str, delivery_id: str) -> int:
        self._seen[delivery_id] += 1
        if self._seen[delivery_id] <= self.fail_first.get(path, 0):
            return 500
        script = self.scripts.get(path)
        return script.popleft() if script else self.always.get(path, 200)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            self._transports.add(request.transport)
        body = await request.read()
        loop = asyncio.get_running_loop()
        headers = {key.lower(): value for key, value in request.headers.items()}
        status = self._status_for(request.path, headers.get("webhook-id", ""))
        received = Received(
            path=request.path,
            method=request.method,
            headers=headers,
            body=body,
            at=loop.time(),
            status=status,
            query=request.rel_url.raw_query_string,
            scheme=request.scheme,
        )
        async with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
        delay_s = self.delays_s.get(request.path)
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    async def wait_for(
        self, count: int, *, path: str | None = None, timeout_s: float = 20
    ) -> list[Received]:
        """Wait until at least `count` requests (to `path`, if given) have arrived."""

        def seen() -> list[Received]:
            return self.requests if path is None else self.to(path)

        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(seen()) >= count)
        return seen()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, ssl_context=self.ssl_context)
        await site.start()
        self._port = self._runner.addresses[0][1]
        scheme = "http" if self.ssl_context is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self._port}"

    async def down(self) -> None:
        """Stop listening and cut open connections: callers get `connection refused`."""
        await self.stop()
        self._runner = None

    async def up(self) -> None:
        """Listen again on the same port after `down()`."""
        await self.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # A TLS connection's close waits for the peer's close_notify; a sender that keeps its
        # connection open never sends it before the test's loop ends, and the socket is then
        # collected unclosed (a ResourceWarning, an error under this suite's filters).
        for transport in self._transports:
            transport.abort()
        self._transports.clear()
