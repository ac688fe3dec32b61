"""Making one call against a real HTTP server on loopback, and saying what came of it."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from schemas.targets import TargetPolicy, parse_networks
from services.sender.calling import CallResult, call, describe_status
from services.sender.request import PreparedRequest
from services.sender.targets import GuardedResolver
from tests.support.hostile import HostileReceiver, MiB

LOOPBACK = TargetPolicy(parse_networks("127.0.0.0/8"))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Target:
    """A loopback HTTP server whose handler a test sets, counting the requests it gets."""

    def __init__(self) -> None:
        self.handler: Handler = self._ok
        self.requests: list[tuple[str, str, bytes]] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.server = TestServer(app)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, await request.read()))
        return await self.handler(request)

    @staticmethod
    async def _ok(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    def url(self, path: str = "/hook") -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    server = Target()
    await server.server.start_server()
    yield server
    await server.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def post(url: str, body: bytes = b'{"k":1}') -> PreparedRequest:
    return PreparedRequest(
        method="POST", url=url, headers={"content-type": "application/json"}, body=body
    )


async def test_a_2xx_succeeds(target: Target, session: aiohttp.ClientSession) -> None:
    """A 200 answer is a success, and the server got the method, path and body."""
    result = await call(session, post(target.url()), 2.0, LOOPBACK)
    assert (result.status_code, result.error, result.succeeded) == (200, None, True)
    assert result.status_class == "2xx"
    assert target.requests == [("POST", "/hook", b'{"k":1}')]
    assert result.duration_s >= 0


async def test_a_404_fails_with_its_status_line(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """A 404 is a failure whose error is `404 Not Found`."""

    async def not_found(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)

    target.handler = not_found
    result = await call(session, post(target.url()), 2.0, LOOPBACK)
    assert (result.status_code, result.error, result.succeeded) == (404, "404 Not Found", False)
    assert result.status_class == "4xx"


async def test_a_5xx_fails_with_the_servers_reason(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """A 503 with a custom reason phrase reports that phrase."""

    async def unavailable(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, reason="Down For Maintenance")

    target.handler = unavailable
    result = await call(session, post(target.url()), 2.0, LOOPBACK)
    assert (result.status_code, result.error) == (503, "503 Down For Maintenance")
    assert result.status_class == "5xx"


async def test_a_slow_answer_times_out(target: Target, session: aiohttp.ClientSession) -> None:
    """A server that answers after the deadline gives `timeout after 0.2s`."""
    release = asyncio.Event()

    async def slow(_request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="too late")

    target.handler = slow
    try:
        result = await call(session, post(target.url()), 0.2, LOOPBACK)
    finally:
        release.set()
    assert (result.status_code, result.error, result.succeeded) == (
        None,
        "timeout after 0.2s",
        False,
    )
    assert result.status_class == "timeout"
    assert 0.2 <= result.duration_s < 1.5


async def test_a_redirect_is_not_followed(target: Target, session: aiohttp.ClientSession) -> None:
    """A 302 is a failure of its own: the sender never follows it."""

    async def redirect(request: web.Request) -> web.StreamResponse:
        if request.path == "/hook":
            raise web.HTTPFound("/elsewhere")
        return web.Response(text="followed")

    target.handler = redirect
    result = await call(session, post(target.url()), 2.0, LOOPBACK)
    assert (result.status_code, result.error, result.succeeded) == (302, "302 Found", False)
    assert [path for _method, path, _body in target.requests] == ["/hook"]


async def test_a_trickling_2xx_body_still_succeeds_within_the_deadline(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """A 200 status line followed by a body that trickles past the deadline is a success."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)  # sends the status line at once
        for _ in range(10):
            await asyncio.sleep(0.5)
            await response.write(b"x")
        await response.write_eof()
        return response

    target.handler = trickle
    result = await call(session, post(target.url()), 0.3, LOOPBACK)
    assert (result.status_code, result.error, result.succeeded) == (200, None, True)
    assert 0.3 <= result.duration_s < 1.5  # the deadline cut the body short


