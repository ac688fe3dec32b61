"""`make bench`: how many deliveries a box sustains, how late they arrive, and what each costs,
beside the bare loop (the least a delivery worker can do) in the same run on the same broker.

    .venv/bin/python -m tools.bench.throughput [--runs 3] [--events 20000] [--senders 2]
        [--cases fanout1,fanout10,many] [--fanout10-events 2000] [--many-webhooks 20000]
        [--latency-seconds 10] [--out FILE] [--set NAME=VALUE …]

Run from a checkout. It starts the fast receiver (`fast_receiver`) in its own process, a router
and `--senders` senders on a prefix of its own against `HOOKLINE_AMQP_URL` (default: the local
broker), and publishes 1 KB events through the producer SDK with pipelined confirms. Cases:

- `fanout1`: one webhook on the event type.
- `fanout10`: ten webhooks on it (figures in deliveries).
- `many`: `--many-webhooks` pattern webhooks that do not match the event type, and one that does.

Each run of a case measures, in this order:

1. The bare loop (`bare_loop`): as many deliveries as the case, published to a quorum queue.
2. Hookline at saturation: every event published at once; deliveries / (last arrival - first
   publish). Also the CPU seconds of each process (and of the broker) per delivery.
3. Hookline at half that rate, open loop: latency from each event's scheduled send time to its
   arrival (p50/p95/p99).

A measurement is void unless every delivery is accounted for: arrived, or reported missing. The
summary gives, per case, the median, min and max over the runs of the ratio to the bare loop and
of each figure; the whole result goes to a JSON file. Every queue it declared is deleted after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from schemas.events import EventIn
from services.producer.sdk import Producer
from services.runtime.broker import Publisher
from tests.support.broker import message_count
from tests.support.observe import metric_value
from tests.support.processes import ADMIN_TOKEN, Stack, running_stack
from tools.bench.measures import (
    add_settings_option,
    bucket_counts,
    bucket_quantile,
    cores_busy,
    cpu_seconds,
    machine_cpu_seconds,
    percentile,
    rss_mb,
    settings_of,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PAD = "x" * 900  # makes each event about 1 KB
PUBLISH_CHUNK = 500
# A drain gives up when no delivery arrived for this long; what has not arrived is missing.
STALL_S = 30.0
SETTLE_S = 120.0
STARTUP_S = 60.0
CREATE_CONCURRENCY = 16


FANOUT_DURATION = "hookline_fanout_duration_seconds"


def broker_pid() -> int | None:
    """The local RabbitMQ node's Erlang VM: a beam.smp that is not a private test node."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"beam.smp" in command and b"rabbit" in command and b"/tmp/" not in command:
            return int(entry.name)
    return None


def quantiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        name: round(percentile(seconds, q) * 1000, 2)
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
    }


