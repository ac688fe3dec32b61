"""Subscribers cannot hurt delivery: hostile endpoints side by side with healthy ones.

One stack (a router, a producer, two senders) with compressed settings. Every hostile behaviour
of `HostileReceiver` gets a webhook, beside healthy webhooks on a recording `Receiver`. What is
checked is counted, not timed: every healthy event arrives, every hostile attempt ends by the
deadline, no sender holds more than its per-endpoint limit of connections to a sleeping endpoint,
its memory stays flat, and a backlog for a sleeping endpoint does not stand in a healthy one's way.
Each check is a function, shown to fail on data that breaks it (doctored, or from a stack whose
isolation is turned off).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from schemas.deliveries import DeliveryAttempted
from tests.conftest import RUN_PREFIX
from tests.support.broker import message_count
from tests.support.hostile import Ending, Exchange, HostileReceiver
from tests.support.observe import connections_to, following, metric_value, rss_bytes
from tests.support.processes import ADMIN_TOKEN, INGEST_TOKEN, Stack, running_stack
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
PREFIX = f"{RUN_PREFIX}-isolation"

TIMEOUT_S = 2.0
SCHEDULE_S = (0.5, 2.0)
MAX_ATTEMPTS = len(SCHEDULE_S) + 1
RETRY_AFTER_S = 2
ENDPOINT_LIMIT = 2
SETTINGS = {
    "attempt_timeout_s": f"{TIMEOUT_S:g}",
    "retry_schedule": ",".join(f"{delay:g}" for delay in SCHEDULE_S),
    "park_delays": "0.5,1,2",
    "endpoint_concurrency": str(ENDPOINT_LIMIT),
    "circuit_failures": "3",
    "circuit_open_s": "1",
    "circuit_max_open_s": "2",
}
SENDERS = ("sender-1", "sender-2")
SERVICES = (("router", "router"), ("producer", "producer"), *(("sender", s) for s in SENDERS))

# An attempt ends by its deadline; as much again is allowed for a loaded machine to see it end.
# Hostile answers left alone last 60 s (/sleep) or for ever (/silent, /trickle-head).
ENDS_BY_S = 2 * TIMEOUT_S
# A sender's RSS may grow this much after warm-up (/huge alone sends 50 MiB).
RSS_GROWTH_MAX = 20_000_000
# Deliveries queued for a sleeping endpoint before a healthy webhook's events.
BACKLOG = 600
HEALTHY_AFTER_BACKLOG = 30

HEALTHY_WEBHOOKS = 4
HEALTHY_EVENTS = 40  # one every 0.2 s to each healthy webhook
HOSTILE_EVENTS = 4  # one every 2 s to each hostile webhook
TIMED_OUT = f"timeout after {TIMEOUT_S:g}s"
CRASH_EVENTS = {"consumer.handler_crashed", "message.quarantined"}


@dataclass(frozen=True)
class Expected:
    """How every delivery to a hostile path ends: its last outcome, after how many attempts, and
    what each attempt got."""

    outcome: str
    attempts: int
    status: int | None
    error_prefix: str | None = None


# Every hostile path but /gone, which disables its webhook and is checked on its own.
HOSTILE = {
    "/trickle": Expected("delivered", 1, 200),  # the status line decides
    "/huge": Expected("delivered", 1, 200),
    "/endless": Expected("delivered", 1, 200),
    "/trickle-head": Expected("dead_lettered", MAX_ATTEMPTS, None, TIMED_OUT),
    "/silent": Expected("dead_lettered", MAX_ATTEMPTS, None, TIMED_OUT),
    "/redirect": Expected("dead_lettered", MAX_ATTEMPTS, 302),
    "/redirect/301": Expected("dead_lettered", MAX_ATTEMPTS, 301),
    "/redirect/303": Expected("dead_lettered", MAX_ATTEMPTS, 303),
    "/redirect/307": Expected("dead_lettered", MAX_ATTEMPTS, 307),
    "/redirect/308": Expected("dead_lettered", MAX_ATTEMPTS, 308),
    "/bad-reason": Expected("dead_lettered", MAX_ATTEMPTS, 500, "500 Bad"),
    "/long-reason": Expected("dead_lettered", MAX_ATTEMPTS, None, "unreadable response"),
    "/rate-limited": Expected("dead_lettered", MAX_ATTEMPTS, 429, "429 Too Many Requests"),
}
SLEEPER = Expected("dead_lettered", MAX_ATTEMPTS, None, TIMED_OUT)  # /sleep, on its own port
TERMINAL = {"delivered", "dead_lettered", "cancelled"}


# --- the checks: each returns what breaks it, so a test can show it fails ------------------------


def late_exchanges(exchanges: Sequence[Exchange], now: float, ends_by_s: float) -> list[str]:
    """Exchanges that ended more than `ends_by_s` after their request, or are open and older."""
    late = []
    for exchange in exchanges:
        end = exchange.ended_at if exchange.ended_at is not None else now
        if end - exchange.at > ends_by_s:
            late.append(f"{exchange.path} lasted {end - exchange.at:.2f}s ({exchange.ended})")
    return late


def long_attempts(records: Sequence[DeliveryAttempted], ends_by_s: float) -> list[str]:
    """Recorded attempts that took longer than `ends_by_s`."""
    return [
        f"{record.delivery_id}/{record.attempt} took {record.duration_s}s"
        for record in records
        if record.duration_s is not None and record.duration_s > ends_by_s
    ]


def over_limit(peaks: Mapping[str, int], limit: int) -> dict[str, int]:
    """Senders seen holding more than `limit` connections to one endpoint at once."""
    return {name: peak for name, peak in peaks.items() if peak > limit}


def rss_growth(samples: Sequence[int], baseline: int) -> int:
    """How far the RSS rose above its value after warm-up."""
    return max((sample - baseline for sample in samples), default=0)


def early_retries(exchanges: Sequence[Exchange], wait_s: float) -> list[float]:
    """Gaps between two attempts of one delivery (same `webhook-id`) shorter than `wait_s`."""
    by_delivery: dict[str, list[float]] = defaultdict(list)
    for exchange in exchanges:
        by_delivery[exchange.headers["webhook-id"]].append(exchange.at)
    gaps = [
        later - earlier
        for times in by_delivery.values()
        for earlier, later in zip(sorted(times), sorted(times)[1:], strict=False)
    ]
    return [gap for gap in gaps if gap < wait_s]


def tried_before(exchanges: Sequence[Exchange], moment: float) -> int:
    """Distinct deliveries tried at least once by `moment`."""
    return len({e.headers["webhook-id"] for e in exchanges if e.at <= moment})


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A router, a producer and two senders with isolation on, compressed settings."""
    with running_stack(
        amqp_url, PREFIX, tmp_path_factory.mktemp("isolation-logs"), SERVICES, **SETTINGS
    ) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def healthy() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile(healthy: Receiver) -> AsyncIterator[HostileReceiver]:
    """Every misbehaviour; its redirects point at the healthy receiver, which never sees them."""
    server = HostileReceiver(
        redirect_to=f"{healthy.url}/redirected", retry_after=str(RETRY_AFTER_S)
    )
    await server.start()
    yield server
    await server.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def sender_pids(stack: Stack) -> dict[str, int]:
    return {s.name: s.process.pid for s in stack.services if s.name.startswith("sender")}


