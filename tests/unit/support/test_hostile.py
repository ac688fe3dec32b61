"""The hostile receiver does what each path says, as aiohttp's client (the sender's) sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.hostile import (
    TRICKLE_CONTENT_LENGTH,
    Ending,
    HostileReceiver,
)

INTERVAL_S = 0.05


@pytest.fixture
async def hostile() -> AsyncIterator[HostileReceiver]:
    server = HostileReceiver(trickle_interval_s=INTERVAL_S)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_ok_answers_200_and_records_the_request(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """/ok answers 200 and records method, path, query, headers, body and how it ended."""
    before = asyncio.get_running_loop().time()
    async with (
        asyncio.timeout(2),
        session.post(hostile.url + "/ok?n=1", data=b'{"k":1}', headers={"X-Test": "yes"}) as got,
    ):
        assert (got.status, got.reason, await got.read()) == (200, "OK", b"ok\n")
        assert got.headers["Connection"] == "close"
    await hostile.wait_until_closed()
    [exchange] = hostile.to("/ok")
    assert (exchange.method, exchange.query, exchange.body) == ("POST", "n=1", b'{"k":1}')
    assert exchange.headers["x-test"] == "yes"
    assert exchange.at >= before
    assert exchange.ended == Ending.ANSWERED
    assert (hostile.connections_accepted, hostile.connections_open) == (1, 0)


async def test_a_chunked_request_body_is_read_in_full(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """A request body sent chunked is recorded whole, like a Content-Length one."""

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"two ", b"three"):
            yield part

    async with asyncio.timeout(2), session.post(hostile.url + "/ok", data=parts()) as got:
        assert got.status == 200
    [exchange] = await hostile.wait_for(1)
    assert exchange.headers["transfer-encoding"] == "chunked"
    assert exchange.body == b"one two three"


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [("/gone", 410, "Gone"), ("/nowhere", 404, "Not Found")],
)
async def test_plain_failures(
    hostile: HostileReceiver, session: aiohttp.ClientSession, path: str, status: int, reason: str
) -> None:
    """/gone answers 410, and a path with no behaviour answers 404."""
    async with asyncio.timeout(2), session.get(hostile.url + path) as got:
        assert (got.status, got.reason) == (status, reason)


@pytest.mark.parametrize("retry_after", ["3", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_rate_limited_carries_retry_after(
    hostile: HostileReceiver, session: aiohttp.ClientSession, retry_after: str
) -> None:
    """/rate-limited answers 429 with the Retry-After value the test set."""
    hostile.retry_after = retry_after
    async with asyncio.timeout(2), session.get(hostile.url + "/rate-limited") as got:
        assert (got.status, got.headers["Retry-After"]) == (429, retry_after)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/redirect", 302),
        ("/redirect/301", 301),
        ("/redirect/303", 303),
        ("/redirect/307", 307),
        ("/redirect/308", 308),
    ],
)
async def test_redirects_are_not_followed_without_allow_redirects(
    hostile: HostileReceiver, session: aiohttp.ClientSession, path: str, status: int
) -> None:
    """Each redirect path answers its status with Location: redirect_to, and nothing follows it."""
    hostile.redirect_to = hostile.url + "/ok"
    async with (
        asyncio.timeout(2),
        session.get(hostile.url + path, allow_redirects=False) as got,
    ):
        assert (got.status, got.headers["Location"]) == (status, hostile.url + "/ok")
    assert hostile.to("/ok") == []


async def test_sleep_answers_after_sleep_s(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """/sleep answers 200 only once sleep_s has passed since the request was read."""
    hostile.sleep_s = 0.2
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(2), session.get(hostile.url + "/sleep") as got:
        answered_at = loop.time()
        assert got.status == 200
    [exchange] = hostile.to("/sleep")
    assert answered_at - exchange.at >= 0.2


async def test_trickle_sends_about_one_byte_per_interval(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """/trickle's head comes at once, then its body comes one byte per trickle_interval_s."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(2), session.get(hostile.url + "/trickle") as got:
        assert (got.status, got.content_length) == (200, TRICKLE_CONTENT_LENGTH)
        started = loop.time()
        received = b""
        while len(received) < 6:
            received += await got.content.readany()
        elapsed_s = loop.time() - started
    # 6 bytes take 5 intervals after the first; a loaded machine only makes it slower.
    assert received == b"xxxxxx"
    assert 5 * INTERVAL_S * 0.8 <= elapsed_s < 1
    await hostile.wait_until_closed()
    assert hostile.to("/trickle")[0].ended == Ending.CLIENT_CLOSED


