"""Isolation, measured: how much one endpoint that never answers costs the healthy ones.

    .venv/bin/python -m tools.bench.isolation [--seconds 10] [--rate 30] [--webhooks 20]
                                              [--backlog 600] [--set NAME=VALUE …]

Run from a checkout (it starts the services the way the e2e tests do). It starts a router and two
senders on a prefix of its own against `HOOKLINE_AMQP_URL` (default: the local broker), with its
receivers in a child process, and measures three phases in one run:

1. `all_healthy`: `--webhooks` webhooks, `--rate` events/s to each for `--seconds`.
2. `one_sleeping`: the same, but one of the webhooks points at an endpoint that never answers
   within the attempt deadline; the others are measured.
3. `backlog`: `--backlog` deliveries queued for a sleeping endpoint, then one healthy webhook at
   `--rate` events/s for `--backlog-seconds`.

Rate of a webhook: events it received / (its last arrival - the phase's first publish). Latency:
arrival at the receiver minus the moment the event was published (one monotonic clock). A phase
`keeps_up` when every webhook got at least 0.9 of the offered rate; where `all_healthy` does not,
the machine cannot carry the offered load at all, and the ratio compares two saturated throughputs
(on a shared machine, mostly noise): lower `--rate` to measure isolation. It prints a JSON
summary; every queue it declared is deleted after. Settings are Hookline's defaults unless `--set`
says otherwise (e.g. `--set attempt_timeout_s=5`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from services.producer.sdk import Producer
from tests.support.broker import message_count
from tests.support.hostile import HostileReceiver
from tests.support.observe import metric_value
from tests.support.processes import ADMIN_TOKEN, Stack, running_stack
from tools.bench.measures import add_settings_option, cpu_seconds, percentile, settings_of

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SERVICES = (("router", "router"), ("sender", "sender-1"), ("sender", "sender-2"))
SENDERS = ("sender-1", "sender-2")
# The sleeping endpoint answers after this long: past any deadline the bench uses.
SLEEP_S = 600.0
# Bounds of every wait.
STARTUP_S = 30.0
ANSWER_S = 30.0
DRAIN_S = 60.0
SETTLE_S = 60.0
PUBLISH_CHUNK = 50
# A phase keeps up when every webhook got at least this share of the offered rate. When the
# all-healthy phase does not, the ratio compares two saturated throughputs: read it with care.
KEEPS_UP = 0.9


@dataclass(frozen=True)
class Arrival:
    path: str
    event_id: str
    at: float  # time.monotonic() in the receivers' process: one clock on Linux


# --- the receivers, in a child process of their own --------------------------------------------


def _receivers_main(conn: Connection) -> None:
    asyncio.run(_serve_receivers(conn))


async def _serve_receivers(conn: Connection) -> None:
    """A healthy receiver that records each POST, and a sleeping one; commands come over `conn`."""
    received: list[tuple[str, bytes, float]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        received.append((request.path, body, time.monotonic()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sleeper = HostileReceiver(sleep_s=SLEEP_S)
    await sleeper.start()
    conn.send({"healthy": f"http://127.0.0.1:{runner.addresses[0][1]}", "sleeper": sleeper.url})
    loop = asyncio.get_running_loop()
    try:
        while True:
            command, argument = await loop.run_in_executor(None, conn.recv)
            if command == "count":
                conn.send(sum(1 for path, _, _ in received if path.startswith(argument)))
            elif command == "take":
                taken = [item for item in received if item[0].startswith(argument)]
                received[:] = [item for item in received if not item[0].startswith(argument)]
                conn.send([(path, json.loads(body)["id"], at) for path, body, at in taken])
            elif command == "sleeper":
                conn.send({"attempts": len(sleeper.exchanges), "open": sleeper.connections_open})
            else:
                break
    finally:
        await sleeper.stop()
        await runner.cleanup()


class Receivers:
    """The child process's receivers, asked over a pipe."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_receivers_main, args=(child_conn,), daemon=True)
        self._process.start()
        if not self._conn.poll(STARTUP_S):
            self._process.kill()
            raise RuntimeError(f"the receivers did not start within {STARTUP_S:g}s")
        urls: dict[str, str] = self._conn.recv()
        self.healthy_url = urls["healthy"]
        self.sleeper_url = urls["sleeper"]
        self._lock = asyncio.Lock()

    async def ask(self, command: str, argument: str = "") -> Any:
        async with self._lock:
            self._conn.send((command, argument))
            loop = asyncio.get_running_loop()
            if not await loop.run_in_executor(None, self._conn.poll, ANSWER_S):
                raise RuntimeError(f"the receivers did not answer {command!r} in {ANSWER_S:g}s")
            return self._conn.recv()

    async def count(self, prefix: str) -> int:
        count: int = await self.ask("count", prefix)
        return count

    async def take(self, prefix: str) -> list[Arrival]:
        return [Arrival(*item) for item in await self.ask("take", prefix)]

    def stop(self) -> None:
        self._conn.send(("stop", ""))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


# --- measuring -------------------------------------------------------------------------------