async def create_webhook(http: aiohttp.ClientSession, stack: Stack, event: str, uri: str) -> str:
    body = {"event": event, "uri": uri}
    async with http.post(f"{stack.url_of('router')}/webhooks", json=body, headers=ADMIN) as r:
        assert r.status == 201, await r.text()
        webhook_id: str = (await r.json())["id"]
        return webhook_id


async def get_webhook(http: aiohttp.ClientSession, stack: Stack, webhook_id: str) -> Any:
    async with http.get(f"{stack.url_of('router')}/webhooks/{webhook_id}", headers=ADMIN) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def publish(http: aiohttp.ClientSession, stack: Stack, events: list[dict[str, Any]]) -> None:
    async with http.post(f"{stack.url_of('producer')}/events", json=events, headers=INGEST) as r:
        assert r.status == 202, await r.text()


async def senders_metric(http: aiohttp.ClientSession, stack: Stack, name: str) -> float:
    """A counter summed over the running senders (they route, too)."""
    total = 0.0
    for service in stack.services:
        if service.name.startswith("sender") and service.process.poll() is None:
            async with http.get(f"{service.url}/metrics") as response:
                total += metric_value(await response.text(), name)
    return total


@dataclass
class Watch:
    """While it runs: the most connections each sender held to `port` at once, and each sender's
    RSS.

    Connections are counted as the kernel sees them, per sender process. The hostile receiver's own
    count lags: it notices a client's close only when it reads the EOF, so a sender that closes a
    timed-out connection and opens the next one at once is briefly counted twice there (seen: 5
    open at the receiver while each of two senders held at most 2).
    """

    pids: Mapping[str, int]
    port: int
    peaks: dict[str, int] = field(default_factory=dict)
    rss: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        rounds = 0
        while True:
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks.get(name, 0), connections_to(pid, self.port))
                if rounds % 25 == 0:
                    self.rss[name].append(rss_bytes(pid))
            rounds += 1
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> Watch:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # a sampling error fails the test
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def crash_lines(stack: Stack) -> list[dict[str, Any]]:
    return [
        line
        for service in stack.services
        for line in service.log_lines()
        if line.get("event") in CRASH_EVENTS
    ]


