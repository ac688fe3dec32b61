"""Frames written in one turn of the event loop leave in one socket write.

aiormq writes every frame on its own: a batch of records confirmed at once settles a dozen
events, and their dozen acks cost a dozen `send` calls, each dearer than encoding the frame (a
sender at saturation spent 13.6% of its time in socket writes, 1.5% in framing), and the broker
reads a dozen segments. The writer below keeps what is written during a turn of the loop and
hands it to the transport at the start of the next turn, joined. Order is kept, nothing waits
longer than that turn, and `close` hands over what is kept first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from yarl import URL


class CoalescingWriter(asyncio.StreamWriter):
    """A StreamWriter whose writes of one loop turn go to the transport as one."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.BaseProtocol,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
        *,
        replaces: asyncio.StreamWriter | None = None,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        # A StreamWriter closes its transport when it is collected: the one this writer stands in
        # for lives as long as this one.
        self._replaced = replaces
        self._kept: list[bytes] = []
        self._hand_over_scheduled = False
        self._turn_loop = loop

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._kept.append(bytes(data))
        if not self._hand_over_scheduled:
            self._hand_over_scheduled = True
            self._turn_loop.call_soon(self.hand_over)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def hand_over(self) -> None:
        """Give the transport what was written since the last hand-over."""
        self._hand_over_scheduled = False
        if not self._kept:
            return
        kept, self._kept = self._kept, []
        if self.transport.is_closing():  # the connection is gone: so is what it had to send
            return
        self.transport.write(kept[0] if len(kept) == 1 else b"".join(kept))

    def close(self) -> None:
        self.hand_over()
        super().close()

    def write_eof(self) -> None:
        self.hand_over()
        super().write_eof()


class CoalescingTransportFactory(TransportFactory):
    """aiormq's own TCP or TLS connection, with a coalescing writer."""

    def __init__(self, scheme: str) -> None:
        self._inner: TransportFactory = (
            TLSTransportFactory() if scheme == "amqps" else TCPTransportFactory()
        )

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._inner.create(url, **kwargs)
        # uvloop's transports do not derive from asyncio's classes, so no isinstance check here.
        transport = writer.transport
        loop = asyncio.get_running_loop()
        return reader, CoalescingWriter(
            transport, transport.get_protocol(), reader, loop, replaces=writer
        )