def spread(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


@dataclass(frozen=True)
class Case:
    name: str
    fanout: int
    events: int
    non_matching: int = 0

    @property
    def deliveries(self) -> int:
        return self.events * self.fanout


class Receiver:
    """The fast receiver in a child process, asked over HTTP."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.bench.fast_receiver", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    async def ask(self, http: aiohttp.ClientSession, what: str) -> dict[str, Any]:
        async with http.get(f"{self.url}/{what}") as response:
            answer: dict[str, Any] = await response.json()
            return answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Arrived:
    """What reached the receiver: first arrival per `<path> <id>`, and how many came twice."""

    first: dict[str, float]
    duplicates: int


class Bench:
    def __init__(
        self,
        stack: Stack,
        http: aiohttp.ClientSession,
        producer: Producer,
        publisher: Publisher,
        receiver: Receiver,
        amqp_url: str,
        prefix: str,
    ) -> None:
        self.stack = stack
        self.http = http
        self.producer = producer
        self.publisher = publisher
        self.receiver = receiver
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.broker = broker_pid()
        self.bare_pid = 0

    def pids(self) -> dict[str, int]:
        pids = {s.name: s.process.pid for s in self.stack.services if s.process.poll() is None}
        if self.broker is not None:
            pids["broker"] = self.broker
        return pids

    # --- the receiver ----------------------------------------------------------------------

    async def drain(self, expected: int) -> Arrived:
        """Wait until `expected` distinct deliveries arrived, or none came for STALL_S."""
        seen, last_progress = -1, time.monotonic()
        while time.monotonic() - last_progress < STALL_S:
            stats = await self.receiver.ask(self.http, "stats")
            if stats["distinct"] >= expected:
                break
            if stats["distinct"] > seen:
                seen, last_progress = stats["distinct"], time.monotonic()
            await asyncio.sleep(0.1)
        taken = await self.receiver.ask(self.http, "take")
        first: dict[str, float] = {}
        for key, at in zip(taken["ids"], taken["times"], strict=True):
            first.setdefault(key, at)
        return Arrived(first, len(taken["ids"]) - len(first))

    # --- the bare loop ----------------------------------------------------------------------

    @asynccontextmanager
    async def bare_worker(self) -> AsyncIterator[str]:
        """The bare loop's worker consuming a quorum queue of its own (yielded), deleted after."""
        queue = f"{self.prefix}.bare"
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
            worker = await asyncio.to_thread(
                start_bare_loop, self.amqp_url, queue, f"{self.receiver.url}/bare"
            )
            self.bare_pid = worker.pid
            try:
                yield queue
            finally:
                worker.terminate()
                worker.wait(20)
                if worker.stdout is not None:
                    worker.stdout.close()
                await channel.queue_delete(queue)

    async def bare(self, deliveries: int, tag: str) -> dict[str, Any]:
        async with self.bare_worker() as queue:
            await self.receiver.ask(self.http, "take")
            pids = {"worker": self.bare_pid, **({"broker": self.broker} if self.broker else {})}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            bodies = [event_body(f"{tag}-{n}", "bench.bare") for n in range(deliveries)]
            for at in range(0, deliveries, PUBLISH_CHUNK):
                await asyncio.gather(
                    *(
                        self.publisher.publish("", queue, body)
                        for body in bodies[at : at + PUBLISH_CHUNK]
                    )
                )
            arrived = await self.drain(deliveries)
            cpu = {n: cpu_seconds(pid) - cpu_before[n] for n, pid in pids.items()}
        return rate_figures(arrived, deliveries, started, cpu)

    async def bare_open_loop(self, rate: float, seconds: float, tag: str) -> dict[str, Any]:
        """The bare loop's latency at `rate`: what the broker and machine cost by themselves."""
        async with self.bare_worker() as queue:

            async def send(event_id: str) -> None:
                await self.publisher.publish("", queue, event_body(event_id, "bench.bare"))

            pids = {"worker": self.bare_pid, **({"broker": self.broker} if self.broker else {})}
            return await self.open_loop_of(send, rate, seconds, tag, fanout=1, pids=pids)

    # --- Hookline ---------------------------------------------------------------------------

    async def create_webhook(self, event: str, uri: str) -> str:
        body = {"event": event, "uri": uri}
        router = self.stack.url_of("router")
        async with self.http.post(f"{router}/webhooks", json=body, headers=ADMIN) as response:
            if response.status != 201:
                raise RuntimeError(f"webhook not created: {response.status}")
            webhook_id: str = (await response.json())["id"]
            return webhook_id

    async def create_non_matching(self, count: int) -> float:
        """`count` pattern webhooks that match none of the bench's events; seconds it took."""
        started = time.monotonic()
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)
        shapes = ("acct{n}.request.*", "tenant{n}.#", "*.x{n}.update", "acct{n}.#.done")

        async def one(n: int) -> None:
            async with limit:
                pattern = shapes[n % len(shapes)].format(n=n)
                await self.create_webhook(pattern, f"{self.receiver.url}/never")

        await asyncio.gather(*(one(n) for n in range(count)))
        return time.monotonic() - started

    async def publish_events(self, event_type: str, ids: Sequence[str]) -> None:
        events = [EventIn(type=event_type, id=i, data={"bench": i, "pad": PAD}) for i in ids]
        for at in range(0, len(events), PUBLISH_CHUNK):
            await self.producer.publish_events(events[at : at + PUBLISH_CHUNK])

    async def saturated(self, case: Case, tag: str) -> dict[str, Any]:
        await self.receiver.ask(self.http, "take")
        pids = self.pids()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        rss_before = {name: rss_mb(pid) for name, pid in pids.items() if name != "broker"}
        counters_before = await self.sender_counters()
        started = time.monotonic()
        await self.publish_events(f"bench.{case.name}", [f"{tag}-{n}" for n in range(case.events)])
        arrived = await self.drain(case.deliveries)
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        figures = rate_figures(arrived, case.deliveries, started, cpu)
        figures["rss_mb"] = {
            name: {"before": rss_before[name], "after": rss_mb(pid)}
            for name, pid in pids.items()
            if name != "broker"
        }
        counters = await self.sender_counters()
        figures["sender_counters"] = {
            name: value - counters_before[name] for name, value in counters.items()
        }
        return figures

    async def sender_metrics(self) -> list[str]:
        """Each running sender's metrics, as exposed."""
        texts = []
        for service in self.stack.services:
            if service.name.startswith("sender") and service.process.poll() is None:
                async with self.http.get(f"{service.url}/metrics") as response:
                    texts.append(await response.text())
        return texts

    async def fanout_buckets(self) -> dict[float, float]:
        """The senders' fan-out durations so far (taking an event to its deliveries made or
        confirmed), as cumulative bucket counts."""
        totals: dict[float, float] = {}
        for text in await self.sender_metrics():
            for bound, count in bucket_counts(text, FANOUT_DURATION).items():
                totals[bound] = totals.get(bound, 0.0) + count
        return totals

    async def sender_counters(self) -> dict[str, float]:
        """Sender counters whose change says where the time went (parked, retried)."""
        texts = await self.sender_metrics()
        samples = {
            "first_attempts_routed_here": ("hookline_first_attempts_total", 'where="routed_here"'),
            "first_attempts_queued": ("hookline_first_attempts_total", 'where="deliver_queue"'),
            "parked": ("hookline_deliveries_parked_total", 'reason="endpoint_busy"'),
            "log_messages": ("hookline_delivery_log_batch_records_count", ""),
            "log_records": ("hookline_delivery_log_batch_records_sum", ""),
            "retried": ("hookline_deliveries_total", 'outcome="retry_scheduled"'),
        }
        return {
            name: sum(metric_value(text, metric, labels) for text in texts)
            for name, (metric, labels) in samples.items()
        }

    async def open_loop(self, case: Case, rate: float, seconds: float, tag: str) -> dict[str, Any]:
        """Hookline's latency at `rate` events a second, published through the SDK."""
        event_type = f"bench.{case.name}"

        async def send(event_id: str) -> None:
            await self.producer.publish(event_type, {"bench": event_id, "pad": PAD}, id=event_id)

        before = await self.fanout_buckets()
        figures = await self.open_loop_of(
            send, rate, seconds, tag, fanout=case.fanout, pids=self.pids()
        )
        after = await self.fanout_buckets()
        spent = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
        # Where the latency goes: the part a sender spends on an event from taking it off the
        # route queue (its first attempts included), to the histogram's bucket bounds.
        figures["sender_fanout_ms_at_most"] = {
            name: round(bucket_quantile(spent, fraction) * 1000, 2)
            for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        }
        return figures

    async def open_loop_of(
        self,
        send: Callable[[str], Awaitable[None]],
        rate: float,
        seconds: float,
        tag: str,
        *,
        fanout: int,
        pids: Mapping[str, int],
    ) -> dict[str, Any]:
        """Events sent at `rate` a second on a fixed schedule (open loop: a late one does not
        delay the next); latency from each one's due time to its arrival."""
        await self.receiver.ask(self.http, "take")
        count = max(1, round(rate * seconds))
        due: dict[str, float] = {}
        confirmed: dict[str, float] = {}

        started: dict[str, float] = {}

        async def timed(event_id: str) -> None:
            started[event_id] = time.monotonic()
            await send(event_id)
            confirmed[event_id] = time.monotonic()

        sends: list[asyncio.Task[None]] = []
        own_cpu_before = cpu_seconds(os.getpid())
        machine_before = machine_cpu_seconds()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.monotonic() + 0.1
        for n in range(count):
            event_id = f"{tag}-{n}"
            due[event_id] = start + n / rate
            delay = due[event_id] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sends.append(asyncio.create_task(timed(event_id)))
        await asyncio.gather(*sends)
        own_cpu_s = cpu_seconds(os.getpid()) - own_cpu_before
        # Latency at a rate is queueing when the box is busy: how busy it was meanwhile.
        machine_cores_busy = cores_busy(machine_before, machine_cpu_seconds())
        elapsed_s = time.monotonic() - start
        process_cores = {
            name: round((cpu_seconds(pid) - cpu_before[name]) / elapsed_s, 2)
            for name, pid in pids.items()
        }
        arrived = await self.drain(count * fanout)
        latencies = [at - due[key.split(" ", 1)[1]] for key, at in arrived.first.items()]
        # When the load generator's publishes were confirmed, from their due time: a confirm
        # comes after the broker stored the event in every queue it routed it to.
        confirm_lags = [confirmed[event_id] - due[event_id] for event_id in due]
        # When the load generator got round to each publish: its own lateness, on a busy box.
        start_lags = [started[event_id] - due[event_id] for event_id in due]
        return {
            "rate_eps": round(rate, 1),
            "events": count,
            "missing": count * fanout - len(arrived.first),
            "duplicates": arrived.duplicates,
            "latency_ms": quantiles_ms(latencies),
            "publish_started_after_ms": quantiles_ms(start_lags),
            "publish_confirmed_after_ms": quantiles_ms(confirm_lags),
            # The load generator shares the machine: its CPU share while publishing.
            "load_generator_cpu_share": round(own_cpu_s / elapsed_s, 3),
            "machine_cores_busy": machine_cores_busy,
            "cores_busy_by_process": process_cores,
            "machine_cores": os.cpu_count(),
        }

    async def settle(self) -> None:
        """Wait until the route and deliver queues are empty (bounded)."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            depths = [
                await message_count(self.amqp_url, f"{self.prefix}.{name}")
                for name in ("route", "deliver")
            ]
            if not any(depths):
                return
            await asyncio.sleep(0.5)

    async def start_time(self, service: str) -> dict[str, float]:
        """Start one more `service` now; seconds until it answers /readyz 200, and its memory."""
        started = time.monotonic()
        process = await asyncio.to_thread(self.stack.start, service, f"{service}-late")
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            async with self.http.get(f"{process.url}/readyz") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.05)
        ready_s = time.monotonic() - started
        memory = rss_mb(process.process.pid)
        await asyncio.to_thread(process.stop)
        return {"ready_s": round(ready_s, 2), "rss_mb": memory}


def start_bare_loop(amqp_url: str, queue: str, url: str) -> subprocess.Popen[str]:
    """The bare loop's worker, consuming `queue` once this returns."""
    command = ["-m", "tools.bench.bare_loop", "--amqp-url", amqp_url, "--queue", queue]
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, *command, "--url", url], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "READY":
        worker.kill()
        raise RuntimeError("the bare loop did not start")
    return worker


