"""The ceiling the benchmark compares Hookline with: the least a delivery worker can do.

    .venv/bin/python -m tools.bench.bare_loop --queue Q --url http://127.0.0.1:PORT/hook

One process: consume a quorum queue (prefetch 200), POST each body with one aiohttp session
(keep-alive, 100 connections), ack on 2xx and requeue otherwise. No validation, signing, record,
log or metric. It prints READY once it consumes and exits on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage

PREFETCH = 200
CONNECTIONS = 100
HEADERS = {"Content-Type": "application/json"}


async def run(amqp_url: str, queue_name: str, url: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    connection = await aio_pika.connect(amqp_url)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=10),
    )
    async with connection, session:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(queue_name)

        async def deliver(message: AbstractIncomingMessage) -> None:
            delivered = False
            try:
                async with session.post(url, data=message.body, headers=HEADERS) as response:
                    await response.read()
                    delivered = 200 <= response.status < 300
            except (aiohttp.ClientError, TimeoutError):
                delivered = False
            if delivered:
                await message.ack()
            else:
                await message.nack(requeue=True)

        await queue.consume(deliver)
        print("READY", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    asyncio.run(run(args.amqp_url, args.queue, args.url))


if __name__ == "__main__":
    main()
