"""A hostile HTTP receiver for fault tests: one loopback server that misbehaves by request path.

It is a plain asyncio TCP server, not aiohttp's, because several behaviours break HTTP on
purpose (a reason phrase that is not UTF-8, a head sent one byte at a time, an answer that never
comes). Every request is read in full before the server misbehaves, and every exchange is recorded.

Paths (the query string is ignored, so `/ok?n=1` and `/ok?n=2` tell webhooks apart):

- `/sleep`: 200, after `sleep_s`.
- `/trickle`: 200 with a huge Content-Length, then one body byte every `trickle_interval_s`.
- `/trickle-head`: the status line and headers too, one byte every `trickle_interval_s`.
- `/silent`: never answers, keeps the connection open.
- `/huge`: 200 with a body of `huge_bytes`, as fast as the client reads.
- `/endless`: 200 with `Transfer-Encoding: chunked`, chunks of `endless_chunk_bytes` forever.
- `/redirect`: 302 to `redirect_to`; `/redirect/301`, `/303`, `/307`, `/308` likewise.
- `/bad-reason`: 500 whose reason phrase holds the bytes 0xFF 0xFE (not UTF-8).
- `/long-reason`: 500 whose reason phrase is `long_reason_bytes` of printable ASCII.
- `/rate-limited`: 429 with `Retry-After: <retry_after>`.
- `/gone`: 410.
- `/ok`: 200, a healthy control.
- anything else: 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

MiB = 1024 * 1024
# /trickle's announced length: at one byte per interval it is never reached.
TRICKLE_CONTENT_LENGTH = 1024 * MiB
REDIRECT_STATUSES = {
    "/redirect": 302,
    "/redirect/301": 301,
    "/redirect/303": 303,
    "/redirect/307": 307,
    "/redirect/308": 308,
}
BAD_REASON_STATUS_LINE = b"HTTP/1.1 500 Bad \xff\xfe Reason\r\n"
# Limits on what the server reads, so a broken client cannot make it buffer without end.
MAX_HEADER_LINES = 200
MAX_BODY_BYTES = 64 * MiB
_WRITE_CHUNK_BYTES = 64 * 1024


class Ending(enum.StrEnum):
    """How an exchange ended."""

    # The whole answer was written and the server closed the connection.
    ANSWERED = "answered"
    # The client hung up (FIN or reset: which one the kernel reports is timing, so not told apart).
    CLIENT_CLOSED = "client_closed"
    # stop() cut the connection.
    STOPPED = "stopped"


@dataclass
class Exchange:
    """One request the server read in full, and how answering it went (updated as it goes)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    # loop.time() once the request had been read in full.
    at: float
    # Bytes handed to the socket so far (the client may not have read them all).
    bytes_sent: int = 0
    # None while the exchange goes on.
    ended: Ending | None = None
    ended_at: float | None = None


class _BadRequest(Exception):
    """The client sent something that is not an HTTP/1.1 request this server can read."""