async def test_a_2xx_whose_body_breaks_still_succeeds(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """A 200 whose connection drops before the promised body arrives was still accepted."""

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_length = 100
        await response.prepare(request)
        assert request.transport is not None
        request.transport.close()
        return response

    target.handler = broken
    result = await call(session, post(target.url()), 2.0, LOOPBACK)
    assert (result.status_code, result.error, result.succeeded) == (200, None, True)


async def test_a_trickling_error_body_keeps_its_status_error(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """A 500 whose body stalls past the deadline reports the status, not a timeout."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        for _ in range(10):
            await asyncio.sleep(0.5)
            await response.write(b"x")
        return response

    target.handler = trickle
    result = await call(session, post(target.url()), 0.3, LOOPBACK)
    assert (result.status_code, result.error) == (500, "500 Internal Server Error")
    assert result.status_class == "5xx"


async def test_a_closed_port_is_a_connect_failure(session: aiohttp.ClientSession) -> None:
    """Nothing listening gives `connect failed: connection refused`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await call(session, post(f"http://127.0.0.1:{port}/"), 2.0, LOOPBACK)
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("connect failed: connection refused")
    assert result.status_class == "connect_error"


async def test_a_target_the_policy_refuses_is_never_called(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """A loopback URL under the default policy is refused and no request reaches the server."""
    result = await call(session, post(target.url("/")), 2.0, TargetPolicy())
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("refused:")
    assert result.status_class == "refused"
    assert target.requests == []


async def test_an_http_target_of_an_https_only_webhook_is_refused_uncalled(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """The webhook's `https_only` refuses an http target at the call, as the install's does."""
    request = PreparedRequest(
        method="POST", url=target.url("/"), headers={}, body=b"{}", https_only=True
    )
    result = await call(session, request, 2.0, LOOPBACK)
    assert result.kind == "refused"
    assert result.error == "refused: this webhook takes https targets only"
    assert target.requests == []


async def test_a_get_sends_its_query_and_no_body(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """A GET goes out as a GET with the query as prepared, and without a body."""
    url = target.url("/hook") + "?userId=KXUSR1&isControlled=true"
    request = PreparedRequest(method="GET", url=url, headers={}, body=b"")
    result = await call(session, request, 2.0, LOOPBACK)
    assert result.succeeded
    assert target.requests == [("GET", "/hook", b"")]


class StaticResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1, or fails like DNS when told to."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self.fail:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=family, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


async def test_a_name_resolving_to_a_refused_address_is_never_called(target: Target) -> None:
    """With the guarded resolver, a name that resolves to loopback is refused, not called."""
    resolver = GuardedResolver(TargetPolicy(), StaticResolver())
    url = f"http://hook.example:{target.server.port}/hook"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as client:
        result = await call(client, post(url), 2.0, TargetPolicy())
    assert result.error == "refused: hook.example: 127.0.0.1 is not a public address"
    assert result.status_class == "refused"
    assert target.requests == []


async def test_a_name_that_does_not_resolve_is_a_connect_failure() -> None:
    """A DNS failure is reported as `connect failed: could not resolve host (…)`."""
    connector = aiohttp.TCPConnector(resolver=StaticResolver(fail=True))
    async with aiohttp.ClientSession(connector=connector) as client:
        result = await call(client, post("http://nowhere.example/"), 2.0, TargetPolicy())
    assert result.error == "connect failed: could not resolve host (Name or service not known)"
    assert result.status_class == "connect_error"


@pytest.mark.parametrize("url", ["http://a..b/hook", "http://" + "a" * 64 + ".example/"])
async def test_a_url_the_client_cannot_use_is_a_failed_attempt(
    url: str, session: aiohttp.ClientSession
) -> None:
    """A host that is no valid domain name fails the attempt with a reason; it never crashes."""
    result = await call(session, post(url), 1.0, TargetPolicy())
    assert not result.succeeded
    assert result.error is not None
    assert result.error.startswith(("invalid target:", "request failed:", "connect failed:"))


@pytest.mark.parametrize(
    ("status", "reason", "text"),
    [
        (599, None, "599"),
        (404, None, "404 Not Found"),
        (404, "", "404 Not Found"),
        (500, "Oops", "500 Oops"),
        (201, None, "201 Created"),
    ],
)
def test_describe_status(status: int, reason: str | None, text: str) -> None:
    """A status is shown with the server's reason, or the standard phrase, or alone."""
    assert describe_status(status, reason) == text


@pytest.mark.parametrize(
    ("result", "status_class"),
    [
        (CallResult("answered", 302, "302 Found", 0.1), "3xx"),
        (CallResult("timeout", None, "timeout after 15s", 15.0), "timeout"),
        (
            CallResult("connect_error", None, "connect failed: connection refused", 0.1),
            "connect_error",
        ),
        (CallResult("refused", None, "refused: 10.0.0.1 is not a public address", 0.0), "refused"),
        (CallResult("error", None, "request failed: ServerDisconnectedError", 0.1), "error"),
        (CallResult("invalid_target", None, "invalid target: x", 0.0), "error"),
    ],
)
def test_status_class_is_a_closed_set(result: CallResult, status_class: str) -> None:
    """Each result falls in one metric label: a status class, or the kind of error."""
    assert result.status_class == status_class
    assert not result.succeeded


# --- hostile answers ----------------------------------------------------------------------------


@pytest.fixture
async def hostile() -> AsyncIterator[HostileReceiver]:
    server = HostileReceiver(sleep_s=5, trickle_interval_s=0.2, huge_bytes=8 * MiB)
    await server.start()
    yield server
    await server.stop()


async def hostile_call(server: HostileReceiver, path: str, timeout_s: float = 1.0) -> CallResult:
    async with aiohttp.ClientSession() as client:
        return await call(client, post(f"{server.url}{path}"), timeout_s, LOOPBACK)


async def test_a_reason_that_is_not_utf8_becomes_valid_text(hostile: HostileReceiver) -> None:
    """Bytes that are not UTF-8 in the status line are replaced: the error can be stored as JSON."""
    result = await hostile_call(hostile, "/bad-reason")
    assert result.status_code == 500
    assert result.error == "500 Bad \ufffd\ufffd Reason"
    json.dumps(result.error).encode()  # no lone surrogates left


async def test_an_8kb_reason_is_an_unreadable_response_capped_at_1kib(
    hostile: HostileReceiver,
) -> None:
    """aiohttp refuses an 8 KB status line; the error says so, in at most 1 KiB."""
    result = await hostile_call(hostile, "/long-reason")
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("unreadable response:")
    assert len(result.error.encode()) <= 1024


async def test_a_long_but_parseable_reason_is_capped(hostile: HostileReceiver) -> None:
    """A reason aiohttp accepts (4 KB) is kept only up to 1 KiB."""
    hostile.long_reason_bytes = 4000
    result = await hostile_call(hostile, "/long-reason")
    assert result.status_code == 500
    assert result.error is not None
    assert len(result.error.encode()) <= 1024
    assert result.error.endswith("…")


async def test_retry_after_is_read_on_a_429(hostile: HostileReceiver) -> None:
    """A 429's Retry-After, in seconds or as an HTTP date, is part of the result."""
    hostile.retry_after = "120"
    result = await hostile_call(hostile, "/rate-limited")
    assert (result.status_code, result.retry_after_s) == (429, 120.0)
    hostile.retry_after = "Wed, 21 Oct 2015 07:28:00 GMT"  # in the past: no wait
    assert (await hostile_call(hostile, "/rate-limited")).retry_after_s == 0.0


@pytest.mark.parametrize("path", ["/sleep", "/trickle", "/trickle-head", "/silent", "/endless"])
async def test_hostile_answers_end_by_the_deadline(hostile: HostileReceiver, path: str) -> None:
    """Sleeping, trickling, silent and endless answers all end by the attempt's deadline."""
    started = asyncio.get_running_loop().time()
    result = await hostile_call(hostile, path, timeout_s=0.5)
    assert asyncio.get_running_loop().time() - started < 1.5
    if path in ("/trickle", "/endless"):  # the status line came: it decides
        assert (result.status_code, result.succeeded) == (200, True)
    else:
        assert (result.kind, result.error) == ("timeout", "timeout after 0.5s")
    await hostile.wait_until_closed(timeout_s=2)


async def test_a_huge_body_is_read_only_as_far_as_needed(hostile: HostileReceiver) -> None:
    """Of an 8 MiB answer only the first 64 KiB are read: the connection is dropped."""
    result = await hostile_call(hostile, "/huge")
    assert result.succeeded
    [exchange] = hostile.to("/huge")
    await hostile.wait_until_closed(timeout_s=2)
    assert exchange.bytes_sent < 8 * MiB


async def test_the_start_of_the_body_is_kept_even_when_it_comes_in_pieces(
    target: Target, session: aiohttp.ClientSession
) -> None:
    """The history shows the answer's first 4 KiB: pieces that arrive apart are joined, and what
    follows is not kept."""

    async def in_pieces(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        for piece in (b"a" * 3000, b"b" * 3000):
            await response.write(piece)
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    target.handler = in_pieces
    result = await call(session, post(target.url()), 2.0, LOOPBACK)
    assert result.status_code == 500
    assert result.body == b"a" * 3000 + b"b" * 1096


async def test_a_short_body_is_kept_whole_and_none_is_empty(
    target: Target, session: aiohttp.ClientSession
) -> None:
    result = await call(session, post(target.url()), 2.0, LOOPBACK)
    assert result.body == b"ok"

    async def empty(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    target.handler = empty
    assert (await call(session, post(target.url()), 2.0, LOOPBACK)).body == b""
