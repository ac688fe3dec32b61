"""Frames written in one loop turn reach the socket in one write, in order, and none is lost at
close: checked over a real loopback connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from yarl import URL

from services.runtime.coalesced_writes import CoalescingTransportFactory, CoalescingWriter

# Each test runs on asyncio's loop and on uvloop's (see conftest.py): their transports differ.
pytestmark = pytest.mark.both_loops


class Sink:
    """A loopback server that keeps every byte it receives."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.closed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            self.received += chunk
        self.closed.set()
        writer.close()


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    sink = Sink()
    server = await asyncio.start_server(sink.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield sink, port


class SpyTransport:
    """Stands in for a transport (asyncio's or uvloop's, whose methods cannot be replaced) and
    keeps what it is given to write."""

    def __init__(self, inner: asyncio.WriteTransport) -> None:
        self.inner = inner
        self.handed: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.handed.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def connect(port: int) -> tuple[CoalescingWriter, list[bytes]]:
    """A coalescing writer to the sink, and the list of what its transport was given."""
    _reader, writer = await CoalescingTransportFactory("amqp").create(
        URL(f"amqp://127.0.0.1:{port}/"), ssl_context_provider=None
    )
    assert isinstance(writer, CoalescingWriter)
    spy = SpyTransport(writer.transport)
    writer._transport = spy  # type: ignore[attr-defined]  # where StreamWriter keeps it
    return writer, spy.handed


async def test_writes_of_one_turn_are_handed_over_as_one_in_order(sink: tuple[Sink, int]) -> None:
    received, port = sink
    writer, handed = await connect(port)
    for n in range(10):
        writer.write(f"frame{n};".encode())
    await writer.drain()
    assert handed == []  # nothing leaves during the turn that wrote it

    await asyncio.sleep(0)
    assert handed == [b"".join(f"frame{n};".encode() for n in range(10))]

    writer.write(b"next;")
    await asyncio.sleep(0)
    assert handed[1:] == [b"next;"]
    writer.close()
    await asyncio.wait_for(received.closed.wait(), 5)
    assert bytes(received.received) == handed[0] + b"next;"


async def test_close_hands_over_what_was_kept(sink: tuple[Sink, int]) -> None:
    received, port = sink
    writer, _handed = await connect(port)
    writer.write(b"last words")
    writer.close()  # in the same turn as the write
    await writer.wait_closed()
    await asyncio.wait_for(received.closed.wait(), 5)
    assert bytes(received.received) == b"last words"


async def test_a_write_after_the_transport_closed_is_dropped_quietly(
    sink: tuple[Sink, int],
) -> None:
    _received, port = sink
    writer, handed = await connect(port)
    writer.transport.close()
    writer.write(b"too late")
    await asyncio.sleep(0)
    assert handed == []