@dataclass
class HostileReceiver:
    """Answers each request by its path with a misbehaviour, recording every exchange."""

    sleep_s: float = 60
    trickle_interval_s: float = 2
    huge_bytes: int = 50 * MiB
    endless_chunk_bytes: int = 16 * 1024
    redirect_to: str = "http://127.0.0.1:9/"
    retry_after: str = "3"
    long_reason_bytes: int = 8192
    exchanges: list[Exchange] = field(default_factory=list)
    connections_accepted: int = 0
    # Connections whose request could not be read as HTTP (answered 400, not recorded).
    bad_requests: int = 0
    url: str = ""
    _server: asyncio.Server | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)
    _stopping: bool = False
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def connections_open(self) -> int:
        """Connections accepted whose socket the server has not closed yet."""
        return len(self._connections)

    def to(self, path: str) -> list[Exchange]:
        """The exchanges of requests to `path`, oldest first."""
        return [exchange for exchange in self.exchanges if exchange.path == path]

    async def wait_for(
        self, count: int, *, path: str | None = None, timeout_s: float = 10
    ) -> list[Exchange]:
        """Wait until at least `count` requests (to `path`, if given) have been read."""

        def seen() -> list[Exchange]:
            return self.exchanges if path is None else self.to(path)

        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(seen()) >= count)
        return seen()

    async def wait_until_closed(self, *, timeout_s: float = 10) -> None:
        """Wait until no connection is open (the client hung up, or the answer was finished)."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: self.connections_open == 0)

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 and set `url`."""
        self._stopping = False
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening and cut every open connection at once, whatever it is doing."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        # A connection whose task has not started yet sees _stopping and aborts by itself.
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _announce(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The task asyncio runs this in must not end cancelled: Python 3.11 calls exception() on
        # it and logs the CancelledError that raises as an unhandled error.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve_connection(reader, writer)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections_accepted += 1
        if self._stopping:
            writer.transport.abort()
            return
        self._connections.add(task)
        exchange: Exchange | None = None
        try:
            try:
                exchange = await self._read_request(reader)
            except (asyncio.IncompleteReadError, OSError):
                return  # the client left before its request was complete
            except (_BadRequest, ValueError, asyncio.LimitOverrunError):
                self.bad_requests += 1
                writer.write(_response(400, b"bad request\n"))
                await _close(writer)
                return
            self.exchanges.append(exchange)
            await self._announce()
            ending = await self._answer_until_hangup(exchange, reader, writer)
            exchange.ended, exchange.ended_at = ending, asyncio.get_running_loop().time()
        except asyncio.CancelledError:
            if exchange is not None and exchange.ended is None:
                exchange.ended = Ending.STOPPED
                exchange.ended_at = asyncio.get_running_loop().time()
            raise
        finally:
            # Abort drops anything unsent: a stopped /huge must not wait for its reader.
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._connections.discard(task)
            await self._announce()

    async def _read_request(self, reader: asyncio.StreamReader) -> Exchange:
        """Read a request line, headers and a Content-Length (or chunked) body."""
        request_line = (await reader.readuntil(b"\n")).decode("latin-1").rstrip("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(request_line)
        method, target, _version = parts
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = (await reader.readuntil(b"\n")).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, colon, value = line.partition(":")
            if not colon:
                raise _BadRequest(line)
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        else:
            raise _BadRequest("too many header lines")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        else:
            length = int(headers.get("content-length", "0"))
            if not 0 <= length <= MAX_BODY_BYTES:
                raise _BadRequest(f"Content-Length {length}")
            body = await reader.readexactly(length)
        path, _, query = target.partition("?")
        return Exchange(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            at=asyncio.get_running_loop().time(),
        )

    async def _answer_until_hangup(
        self, exchange: Exchange, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Ending:
        """Run the path's behaviour while watching the client: a hang-up ends it at once."""
        behaviour = asyncio.create_task(self._behave(exchange, writer))
        hangup = asyncio.create_task(_wait_for_hangup(reader))
        try:
            await asyncio.wait({behaviour, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            behaviour.cancel()
            hangup.cancel()
            await asyncio.gather(behaviour, hangup, return_exceptions=True)
        # A finished answer counts even if the client hung up right after reading it.
        if behaviour.done() and not behaviour.cancelled():
            error = behaviour.exception()
            if error is None:
                await _close(writer)
                return Ending.ANSWERED
            if not isinstance(error, OSError):  # a reset or broken pipe is the client leaving
                raise error
        return Ending.CLIENT_CLOSED

    async def _behave(self, exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        """Write the answer of `exchange.path`; return once it is all written (if ever)."""
        match exchange.path:
            case "/sleep":
                await asyncio.sleep(self.sleep_s)
                await _send(exchange, writer, _response(200, b"slept\n"))
            case "/trickle":
                await _send(exchange, writer, _trickle_head())
                await self._drip(exchange, writer, itertools.repeat(ord("x")))
            case "/trickle-head":
                await self._drip(
                    exchange, writer, itertools.chain(_trickle_head(), itertools.repeat(ord("x")))
                )
            case "/silent":
                await asyncio.get_running_loop().create_future()  # never done
            case "/huge":
                await self._huge(exchange, writer)
            case "/endless":
                await self._endless(exchange, writer)
            case path if path in REDIRECT_STATUSES:
                status = REDIRECT_STATUSES[path]
                answer = _response(status, b"", {"Location": self.redirect_to})
                await _send(exchange, writer, answer)
            case "/bad-reason":
                body = b"bad reason\n"
                answer = BAD_REASON_STATUS_LINE + _headers(_closing_headers(len(body))) + body
                await _send(exchange, writer, answer)
            case "/long-reason":
                body = b"long reason\n"
                reason = bytes(
                    itertools.islice(itertools.cycle(b"long reason "), self.long_reason_bytes)
                )
                status_line = b"HTTP/1.1 500 " + reason + b"\r\n"
                await _send(
                    exchange, writer, status_line + _headers(_closing_headers(len(body))) + body
                )
            case "/rate-limited":
                answer = _response(429, b"slow down\n", {"Retry-After": self.retry_after})
                await _send(exchange, writer, answer)
            case "/gone":
                await _send(exchange, writer, _response(410, b"gone\n"))
            case "/ok":
                await _send(exchange, writer, _response(200, b"ok\n"))
            case _:
                await _send(exchange, writer, _response(404, b"no such behaviour\n"))

    async def _drip(
        self, exchange: Exchange, writer: asyncio.StreamWriter, data: Iterable[int]
    ) -> None:
        """Send `data` one byte every `trickle_interval_s`."""
        for byte in data:
            await _send(exchange, writer, bytes((byte,)))
            await asyncio.sleep(self.trickle_interval_s)

    async def _huge(self, exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        """Send `huge_bytes` of body in chunks, as fast as the client reads (drain() paces it)."""
        head = b"HTTP/1.1 200 OK\r\n" + _headers(_closing_headers(self.huge_bytes))
        await _send(exchange, writer, head)
        chunk = b"x" * _WRITE_CHUNK_BYTES
        remaining = self.huge_bytes
        while remaining > 0:
            piece = chunk if remaining >= len(chunk) else chunk[:remaining]
            await _send(exchange, writer, piece)
            remaining -= len(piece)
            await asyncio.sleep(0)  # a fast reader never pauses drain(): let others run

    async def _endless(self, exchange: Exchange, writer: asyncio.StreamWriter) -> None:
        """Send chunks of a chunked body forever, as fast as the client reads."""
        head = {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"}
        await _send(exchange, writer, b"HTTP/1.1 200 OK\r\n" + _headers(head))
        size = self.endless_chunk_bytes
        frame = f"{size:x}\r\n".encode() + b"x" * size + b"\r\n"
        while True:
            await _send(exchange, writer, frame)
            await asyncio.sleep(0)  # as in _huge


def _headers(headers: Mapping[str, str]) -> bytes:
    """Header lines and the blank line that ends the head."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (lines + "\r\n").encode("latin-1")


def _closing_headers(content_length: int) -> dict[str, str]:
    return {
        "Content-Type": "text/plain",
        "Content-Length": str(content_length),
        "Connection": "close",
    }


def _response(status: int, body: bytes, extra: Mapping[str, str] | None = None) -> bytes:
    """A whole, well-formed answer that closes the connection."""
    status_line = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
    return status_line + _headers({**_closing_headers(len(body)), **(extra or {})}) + body


def _trickle_head() -> bytes:
    head = {"Content-Type": "text/plain", "Content-Length": str(TRICKLE_CONTENT_LENGTH)}
    return b"HTTP/1.1 200 OK\r\n" + _headers(head)


async def _send(exchange: Exchange, writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    exchange.bytes_sent += len(data)
    await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close after sending what is buffered (a client that reset the connection is fine)."""
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _wait_for_hangup(reader: asyncio.StreamReader) -> None:
    """Return once the client closed its side or reset the connection."""
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass  # anything more the client sends is ignored


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked request body, with its trailers skipped."""
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\n")).split(b";")[0].strip(), 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY_BYTES:
            raise _BadRequest("chunked body too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the CRLF after the chunk
    while (await reader.readuntil(b"\n")).strip():
        pass
    return bytes(body)
