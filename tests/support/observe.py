"""Watching running services from outside: memory, sockets, metrics and the delivery log."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from schemas.deliveries import DeliveryAttempted, attempts_in

# Socket states of /proc/net/tcp in which the process has not closed its side yet.
_ESTABLISHED, _SYN_SENT, _CLOSE_WAIT = "01", "02", "08"
_HELD_STATES = {_ESTABLISHED, _SYN_SENT, _CLOSE_WAIT}


def rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            kib = line.split()[1]
            return int(kib) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def connections_to(pid: int, port: int) -> int:
    """TCP connections process `pid` holds open to `port` on this machine, as the kernel sees them.

    A socket counts while it is in the process's descriptor table and the process has not closed
    its side: unlike a count kept by the server, this does not lag behind the client's close.
    Sockets are told apart by inode: the kernel lists its table in chunks, so a socket may be
    listed twice while other sockets come and go.
    """
    inodes = _socket_inodes(pid)
    held: set[int] = set()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            inode = int(fields[9])
            if remote_port == port and fields[3] in _HELD_STATES and inode in inodes:
                held.add(inode)
    return len(held)


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent).

    `labels` is the sample's label set as written, e.g. `reason="endpoint_busy"`.
    """
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


class DeliveryLog:
    """The records of a delivery-log stream read so far, kept current while `following`."""

    def __init__(self) -> None:
        self.records: list[DeliveryAttempted] = []
        self._changed = asyncio.Condition()

    def of_webhook(self, webhook_id: str) -> list[DeliveryAttempted]:
        return [record for record in self.records if record.webhook_id == webhook_id]

    async def wait_until(self, predicate: Callable[[], bool], *, timeout_s: float) -> None:
        """Wait until `predicate()` holds over the records read so far."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        records = attempts_in(message.type, message.body)
        if records:
            async with self._changed:
                self.records.extend(records)
                self._changed.notify_all()
        await message.ack()


@asynccontextmanager
async def following(url: str, stream: str) -> AsyncIterator[DeliveryLog]:
    """Read a delivery-log stream from its first record, for as long as the block runs."""
    log = DeliveryLog()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(stream, ensure=False)
        await queue.consume(log._on_message, arguments={"x-stream-offset": "first"})
        yield log
    finally:
        await connection.close()