# --- the tests --------------------------------------------------------------------------------


async def test_the_checks_catch_what_they_look_for() -> None:
    """Each check flags data that breaks it and passes data that does not."""

    def exchange(path: str, at: float, ended_at: float | None, delivery: str = "msg_1") -> Exchange:
        return Exchange(
            "POST", path, "", {"webhook-id": delivery}, b"", at, ended=None, ended_at=ended_at
        )

    within = exchange("/sleep", 10.0, 10.0 + TIMEOUT_S)
    assert late_exchanges([within], now=100.0, ends_by_s=ENDS_BY_S) == []
    assert late_exchanges([exchange("/sleep", 10.0, 70.0)], now=100.0, ends_by_s=ENDS_BY_S)
    assert late_exchanges([exchange("/silent", 10.0, None)], now=100.0, ends_by_s=ENDS_BY_S)
    assert late_exchanges([exchange("/silent", 99.0, None)], now=100.0, ends_by_s=ENDS_BY_S) == []

    def attempt(duration_s: float) -> DeliveryAttempted:
        return DeliveryAttempted.model_validate(
            {
                "delivery_id": "msg_1",
                "event_id": "evt_1",
                "event_type": "t",
                "webhook_id": "wh_1",
                "attempt": 1,
                "at": "2026-01-01T00:00:00Z",
                "outcome": "retry_scheduled",
                "duration_s": duration_s,
            }
        )

    assert long_attempts([attempt(TIMEOUT_S)], ENDS_BY_S) == []
    assert long_attempts([attempt(60.0)], ENDS_BY_S)

    assert over_limit({"sender-1": ENDPOINT_LIMIT}, ENDPOINT_LIMIT) == {}
    assert over_limit({"sender-1": ENDPOINT_LIMIT + 1}, ENDPOINT_LIMIT) == {
        "sender-1": ENDPOINT_LIMIT + 1
    }

    assert rss_growth([100_000_000, 110_000_000], 100_000_000) <= RSS_GROWTH_MAX
    assert rss_growth([100_000_000, 160_000_000], 100_000_000) > RSS_GROWTH_MAX

    waited = [exchange("/rate-limited", 1.0, 1.1), exchange("/rate-limited", 3.5, 3.6)]
    assert early_retries(waited, RETRY_AFTER_S) == []
    hurried = [exchange("/rate-limited", 1.0, 1.1), exchange("/rate-limited", 1.6, 1.7)]
    assert early_retries(hurried, RETRY_AFTER_S) == [pytest.approx(0.6)]

    backlog = [exchange("/sleep", float(n), None, f"msg_{n}") for n in range(10)]
    assert tried_before(backlog, 2.5) == 3