def event_body(event_id: str, event_type: str) -> bytes:
    return json.dumps(
        {"id": event_id, "type": event_type, "data": {"bench": event_id, "pad": PAD}}
    ).encode()


def rate_figures(
    arrived: Arrived, deliveries: int, started: float, cpu: dict[str, float]
) -> dict[str, Any]:
    delivered = len(arrived.first)
    last = max(arrived.first.values(), default=started)
    rate = delivered / (last - started) if last > started else 0.0
    return {
        "deliveries": deliveries,
        "missing": deliveries - delivered,
        "duplicates": arrived.duplicates,
        "rate_dps": round(rate, 1),
        "cpu_ms_per_delivery": {
            name: round(seconds * 1000 / max(delivered, 1), 3) for name, seconds in cpu.items()
        },
    }


async def run_case(
    bench: Bench, case: Case, runs: int, latency_s: float, latency_rate: float
) -> dict[str, Any]:
    setup: dict[str, Any] = {}
    if case.non_matching:
        setup["created_s"] = round(await bench.create_non_matching(case.non_matching), 1)
        rss_before = {n: rss_mb(p) for n, p in bench.pids().items() if n != "broker"}
        setup["rss_mb"] = rss_before
        setup["sender_start"] = await bench.start_time("sender")
    for n in range(case.fanout):
        await bench.create_webhook(f"bench.{case.name}", f"{bench.receiver.url}/{case.name}/{n}")
    measured = []
    for run in range(runs):
        tag = f"{case.name}-{run}-{uuid.uuid4().hex[:6]}"
        bare = await bench.bare(case.deliveries, f"{tag}-bare")
        hookline = await bench.saturated(case, f"{tag}-sat")
        await bench.settle()
        rate = latency_rate or hookline["rate_dps"] / 2 / case.fanout
        latency = await bench.open_loop(case, rate, latency_s, f"{tag}-lat")
        bare_latency = await bench.bare_open_loop(rate * case.fanout, latency_s, f"{tag}-blat")
        await bench.settle()
        ratio = hookline["rate_dps"] / bare["rate_dps"] if bare["rate_dps"] else 0.0
        measured.append(
            {
                "ratio": round(ratio, 3),
                "bare": bare,
                "hookline": hookline,
                "half_rate": latency,
                "bare_half_rate": bare_latency,
            }
        )
        print(
            f"{case.name} run {run + 1}: hookline {hookline['rate_dps']}/s, "
            f"bare {bare['rate_dps']}/s, ratio {ratio:.2f}, "
            f"p50 {latency['latency_ms']['p50']} ms, p99 {latency['latency_ms']['p99']} ms "
            f"(bare {bare_latency['latency_ms']['p50']} / {bare_latency['latency_ms']['p99']} ms), "
            f"cores busy meanwhile {latency['machine_cores_busy']} "
            f"(bare {bare_latency['machine_cores_busy']}) of {latency['machine_cores']}",
            file=sys.stderr,
            flush=True,
        )
    return {"case": case.__dict__, "setup": setup, "runs": measured, "summary": summarize(measured)}


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    void = any(r[part]["missing"] for r in runs for part in ("bare", "hookline", "half_rate"))
    cpu_names = runs[0]["hookline"]["cpu_ms_per_delivery"].keys()
    return {
        "void": void,
        "ratio": spread([r["ratio"] for r in runs]),
        "hookline_dps": spread([r["hookline"]["rate_dps"] for r in runs], 1),
        "bare_dps": spread([r["bare"]["rate_dps"] for r in runs], 1),
        "latency_ms_at_half_rate": {
            q: spread([r["half_rate"]["latency_ms"][q] for r in runs], 2)
            for q in ("p50", "p95", "p99")
        },
        "bare_latency_ms_at_that_rate": {
            q: spread([r["bare_half_rate"]["latency_ms"][q] for r in runs], 2)
            for q in ("p50", "p95", "p99")
        },
        "machine_cores_busy_at_half_rate": spread(
            [r["half_rate"]["machine_cores_busy"] for r in runs], 2
        ),
        "bare_machine_cores_busy_at_that_rate": spread(
            [r["bare_half_rate"]["machine_cores_busy"] for r in runs], 2
        ),
        "cpu_ms_per_delivery": {
            name: spread([r["hookline"]["cpu_ms_per_delivery"].get(name, 0.0) for r in runs])
            for name in cpu_names
        },
        "bare_cpu_ms_per_delivery": {
            name: spread([r["bare"]["cpu_ms_per_delivery"][name] for r in runs])
            for name in runs[0]["bare"]["cpu_ms_per_delivery"]
        },
    }


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def cases_of(args: argparse.Namespace) -> list[Case]:
    known = {
        "fanout1": Case("fanout1", 1, args.events),
        "fanout10": Case("fanout10", 10, args.fanout10_events),
        "many": Case("many", 1, args.events, non_matching=args.many_webhooks),
    }
    return [known[name] for name in args.cases.split(",")]


