"""A real HTTP receiver for tests: records every request and answers from a per-path script."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
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

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers 200 unless a path was given a script of statuses (or delays) to answer with."""

    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    always: dict[str, int] = field(default_factory=dict)
    delays_s: dict[str, float] = field(default_factory=dict)
    url: str = ""
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    def script(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` with these statuses, then 200."""
        self.scripts[path].extend(statuses)

    def to(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        loop = asyncio.get_running_loop()
        received = Received(
            path=request.path,
            method=request.method,
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
            at=loop.time(),
        )
        async with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
        delay_s = self.delays_s.get(request.path)
        if delay_s:
            await asyncio.sleep(delay_s)
        script = self.scripts.get(request.path)
        status = script.popleft() if script else self.always.get(request.path, 200)
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
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