def summarize(
    arrivals: Sequence[Arrival], sent: dict[str, float], paths: Sequence[str]
) -> dict[str, Any]:
    """Per-webhook rate and the latency of every delivery to `paths`."""
    first_publish = min(sent.values())
    first: dict[tuple[str, str], float] = {}
    for arrival in arrivals:
        key = (arrival.path, arrival.event_id)
        first[key] = min(first.get(key, arrival.at), arrival.at)
    rates = []
    latencies = []
    for path in paths:
        times = [at for (p, event_id), at in first.items() if p == path and event_id in sent]
        latencies += [at - sent[e] for (p, e), at in first.items() if p == path and e in sent]
        rates.append(len(times) / (max(times) - first_publish) if times else 0.0)
    return {
        "webhooks": len(paths),
        "published_per_webhook": len(sent),
        "delivered": len(latencies),
        "expected": len(sent) * len(paths),
        "duplicates": len(arrivals) - len(first),
        "rate_per_webhook_eps": {
            "median": round(statistics.median(rates), 2),
            "min": round(min(rates), 2),
        },
        "latency_s": {
            "p50": round(percentile(latencies, 0.50), 4),
            "p99": round(percentile(latencies, 0.99), 4),
            "max": round(max(latencies, default=float("nan")), 4),
        },
    }