async def test_trickle_head_keeps_the_client_waiting_for_headers(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """/trickle-head sends even its status line one byte per interval, so no response arrives."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5), session.get(hostile.url + "/trickle-head"):
            pass
    await hostile.wait_until_closed()
    [exchange] = hostile.to("/trickle-head")
    # 0.5 s at one byte per 0.05 s: about 10 bytes of a head of 73.
    assert 4 <= exchange.bytes_sent <= 11
    assert exchange.ended == Ending.CLIENT_CLOSED


async def test_silent_reads_the_request_and_never_answers(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """/silent reads the whole request, then says nothing until the client gives up."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3), session.post(hostile.url + "/silent", data=b"hello"):
            pass
    await hostile.wait_until_closed()
    [exchange] = hostile.to("/silent")
    assert (exchange.body, exchange.bytes_sent) == (b"hello", 0)
    assert exchange.ended == Ending.CLIENT_CLOSED


async def test_huge_delivers_its_content_length(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """/huge sends exactly huge_bytes (50 MiB by default) of body."""
    received_bytes = 0
    async with asyncio.timeout(5), session.get(hostile.url + "/huge") as got:
        assert got.content_length == hostile.huge_bytes == 50 * 1024 * 1024
        async for chunk in got.content.iter_any():
            received_bytes += len(chunk)
    assert received_bytes == hostile.huge_bytes
    await hostile.wait_until_closed()
    assert hostile.to("/huge")[0].ended == Ending.ANSWERED


async def test_huge_writes_only_as_fast_as_the_client_reads(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """A client that stops reading holds /huge back: most of it is never written."""
    async with asyncio.timeout(2), session.get(hostile.url + "/huge") as got:
        assert got.status == 200
        await asyncio.sleep(0.3)  # the socket buffers fill, then drain() waits
        [exchange] = hostile.to("/huge")
        assert exchange.bytes_sent < hostile.huge_bytes / 2


async def test_endless_keeps_sending_chunks(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """/endless sends a chunked body that goes on past any size the client waits for."""
    received_bytes = 0
    async with asyncio.timeout(3), session.get(hostile.url + "/endless") as got:
        assert got.headers["Transfer-Encoding"] == "chunked"
        assert got.content_length is None
        while received_bytes < 200 * hostile.endless_chunk_bytes:
            chunk = await got.content.readany()
            assert chunk, "the body ended"
            received_bytes += len(chunk)
    await hostile.wait_until_closed()
    assert hostile.to("/endless")[0].ended == Ending.CLIENT_CLOSED


async def test_bad_reason_reaches_aiohttp_surrogate_escaped(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """aiohttp 3.14 decodes the reason 'Bad \\xff\\xfe Reason' as UTF-8 with surrogateescape."""
    async with asyncio.timeout(2), session.get(hostile.url + "/bad-reason") as got:
        reason = got.reason or ""
        assert (got.status, reason) == (500, "Bad \udcff\udcfe Reason")
        assert await got.read() == b"bad reason\n"
    # Those lone surrogates are not valid UTF-8 text: whoever stores the reason must cope.
    with pytest.raises(UnicodeEncodeError):
        reason.encode()


async def test_long_reason_is_refused_by_aiohttp(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """An 8 KiB reason phrase is a parse error: ClientResponseError with a made-up status 400."""
    with pytest.raises(aiohttp.ClientResponseError) as caught:
        async with asyncio.timeout(2), session.get(hostile.url + "/long-reason"):
            pass
    assert caught.value.status == 400
    assert caught.value.message.startswith("Got more than 8190 bytes when reading")


async def test_a_shorter_long_reason_reaches_aiohttp_whole(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """A reason of 8000 bytes is under aiohttp's 8190-byte line limit and comes through whole."""
    hostile.long_reason_bytes = 8000
    async with asyncio.timeout(2), session.get(hostile.url + "/long-reason") as got:
        assert got.status == 500
        assert len(got.reason or "") == 8000
        assert (got.reason or "").startswith("long reason long reason")


async def test_stop_cuts_open_connections_within_a_second(
    hostile: HostileReceiver, session: aiohttp.ClientSession
) -> None:
    """stop() returns at once with connections open in every endless behaviour, and closes all."""
    hostile.sleep_s = 60
    hostile.trickle_interval_s = 2
    paths = ["/sleep", "/trickle", "/trickle-head", "/silent", "/endless", "/huge"]
    stopped = asyncio.Event()

    async def hang_on(path: str) -> None:
        async with session.get(hostile.url + path) as got:
            await stopped.wait()  # read no body: /endless and /huge wait on drain()
            await got.read()

    clients = [asyncio.create_task(hang_on(path)) for path in paths]
    await hostile.wait_for(len(paths), timeout_s=2)
    await asyncio.sleep(0.1)  # let /trickle, /endless and /huge send something first
    assert hostile.connections_open == len(paths)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await hostile.stop()
    assert loop.time() - started < 1
    stopped.set()

    assert (hostile.connections_accepted, hostile.connections_open) == (len(paths), 0)
    assert {exchange.ended for exchange in hostile.exchanges} == {Ending.STOPPED}
    async with asyncio.timeout(2):
        outcomes = await asyncio.gather(*clients, return_exceptions=True)
    assert all(isinstance(outcome, aiohttp.ClientError) for outcome in outcomes), outcomes


async def test_a_request_that_is_not_http_gets_400_and_no_record(
    hostile: HostileReceiver,
) -> None:
    """Bytes that are no HTTP request are answered 400 and counted, not recorded."""
    port = int(hostile.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"hello there\r\n\r\n")
        async with asyncio.timeout(2):
            answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert (hostile.bad_requests, hostile.exchanges) == (1, [])
