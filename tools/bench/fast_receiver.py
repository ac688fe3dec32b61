"""The benchmark's receiver: answers every POST 200 at once and records when each event arrived.

    .venv/bin/python -m tools.bench.fast_receiver --port 0

A bare asyncio protocol (keep-alive, Content-Length bodies), so that the receiver costs as little
as the machine allows and is never what a benchmark measures. It prints its port on the first
line. Each request's body is searched for `"bench":"<id>"` (the load generator puts that in every
event's data, so it is found in Hookline's envelopes and in the bare loop's raw events alike), and
`<path> <id>` is recorded with its arrival time on the monotonic clock, which every process on
a Linux machine shares (one event delivered to ten webhooks is ten arrivals). `GET /stats`
answers the counts, `GET /take` the arrivals (and forgets them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time

ID_IN_BODY = re.compile(rb'"bench":\s*"([^"]{1,200})"')
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# A request head longer than this is not one the benchmark sends.
MAX_HEAD_BYTES = 64 * 1024


class Arrivals:
    """Every recorded arrival since the last `take`: ids and monotonic times, in order."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.times: list[float] = []
        self.without_id = 0
        self.connections = 0

    def stats(self) -> dict[str, int]:
        return {
            "requests": len(self.ids),
            "distinct": len(set(self.ids)),
            "without_id": self.without_id,
            "connections": self.connections,
        }

    def take(self) -> dict[str, list[object]]:
        taken: dict[str, list[object]] = {"ids": list(self.ids), "times": list(self.times)}
        self.ids.clear()
        self.times.clear()
        self.without_id = 0
        return taken


class Http(asyncio.Protocol):
    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._arrivals.connections += 1

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        buffer = self._buffer
        buffer += data
        while (head_end := buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(buffer[:head_end]).decode("latin-1")
            lines = head.split("\r\n")
            request_line = lines[0].split(" ")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(request_line) != 3 or length < 0:
                self._transport.write(BAD)
                self._transport.close()
                return
            end = head_end + 4 + length
            if len(buffer) < end:
                return
            body = bytes(buffer[head_end + 4 : end])
            del buffer[:end]
            self._transport.write(self._answer(request_line[0], request_line[1], body))
        if len(buffer) > MAX_HEAD_BYTES:
            self._transport.write(BAD)
            self._transport.close()

    def _answer(self, method: str, path: str, body: bytes) -> bytes:
        if method == "GET" and path in ("/stats", "/take"):
            answer = self._arrivals.stats() if path == "/stats" else self._arrivals.take()
            payload = json.dumps(answer).encode()
            return (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
        now = time.monotonic()
        found = ID_IN_BODY.search(body)
        if found is None:
            self._arrivals.without_id += 1
        else:
            self._arrivals.ids.append(f"{path} {found.group(1).decode()}")
            self._arrivals.times.append(now)
        return OK


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    arrivals = Arrivals()
    server = await loop.create_server(lambda: Http(arrivals), "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