class Bench:
    def __init__(
        self,
        stack: Stack,
        http: aiohttp.ClientSession,
        producer: Producer,
        receivers: Receivers,
        amqp_url: str,
        prefix: str,
    ) -> None:
        self.stack = stack
        self.http = http
        self.producer = producer
        self.receivers = receivers
        self.amqp_url = amqp_url
        self.prefix = prefix

    def url(self, name: str) -> str:
        return next(s.url for s in self.stack.services if s.name == name)

    async def webhook(self, event: str, uri: str) -> str:
        body = {"event": event, "uri": uri}
        async with self.http.post(f"{self.url('router')}/webhooks", json=body, headers=ADMIN) as r:
            if r.status != 201:
                raise RuntimeError(f"webhook not created: {r.status} {await r.text()}")
            webhook_id: str = (await r.json())["id"]
            return webhook_id

    async def delete(self, webhook_id: str) -> None:
        async with self.http.delete(
            f"{self.url('router')}/webhooks/{webhook_id}", headers=ADMIN
        ) as response:
            if response.status != 204:
                raise RuntimeError(f"webhook not deleted: {response.status}")

    async def metrics(self, name: str) -> str:
        async with self.http.get(f"{self.url(name)}/metrics") as response:
            return await response.text()

    async def sender_metric(self, name: str, labels: str = "") -> float:
        texts = [await self.metrics(sender) for sender in SENDERS]
        return sum(metric_value(text, name, labels) for text in texts)

    async def publish_at_rate(
        self, event_type: str, rate: float, seconds: float
    ) -> dict[str, float]:
        """Publish `rate` events a second for `seconds`, on a fixed schedule; id -> publish time."""
        sent: dict[str, float] = {}
        start = time.monotonic()
        for n in range(round(rate * seconds)):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event_id = f"evt_{event_type}_{n}"
            sent[event_id] = time.monotonic()
            await self.producer.publish(event_type, {"n": n}, id=event_id)
        return sent

    async def publish_all(self, event_type: str, count: int) -> None:
        """Publish `count` events at once (in confirmed chunks)."""
        for start in range(0, count, PUBLISH_CHUNK):
            await asyncio.gather(
                *(
                    self.producer.publish(event_type, {"n": n}, id=f"evt_{event_type}_{n}")
                    for n in range(start, min(start + PUBLISH_CHUNK, count))
                )
            )

    async def wait_for_arrivals(self, prefix: str, expected: int) -> None:
        """Wait (at most DRAIN_S) until `expected` requests to `prefix` have arrived."""
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            if await self.receivers.count(prefix) >= expected:
                return
            await asyncio.sleep(0.2)

    async def settle(self) -> None:
        """Wait until no sender has a delivery in flight and the deliver queue is empty."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            in_flight = await self.sender_metric("hookline_deliveries_in_flight")
            depth = await message_count(self.amqp_url, f"{self.prefix}.deliver")
            if in_flight == 0 and depth == 0:
                return
            await asyncio.sleep(0.5)

    def cpu(self) -> dict[str, float]:
        return {s.name: cpu_seconds(s.process.pid) for s in self.stack.services}

    async def diagnostics(self) -> dict[str, float]:
        """Sender counters whose change over a phase says where the time went."""
        values = {}
        for reason in ("endpoint_busy", "circuit_open"):
            values[f"parked_{reason}"] = await self.sender_metric(
                "hookline_deliveries_parked_total", f'reason="{reason}"'
            )
        for outcome in ("delivered", "retry_scheduled", "cancelled"):
            values[outcome] = await self.sender_metric(
                "hookline_deliveries_total", f'outcome="{outcome}"'
            )
        return values

    async def phase(
        self, tag: str, webhooks: int, sleeping: int, rate: float, seconds: float
    ) -> dict[str, Any]:
        """`webhooks` webhooks on one event type, `sleeping` of them never answering in time."""
        healthy_paths = [f"/{tag}/{n}" for n in range(webhooks - sleeping)]
        ids = [await self.webhook(tag, f"{self.receivers.healthy_url}{p}") for p in healthy_paths]
        sleeper_ids = [
            await self.webhook(tag, f"{self.receivers.sleeper_url}/sleep") for _ in range(sleeping)
        ]
        cpu_before, counters_before = self.cpu(), await self.diagnostics()
        sent = await self.publish_at_rate(tag, rate, seconds)
        await self.wait_for_arrivals(f"/{tag}/", len(sent) * len(healthy_paths))
        summary = summarize(await self.receivers.take(f"/{tag}/"), sent, healthy_paths)
        summary["keeps_up"] = summary["rate_per_webhook_eps"]["min"] >= KEEPS_UP * rate
        summary["cpu_s"] = _delta(self.cpu(), cpu_before)
        summary["sender_counters"] = _delta(await self.diagnostics(), counters_before)
        if sleeping:
            summary["sleeper"] = await self.receivers.ask("sleeper")
        for webhook_id in ids + sleeper_ids:
            await self.delete(webhook_id)
        await self.settle()
        return summary

    async def backlog_phase(self, backlog: int, rate: float, seconds: float) -> dict[str, Any]:
        """`backlog` deliveries queued for a sleeping endpoint, then one healthy webhook."""
        sleeper_id = await self.webhook("backlog.sleep", f"{self.receivers.sleeper_url}/sleep")
        healthy_id = await self.webhook("backlog.ok", f"{self.receivers.healthy_url}/backlog/ok")
        routed = await self.sender_metric("hookline_deliveries_routed_total")
        await self.publish_all("backlog.sleep", backlog)
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            now = await self.sender_metric("hookline_deliveries_routed_total")
            if now >= routed + backlog:
                break
            await asyncio.sleep(0.2)
        cpu_before, counters_before = self.cpu(), await self.diagnostics()
        sleeper_before = await self.receivers.ask("sleeper")
        sent = await self.publish_at_rate("backlog.ok", rate, seconds)
        await self.wait_for_arrivals("/backlog/", len(sent))
        summary = summarize(await self.receivers.take("/backlog/"), sent, ["/backlog/ok"])
        summary["keeps_up"] = summary["rate_per_webhook_eps"]["min"] >= KEEPS_UP * rate
        summary["backlog"] = backlog
        summary["cpu_s"] = _delta(self.cpu(), cpu_before)
        summary["sender_counters"] = _delta(await self.diagnostics(), counters_before)
        sleeper_after = await self.receivers.ask("sleeper")
        summary["sleeper_attempts_meanwhile"] = (
            sleeper_after["attempts"] - sleeper_before["attempts"]
        )
        for webhook_id in (sleeper_id, healthy_id):
            await self.delete(webhook_id)
        await self.settle()
        return summary


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: round(after[key] - before.get(key, 0.0), 2) for key in after}


async def measure(
    stack: Stack, receivers: Receivers, amqp_url: str, prefix: str, args: argparse.Namespace
) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, Producer(amqp_url, prefix=prefix) as producer:
        bench = Bench(stack, http, producer, receivers, amqp_url, prefix)
        warmup = None
        if args.warmup_seconds > 0:
            warmup = await bench.phase("warm", args.webhooks, 0, args.rate, args.warmup_seconds)
        healthy = await bench.phase("all", args.webhooks, 0, args.rate, args.seconds)
        sleeping = await bench.phase("one", args.webhooks, 1, args.rate, args.seconds)
        backlog = await bench.backlog_phase(args.backlog, args.rate, args.backlog_seconds)
    with_rate = sleeping["rate_per_webhook_eps"]["median"]
    without_rate = healthy["rate_per_webhook_eps"]["median"]
    return {
        "rate_ratio_with_one_sleeping": round(with_rate / without_rate, 3)
        if without_rate
        else None,
        "warmup": warmup,
        "all_healthy": healthy,
        "one_sleeping": sleeping,
        "backlog": backlog,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per phase")
    parser.add_argument("--rate", type=float, default=30.0, help="events/s to each webhook")
    parser.add_argument("--webhooks", type=int, default=20)
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=0.0,
        help="an unmeasured phase like the first one, before it",
    )
    parser.add_argument("--backlog", type=int, default=600)
    parser.add_argument("--backlog-seconds", type=float, default=10.0)
    add_settings_option(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_of(args)
    amqp_url = os.environ.get("HOOKLINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = f"hlbench-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    receivers = Receivers()
    try:
        with running_stack(amqp_url, prefix, log_dir, SERVICES, **settings) as stack:
            results = asyncio.run(measure(stack, receivers, amqp_url, prefix, args))
    finally:
        receivers.stop()
    summary = {
        "prefix": prefix,
        "logs": str(log_dir),
        "settings": settings,
        "rate_eps": args.rate,
        "seconds": args.seconds,
        **results,
    }
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
