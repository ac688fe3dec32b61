"""Broker helpers for tests: names per run, counting and reading queues, and clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity

from schemas.deliveries import DeliveryAttempted, attempts_in
from schemas.topology import Topology


async def delete_install(url: str, topology: Topology) -> None:
    """Delete every queue and exchange of an install (a test's prefix)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in topology.queues():
            await channel.queue_delete(name)
        for name in topology.exchanges():
            await channel.exchange_delete(name)
    finally:
        await connection.close()


async def message_count(url: str, queue: str) -> int:
    """A queue's depth, read on a plain channel (a robust one caches passive declares)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0)
    finally:
        await connection.close()


async def queue_exists(url: str, queue: str) -> bool:
    """Whether the broker has a queue of this name."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


async def take_all(
    url: str, queue: str, *, expect: int, timeout_s: float = 20
) -> list[AbstractIncomingMessage]:
    """Consume (and ack) `expect` messages from a quorum queue, waiting for them to arrive."""
    taken: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=max(expect, 1))
        source = await channel.get_queue(queue, ensure=False)
        async with asyncio.timeout(timeout_s):
            while len(taken) < expect:
                message = await source.get(no_ack=False, fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                taken.append(message)
    finally:
        await connection.close()
    return taken


async def read_stream(
    url: str, stream: str, *, expect: int, timeout_s: float = 20, of_type: str | None = None
) -> list[bytes]:
    """The first `expect` messages of a stream (of the AMQP `type` given, if one is: readers'
    markers are skipped that way), read from its first offset."""
    bodies: list[bytes] = []

    def take(message: AbstractIncomingMessage) -> bool:
        if of_type is None or message.type == of_type:
            bodies.append(message.body)
        return len(bodies) >= expect

    await _read_from_first(url, stream, take, timeout_s=timeout_s)
    return bodies


async def read_attempts(
    url: str, stream: str, *, expect: int, timeout_s: float = 20
) -> list[DeliveryAttempted]:
    """The first `expect` attempt records of a delivery-log stream, batched or not."""
    attempts: list[DeliveryAttempted] = []

    def take(message: AbstractIncomingMessage) -> bool:
        attempts.extend(attempts_in(message.type, message.body))
        return len(attempts) >= expect

    await _read_from_first(url, stream, take, timeout_s=timeout_s)
    return attempts[:expect]


async def read_whole_stream(
    url: str, stream: str, *, quiet_s: float = 1.0, timeout_s: float = 20
) -> list[AbstractIncomingMessage]:
    """Every message of a stream, from its first offset until none came for `quiet_s`."""
    messages: list[AbstractIncomingMessage] = []
    arrived = asyncio.Event()

    def take(message: AbstractIncomingMessage) -> bool:
        messages.append(message)
        arrived.set()
        return False

    async def read() -> None:
        await _read_from_first(url, stream, take, timeout_s=timeout_s)

    reader = asyncio.create_task(read())
    try:
        while True:
            arrived.clear()
            try:
                async with asyncio.timeout(quiet_s):
                    await arrived.wait()
            except TimeoutError:
                return messages
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await reader


async def _read_from_first(
    url: str,
    stream: str,
    take: Callable[[AbstractIncomingMessage], bool],
    *,
    timeout_s: float,
) -> None:
    """Read a stream from its first offset until `take(message)` says it has enough."""
    done = asyncio.Event()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.get_queue(stream, ensure=False)

        async def on_message(message: AbstractIncomingMessage) -> None:
            if take(message):
                done.set()
            await message.ack()

        await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        async with asyncio.timeout(timeout_s):
            await done.wait()
    finally:
        await connection.close()


def leftover_queues(prefix: str) -> list[str] | None:
    """Queues whose name starts with `prefix`, via rabbitmqctl; None where it is not available."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    listed = subprocess.run(  # noqa: S603 - a fixed, found binary
        [ctl, "list_queues", "name", "-q", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if listed.returncode != 0:
        return None
    return [line.strip() for line in listed.stdout.splitlines() if line.strip().startswith(prefix)]


def close_connections_named(name: str) -> int:
    """Have the broker drop our connections whose name contains `name`; how many it dropped."""
    ctl = shutil.which("rabbitmqctl")
    assert ctl, "this test needs rabbitmqctl to drop a connection from the broker's side"
    listed = subprocess.run(  # noqa: S603
        [ctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pids = [line.split("\t", 1)[0] for line in listed.stdout.splitlines() if name in line]
    for pid in pids:
        subprocess.run(  # noqa: S603 - a fixed, found binary
            [ctl, "close_connection", pid, "test"],
            capture_output=True,
            timeout=60,
            check=True,
        )
    return len(pids)