async def measure(
    stack: Stack, receiver: Receiver, amqp_url: str, prefix: str, args: argparse.Namespace
) -> dict[str, Any]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with (
        connection,
        aiohttp.ClientSession() as http,
        Producer(amqp_url, prefix=prefix) as producer,
    ):
        publisher = await Publisher.open(connection, 30.0)
        bench = Bench(stack, http, producer, publisher, receiver, amqp_url, prefix)
        results = {}
        for case in cases_of(args):
            results[case.name] = await run_case(
                bench, case, args.runs, args.latency_seconds, args.latency_rate
            )
        return results


@contextmanager
def hookline(amqp_url: str, prefix: str, senders: int, settings: dict[str, str]) -> Iterator[Stack]:
    services = [("router", "router"), *[("sender", f"sender-{n + 1}") for n in range(senders)]]
    log_dir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    with running_stack(amqp_url, prefix, log_dir, services, **settings) as stack:
        try:
            yield stack
        except BaseException:
            print(f"the services' logs are kept in {log_dir}", file=sys.stderr)
            raise
    # A run that went through leaves nothing behind.
    shutil.rmtree(log_dir, ignore_errors=True)


def run(args: argparse.Namespace, prefix: str | None = None) -> dict[str, Any]:
    """Every case, `args.runs` times, on an install of its own (`prefix`, or a new one)."""
    settings = settings_of(args)
    amqp_url = os.environ.get("HOOKLINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = prefix or f"hlbench-{uuid.uuid4().hex[:8]}"
    receiver = Receiver()
    try:
        with hookline(amqp_url, prefix, args.senders, settings) as stack:
            results = asyncio.run(measure(stack, receiver, amqp_url, prefix, args))
    finally:
        receiver.stop()
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "senders": args.senders,
        "runs": args.runs,
        "settings": settings,
        "cases": results,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--fanout10-events", type=int, default=2_000)
    parser.add_argument("--many-webhooks", type=int, default=20_000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--cases", default="fanout1,fanout10,many")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=0.0,
        help="events/s of the latency phase (default: half the saturated rate)",
    )
    parser.add_argument("--out", type=Path, default=None, help="the JSON result file")
    add_settings_option(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    out = args.out or Path("bench-results") / f"bench-{result['at'].replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"result: {out}")
    for name, case in result["cases"].items():
        print(f"{name}: {table_line(case['summary'])}")


def table_line(summary: dict[str, Any]) -> str:
    """One case's medians (min-max) in a line."""

    def figure(values: dict[str, float]) -> str:
        return f"{values['median']:g} ({values['min']:g}-{values['max']:g})"

    latency = summary["latency_ms_at_half_rate"]
    bare_latency = summary["bare_latency_ms_at_that_rate"]
    cpu = ", ".join(
        f"{name} {values['median']:g}" for name, values in summary["cpu_ms_per_delivery"].items()
    )
    bare_cpu = ", ".join(
        f"{name} {values['median']:g}"
        for name, values in summary["bare_cpu_ms_per_delivery"].items()
    )
    return (
        f"{'VOID (deliveries missing) ' if summary['void'] else ''}"
        f"ratio {figure(summary['ratio'])}; hookline {figure(summary['hookline_dps'])}/s, "
        f"bare {figure(summary['bare_dps'])}/s; at half rate p50 {figure(latency['p50'])} ms, "
        f"p99 {figure(latency['p99'])} ms (bare p50 {figure(bare_latency['p50'])} ms, "
        f"p99 {figure(bare_latency['p99'])} ms), cores busy meanwhile "
        f"{figure(summary['machine_cores_busy_at_half_rate'])} "
        f"(bare {figure(summary['bare_machine_cores_busy_at_that_rate'])}); "
        f"CPU ms/delivery {cpu} (bare: {bare_cpu})"
    )


if __name__ == "__main__":
    main()