async def test_hostile_endpoints_do_not_hurt_healthy_ones(
    stack: Stack,
    healthy: Receiver,
    hostile: HostileReceiver,
    http: aiohttp.ClientSession,
    amqp_url: str,
) -> None:
    """While every hostile endpoint misbehaves, healthy webhooks get every event, and each hostile
    attempt is bounded in time, connections and memory."""
    sleeper = HostileReceiver()  # /sleep on a port of its own, so its connections can be counted
    await sleeper.start()
    try:
        await _hostile_and_healthy(stack, healthy, hostile, sleeper, http, amqp_url)
    finally:
        await sleeper.stop()


async def _hostile_and_healthy(
    stack: Stack,
    healthy: Receiver,
    hostile: HostileReceiver,
    sleeper: HostileReceiver,
    http: aiohttp.ClientSession,
    amqp_url: str,
) -> None:
    healthy_ids = [
        await create_webhook(http, stack, "iso.healthy", f"{healthy.url}/healthy/{n}")
        for n in range(HEALTHY_WEBHOOKS)
    ]
    hostile_ids = {
        path: await create_webhook(http, stack, "iso.hostile", f"{hostile.url}{path}")
        for path in HOSTILE
    }
    gone_id = await create_webhook(http, stack, "iso.hostile", f"{hostile.url}/gone")
    sleeper_id = await create_webhook(http, stack, "iso.hostile", f"{sleeper.url}/sleep")
    healthy_events = [f"evt_healthy_{n}" for n in range(HEALTHY_EVENTS)]
    hostile_events = [f"evt_hostile_{n}" for n in range(HOSTILE_EVENTS)]
    every_hostile = {**hostile_ids, "/sleep": sleeper_id}

    def settled_events(webhook_id: str) -> set[str]:
        return {r.event_id for r in log.of_webhook(webhook_id) if r.outcome in TERMINAL}

    def all_settled() -> bool:
        return all(
            settled_events(webhook_id) >= set(hostile_events)
            for webhook_id in every_hostile.values()
        ) and all(settled_events(webhook_id) >= set(healthy_events) for webhook_id in healthy_ids)

    def warmed_up() -> bool:
        """Every hostile path has had an attempt end."""
        ended = {e.path for e in [*hostile.exchanges, *sleeper.exchanges] if e.ended is not None}
        return ended >= {*HOSTILE, "/gone", "/sleep"}

    async def publish_for_a_while() -> None:
        every = HEALTHY_EVENTS // HOSTILE_EVENTS
        for n, event_id in enumerate(healthy_events):
            events = [{"type": "iso.healthy", "id": event_id, "data": {"n": n}}]
            if n % every == 0:
                events.append({"type": "iso.hostile", "id": hostile_events[n // every], "data": {}})
            await publish(http, stack, events)
            await asyncio.sleep(0.2)

    pids = sender_pids(stack)
    async with (
        following(amqp_url, f"{PREFIX}.deliveries.log") as log,
        Watch(pids, port_of(sleeper.url)) as watch,
    ):
        publishing = asyncio.create_task(publish_for_a_while())
        await eventually(warmed_up, timeout_s=30)
        baseline = {name: rss_bytes(pid) for name, pid in pids.items()}
        rss_seen = {name: len(watch.rss[name]) for name in pids}
        await publishing
        await log.wait_until(all_settled, timeout_s=90)
        expected_arrivals = {
            (f"/healthy/{n}", event_id)
            for n in range(HEALTHY_WEBHOOKS)
            for event_id in healthy_events
        }
        await healthy.wait_for(len(expected_arrivals), timeout_s=30)
        await hostile.wait_until_closed(timeout_s=30)
        await sleeper.wait_until_closed(timeout_s=30)
        await asyncio.sleep(1.0)  # RSS samples once everything settled
    now = asyncio.get_running_loop().time()

    # Every healthy event arrived, to the webhook it was for, and nothing else did.
    arrivals = {(request.path, request.json()["id"]) for request in healthy.requests}
    assert arrivals == expected_arrivals
    assert healthy.to("/redirected") == []  # no redirect was followed

    # Every hostile delivery ended as its path makes it end, attempt by attempt.
    for path, webhook_id in every_hostile.items():
        expected = SLEEPER if path == "/sleep" else HOSTILE[path]
        by_delivery: dict[str, list[DeliveryAttempted]] = defaultdict(list)
        for record in log.of_webhook(webhook_id):
            by_delivery[record.event_id].append(record)
        assert set(by_delivery) == set(hostile_events), path
        for attempts in by_delivery.values():
            assert [r.attempt for r in attempts] == list(range(1, expected.attempts + 1)), path
            assert attempts[-1].outcome == expected.outcome, (path, attempts[-1])
            assert all(r.outcome == "retry_scheduled" for r in attempts[:-1]), path
            for record in attempts:
                assert record.status_code == expected.status, (path, record)
                if expected.error_prefix:
                    assert record.error is not None, (path, record)
                    assert record.error.startswith(expected.error_prefix), (path, record)
                    assert len(record.error.encode()) <= 1024

    # /gone: dead-lettered at once, and the webhook disabled with its reason.
    gone_records = log.of_webhook(gone_id)
    assert any(r.outcome == "dead_lettered" and r.status_code == 410 for r in gone_records)
    assert all(
        r.outcome == "cancelled" or (r.outcome == "dead_lettered" and r.status_code == 410)
        for r in gone_records
    ), gone_records
    gone = await get_webhook(http, stack, gone_id)
    assert gone["disabled"] is True
    assert "410" in (gone["disabled_reason"] or "")

    # Each attempt ended by the deadline, as the receivers and as the senders saw it.
    assert len(hostile.exchanges) >= len(HOSTILE) * HOSTILE_EVENTS
    assert late_exchanges([*hostile.exchanges, *sleeper.exchanges], now, ENDS_BY_S) == []
    assert long_attempts(log.records, ENDS_BY_S) == []
    assert all(e.ended is Ending.CLIENT_CLOSED for e in sleeper.exchanges)

    # A 429's Retry-After was waited out, as far as the schedule allows.
    waited_s = min(RETRY_AFTER_S, max(SCHEDULE_S))
    rate_limited = hostile.to("/rate-limited")
    assert len(rate_limited) == HOSTILE_EVENTS * MAX_ATTEMPTS
    assert early_retries(rate_limited, waited_s) == []
    retries = [
        r for r in log.of_webhook(hostile_ids["/rate-limited"]) if r.outcome == "retry_scheduled"
    ]
    assert retries
    assert all((r.next_attempt_in_s or 0) >= waited_s for r in retries)

    # At no moment more than the limit of connections per sender to the sleeping endpoint.
    print(f"connections to the sleeper, most at once per sender: {watch.peaks}")
    assert over_limit(watch.peaks, ENDPOINT_LIMIT) == {}
    assert max(watch.peaks.values()) >= 1  # the sampling saw them

    # Memory stays flat after warm-up, with 50 MiB bodies and endless ones on offer.
    for name in pids:
        later = watch.rss[name][rss_seen[name] :]
        assert len(later) >= 2, name
        growth = rss_growth(later, baseline[name])
        print(f"{name}: RSS {baseline[name] / 1e6:.1f} MB after warm-up, +{growth / 1e6:.1f} MB")
        assert growth <= RSS_GROWTH_MAX, f"{name} grew {growth / 1e6:.1f} MB after warm-up"

    assert crash_lines(stack) == []
    assert await message_count(amqp_url, f"{PREFIX}.quarantine") == 0


async def test_a_client_that_follows_redirects_reaches_the_target(
    healthy: Receiver, http: aiohttp.ClientSession
) -> None:
    """Negative control: a client that follows a hostile redirect does reach the healthy receiver,
    so the check that no sender did can fail."""
    control = HostileReceiver(redirect_to=f"{healthy.url}/redirected-control")
    await control.start()
    try:
        async with http.post(f"{control.url}/redirect/307", data=b"{}") as response:
            assert response.status == 200
    finally:
        await control.stop()
    assert len(healthy.to("/redirected-control")) == 1


@dataclass
class BacklogRun:
    """What one backlog run saw."""

    healthy_arrivals: list[float]
    backlog_exchanges: list[Exchange]
    peaks: dict[str, int]


async def run_backlog(
    stack: Stack, healthy: Receiver, http: aiohttp.ClientSession, tag: str
) -> BacklogRun:
    """Queue BACKLOG deliveries for a sleeping endpoint, then publish to a healthy webhook; wait
    until the healthy events all arrived."""
    sleeper = HostileReceiver()
    await sleeper.start()
    try:
        sleeper_id = await create_webhook(http, stack, f"{tag}.sleep", f"{sleeper.url}/sleep")
        await create_webhook(http, stack, f"{tag}.ok", f"{healthy.url}/{tag}")
        routed = await senders_metric(http, stack, "hookline_deliveries_routed_total")
        async with Watch(sender_pids(stack), port_of(sleeper.url)) as watch:
            await publish(
                http,
                stack,
                [
                    {"type": f"{tag}.sleep", "id": f"evt_{tag}_{n}", "data": {}}
                    for n in range(BACKLOG)
                ],
            )

            async def queued() -> bool:
                now = await senders_metric(http, stack, "hookline_deliveries_routed_total")
                return now >= routed + BACKLOG

            await eventually(queued, timeout_s=30, poll_s=0.2)
            for n in range(HEALTHY_AFTER_BACKLOG):
                await publish(
                    http, stack, [{"type": f"{tag}.ok", "id": f"evt_{tag}_ok_{n}", "data": {}}]
                )
                await asyncio.sleep(1 / 30)
            arrived = await healthy.wait_for(HEALTHY_AFTER_BACKLOG, path=f"/{tag}", timeout_s=60)
        # Stop the sleeper's churn: what is left of its backlog is cancelled.
        async with http.delete(
            f"{stack.url_of('router')}/webhooks/{sleeper_id}", headers=ADMIN
        ) as response:
            assert response.status == 204
        return BacklogRun(
            healthy_arrivals=[request.at for request in arrived],
            backlog_exchanges=list(sleeper.exchanges),
            peaks=dict(watch.peaks),
        )
    finally:
        await sleeper.stop()


async def test_a_backlog_for_a_sleeping_endpoint_does_not_stand_in_the_way(
    stack: Stack, healthy: Receiver, http: aiohttp.ClientSession
) -> None:
    """With 600 deliveries queued for a sleeping endpoint, a healthy webhook's later events all
    arrive while most of that backlog has not even been tried, and no sender holds more than its
    limit of connections to the sleeper."""
    run = await run_backlog(stack, healthy, http, "backlog")
    assert {request.json()["id"] for request in healthy.to("/backlog")} == {
        f"evt_backlog_ok_{n}" for n in range(HEALTHY_AFTER_BACKLOG)
    }
    tried = tried_before(run.backlog_exchanges, max(run.healthy_arrivals))
    print(f"backlog tried before the healthy events all arrived: {tried}; peaks {run.peaks}")
    assert tried < BACKLOG // 2, f"{tried} of the backlog tried before the healthy events arrived"
    assert not any(e.ended is Ending.ANSWERED for e in run.backlog_exchanges)
    assert over_limit(run.peaks, ENDPOINT_LIMIT) == {}
    assert max(run.peaks.values()) >= 1
    assert crash_lines(stack) == []


@pytest.fixture
def unguarded_stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same services with the per-endpoint limit and the circuit breaker out of the way."""
    unguarded = {
        **SETTINGS,
        "attempt_timeout_s": "1",
        "endpoint_concurrency": "10000",
        "circuit_failures": "1000000",
    }
    services = (("router", "router"), ("producer", "producer"), ("sender", "sender-1"))
    with running_stack(
        amqp_url,
        f"{PREFIX}-unguarded",
        tmp_path_factory.mktemp("unguarded-logs"),
        services,
        **unguarded,
    ) as stack:
        yield stack


async def test_without_isolation_the_same_checks_fail(
    unguarded_stack: Stack, healthy: Receiver, http: aiohttp.ClientSession
) -> None:
    """Negative control: without the per-endpoint limit and the circuit breaker, most of the
    backlog is tried before the healthy events arrive, and a sender holds more connections to the
    sleeper than the limit."""
    run = await run_backlog(unguarded_stack, healthy, http, "unguarded")
    tried = tried_before(run.backlog_exchanges, max(run.healthy_arrivals))
    print(f"unguarded: backlog tried first: {tried}; peaks {run.peaks}")
    assert tried >= BACKLOG // 2, f"only {tried} of the backlog tried first"
    assert over_limit(run.peaks, ENDPOINT_LIMIT) != {}
