"""Many webhooks, measured: how long a router and a sender take to be ready, and what each webhook
costs them in memory, with `--webhooks` webhooks in the webhooks stream.

    .venv/bin/python -m tools.bench.webhooks_scale [--webhooks 100000] [--out FILE]

Run from a checkout, against `HOOKLINE_AMQP_URL` (default: the local broker), on a prefix of its
own whose queues are all deleted afterwards. It starts a router and a sender as processes (as the
tests do) and notes their memory with an empty table. Then it fills the webhooks stream:

- `API_WEBHOOKS` webhooks through `POST /webhooks`, half before the bulk and half after it;
- the rest as `webhook.created` records published straight to the stream, each exactly what the
  API appends (a `WebhookCreated` with a new id and secret, its `record_id` as message id and its
  kind as message type), because creating 100,000 through the API takes minutes.

Once the first router answers every API-made webhook, it starts one more router and one more
sender (`router-late`, `sender-late`) and reports, for each service: `ready_s`, seconds from
process start to `/readyz` 200 (`empty_ready_s` for the first one, with an empty table), and
`cpu_s`, the CPU seconds it used by then (steadier than `ready_s` on a shared machine);
`rss_mb` (VmRSS) once ready, beside `empty_rss_mb` and `running_rss_mb` (the first process, which
followed the stream as it grew); and `kb_per_webhook`, the late process's RSS over the empty one's,
by webhook. Last it checks that the late router knows every webhook (each API-made one by
`GET /webhooks/{id}`, and every id in `GET /webhooks`: `missing` must be 0), and reports the size
and time of that listing (100 a page, following the `Link` headers), and the late router's RSS
after it. A sender has no API: that it is ready means it has read the stream up to a marker of
its own, past every record. The result is printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from schemas.topology import Topology
from schemas.webhooks import WebhookCreated, new_secret, new_webhook_id
from services.runtime.broker import Publisher
from tests.support.processes import ADMIN_TOKEN, ServiceProcess, Stack, running_stack
from tools.bench.measures import cpu_seconds, rss_mb
from tools.bench.routing import SCOPED

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Webhooks made through the API; the rest are published straight to the stream.
API_WEBHOOKS = 6
PUBLISH_CHUNK = 1000
READY_S = 300.0
LISTING_TIMEOUT_S = 300.0
SERVICES = ("router", "sender")
# Exact types the bulk subscribes to (one in two webhooks; the others take `SCOPED` patterns).
EXACT = ("account{}.problem.update", "account{}.request.create", "account{}.record.approved")


def bulk_event(n: int) -> str:
    """The `event` of the n-th bulk webhook: an account-scoped exact type or pattern in turn."""
    shapes = EXACT if n % 2 == 0 else SCOPED
    return shapes[n // 2 % len(shapes)].format(n // 2)


def created_record(n: int, at: datetime) -> WebhookCreated:
    """What `POST /webhooks` appends for `{"event": bulk_event(n), "uri": …}`."""
    event = bulk_event(n)
    return WebhookCreated(
        at=at,
        webhook_id=new_webhook_id(),
        name=event,
        event=event,
        uri=f"https://hooks.example.com/account/{n}/webhook",
        description=None,
        disabled=False,
        mail_exceptions_to=None,
        secret=new_secret(),
    )


class Scale:
    def __init__(self, stack: Stack, http: aiohttp.ClientSession, publisher: Publisher) -> None:
        self.stack = stack
        self.http = http
        self.publisher = publisher

    async def start(self, service: str, label: str) -> tuple[ServiceProcess, float]:
        """Start a process; it and the seconds from its start to `/readyz` 200."""
        started = time.monotonic()
        process = await asyncio.to_thread(self.stack.start, service, label)
        deadline = started + READY_S
        while time.monotonic() < deadline:
            async with self.http.get(f"{process.url}/readyz") as response:
                if response.status == 200:
                    return process, time.monotonic() - started
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{label} not ready in {READY_S}s")

    async def create_through_api(self, count: int, first: int) -> list[str]:
        router = self.stack.url_of("router")
        ids = []
        for n in range(first, first + count):
            body = {"event": bulk_event(n), "uri": f"https://hooks.example.com/api/{n}"}
            async with self.http.post(f"{router}/webhooks", json=body, headers=ADMIN) as response:
                if response.status != 201:
                    raise RuntimeError(f"webhook not created: {response.status}")
                ids.append((await response.json())["id"])
        return ids

    async def publish_bulk(self, stream: str, count: int, first: int) -> tuple[float, list[str]]:
        """`count` created records straight to the stream, confirmed; seconds it took, and the
        webhooks' ids."""
        at = datetime.now(UTC)
        started = time.monotonic()
        ids = []
        for chunk in range(first, first + count, PUBLISH_CHUNK):
            records = [
                created_record(n, at)
                for n in range(chunk, min(chunk + PUBLISH_CHUNK, first + count))
            ]
            ids += [record.webhook_id for record in records]
            await asyncio.gather(
                *(
                    self.publisher.publish(
                        "",
                        stream,
                        record.model_dump_json().encode(),
                        message_id=record.record_id,
                        message_type=record.kind,
                    )
                    for record in records
                )
            )
        return time.monotonic() - started, ids

    async def found(self, url: str, webhook_ids: Sequence[str], timeout_s: float) -> int:
        """How many of `webhook_ids` `GET /webhooks/{id}` answers, waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        missing = list(webhook_ids)
        while True:
            still = []
            for webhook_id in missing:
                async with self.http.get(f"{url}/webhooks/{webhook_id}", headers=ADMIN) as answer:
                    if answer.status != 200:
                        still.append(webhook_id)
            missing = still
            if not missing or time.monotonic() > deadline:
                return len(webhook_ids) - len(missing)
            await asyncio.sleep(0.2)

    async def listing(self, url: str) -> tuple[list[str], dict[str, Any]]:
        """`GET /webhooks`, 100 a page, following each answer's `Link` to the next page: the ids
        listed, and the pages' count, size and time."""
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=LISTING_TIMEOUT_S)
        ids: list[str] = []
        pages = size = 0
        status = 200
        page_url: str | None = f"{url}/webhooks?per_page=100"
        while page_url is not None and status == 200:
            async with self.http.get(page_url, headers=ADMIN, timeout=timeout) as response:
                body = await response.read()
                status = response.status
                following = response.links.get("next")
            pages += 1
            size += len(body)
            if status == 200:
                ids += [webhook["id"] for webhook in json.loads(body)]
            page_url = str(following["url"]) if following else None
        took = time.monotonic() - started
        return ids, {
            "status": status,
            "entries": len(ids),
            "pages": pages,
            "bytes": size,
            "mb": round(size / 1e6, 1),
            "seconds": round(took, 2),
            "ms_per_page": round(1000 * took / max(pages, 1), 2),
        }


@dataclass(frozen=True)
class Started:
    """A process of one service: started with an empty table, and late, with every webhook."""

    empty_ready_s: float
    empty_rss_mb: float
    running_rss_mb: float = 0.0  # the process started empty, once it has read every webhook
    ready_s: float = 0.0
    cpu_s: float = 0.0
    rss_mb: float = 0.0

    def figures(self, webhooks: int) -> dict[str, float]:
        return {
            "ready_s": round(self.ready_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "empty_ready_s": round(self.empty_ready_s, 2),
            "rss_mb": round(self.rss_mb, 1),
            "empty_rss_mb": round(self.empty_rss_mb, 1),
            "running_rss_mb": round(self.running_rss_mb, 1),
            "kb_per_webhook": round((self.rss_mb - self.empty_rss_mb) * 1024 / max(webhooks, 1), 2),
        }


async def _measure(
    stack: Stack, amqp_url: str, topology: Topology, webhooks: int
) -> dict[str, Any]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection, aiohttp.ClientSession() as http:
        publisher = await Publisher.open(connection, 30.0)
        scale = Scale(stack, http, publisher)
        first: dict[str, ServiceProcess] = {}
        seen: dict[str, Started] = {}
        for service in SERVICES:
            first[service], ready_s = await scale.start(service, service)
            seen[service] = Started(ready_s, rss_mb(first[service].process.pid))

        api_count = min(API_WEBHOOKS, webhooks)
        before = api_count // 2
        bulk = webhooks - api_count
        api_ids = await scale.create_through_api(before, 0)
        publish_s, bulk_ids = await scale.publish_bulk(topology.webhooks_stream, bulk, before)
        api_ids += await scale.create_through_api(api_count - before, before + bulk)
        # The first router has read the whole stream once it answers the last API-made webhook.
        await scale.found(first["router"].url, api_ids, READY_S)

        late: dict[str, ServiceProcess] = {}
        for service in SERVICES:
            running = rss_mb(first[service].process.pid)
            late[service], ready_s = await scale.start(service, f"{service}-late")
            pid = late[service].process.pid
            seen[service] = replace(
                seen[service],
                running_rss_mb=running,
                ready_s=ready_s,
                cpu_s=cpu_seconds(pid),
                rss_mb=rss_mb(pid),
            )

        api_found = await scale.found(late["router"].url, api_ids, 10.0)
        listed, listing = await scale.listing(late["router"].url)
        listing["router_rss_mb_after"] = round(rss_mb(late["router"].process.pid), 1)
        await publisher.close()
    return {
        "webhooks": webhooks,
        "through_api": api_count,
        "published_s": round(publish_s, 1),
        **{service: seen[service].figures(webhooks) for service in SERVICES},
        "api_found": api_found,
        "listed": len(listed),
        "listed_distinct": len(set(listed)),
        "missing": len({*api_ids, *bulk_ids} - set(listed)),
        "listing": listing,
    }


def measure(webhooks: int, *, prefix: str | None = None) -> dict[str, Any]:
    """Fill a new install (`prefix`, or one of its own) with `webhooks` webhooks and measure a
    router and a sender started late; every queue of the install is deleted afterwards."""
    amqp_url = os.environ.get("HOOKLINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = prefix or f"hlbench-scale-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="hookline-scale-"))
    with running_stack(amqp_url, prefix, log_dir, ()) as stack:
        result = asyncio.run(_measure(stack, amqp_url, Topology(prefix), webhooks))
    return {"at": datetime.now(UTC).isoformat(timespec="seconds"), **result, "logs": str(log_dir)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--webhooks", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = measure(args.webhooks)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
