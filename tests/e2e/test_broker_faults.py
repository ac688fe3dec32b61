"""RabbitMQ itself fails under Hookline: a private node is killed (SIGKILL) and restarted, or its
application stopped and started, while events flow and deliveries are in their retry chains.

The services run against the private node and are never restarted by the test: each must
reconnect by itself. Every event is counted at a real receiver that fails the first attempts of
some webhooks, and in the delivery log (`tests.support.ledger`): nothing may be lost, no delivery
may reach the receiver more often than the schedule has attempts, no retry chain may fork, and no
retry may come later than twice its delay plus 10 s after the failure.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from schemas.topology import Topology
from tests.conftest import RUN_PREFIX
from tests.support.broker import message_count
from tests.support.ledger import Key, settle_and_audit
from tests.support.private_broker import PrivateBroker
from tests.support.processes import (
    ADMIN_TOKEN,
    FULL_STACK,
    ServiceProcess,
    Stack,
    post_events,
    running_stack,
)
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PREFIX = f"{RUN_PREFIX}-brokerfaults"
# The lateness bound is twice a delay plus 10 s. A retry due while the broker is down comes at
# best when it is back: up to one delay after the failure, plus the outage, plus the reconnect and
# the backlog. Killed, this machine's node takes about 10 s to serve again, so the bound holds
# only if reconnect plus backlog stay within one delay: 1 s delays (a 12 s bound) cannot, 5 s
# delays (the default schedule's first) give them 5 s.
SCHEDULE = (5.0, 5.0, 10.0)
PARK_DELAYS = (0.5, 1.0, 2.0)
TOPOLOGY = Topology(PREFIX, retry_delays_s=SCHEDULE, park_delays_s=PARK_DELAYS)
# Webhook paths and how many first requests of each delivery the receiver answers 500: so some
# deliveries are in their retry chains when the broker fails.
FAIL_FIRST = {"/ok": 0, "/fail1": 1, "/fail2": 2}
# Events go in batches until at least MIN_EVENTS are in and two more went after the fault.
MIN_EVENTS, BATCH, BATCH_EVERY_S = 100, 10, 0.5


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateBroker]:
    """One private node for the module, under /tmp (its user cannot enter pytest's tmp_path)."""
    with PrivateBroker(Path(tempfile.gettempdir())) as node:
        yield node


@pytest.fixture(scope="module")
def stack(broker: PrivateBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A router, a producer and two senders on the private node, with compressed settings."""
    with running_stack(
        broker.url,
        PREFIX,
        tmp_path_factory.mktemp("broker-fault-logs"),
        FULL_STACK,
        retry_schedule=",".join(f"{d:g}" for d in SCHEDULE),
        park_delays=",".join(f"{d:g}" for d in PARK_DELAYS),
        attempt_timeout_s="3",
        publish_timeout_s="3",
        # An endpoint that fails most first attempts (/fail2) would have its circuit opened, and
        # its deliveries parked, which is what the breaker is for; here it would only blur the
        # measure of retry lateness under broker faults, so it is kept shut.
        circuit_failures="1000",
    ) as stack:
        try:
            yield stack
        finally:
            broker.ensure_running()  # the install is deleted on it next


def reconnections(service: ServiceProcess) -> int:
    return sum(line.get("event") == "broker.reconnected" for line in service.log_lines())


async def all_ready(http: aiohttp.ClientSession, stack: Stack) -> bool:
    for service in stack.services:
        async with http.get(f"{service.url}/readyz") as response:
            if response.status != 200:
                return False
    return True


async def events_flow_through(
    fault: Callable[[], Awaitable[float]],
    kind: str,
    stack: Stack,
    broker: PrivateBroker,
    http: aiohttp.ClientSession,
) -> None:
    """Publish events in batches while `fault` strikes the broker once chains are under way, then
    count everything and check that every service reconnected by itself."""
    receiver = Receiver(fail_first=dict(FAIL_FIRST))
    await receiver.start()
    try:
        await eventually(lambda: all_ready(http, stack), timeout_s=60, poll_s=0.5)
        pids = {service.name: service.process.pid for service in stack.services}
        reconnects = {service.name: reconnections(service) for service in stack.services}
        webhooks: list[str] = []
        for path in FAIL_FIRST:
            async with http.post(
                f"{stack.url_of('router')}/webhooks",
                json={"event": f"{kind}.*", "uri": f"{receiver.url}{path}"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as response:
                assert response.status == 201, await response.text()
                webhooks.append((await response.json())["id"])
        events: list[dict[str, object]] = []
        fault_over = asyncio.Event()
        refused_then_accepted = 0  # batches sent while the broker was down, accepted after

        async def publish() -> None:
            nonlocal refused_then_accepted
            sent_after_fault = 0
            while len(events) < MIN_EVENTS or sent_after_fault < 2:
                sent_after_fault += fault_over.is_set()
                batch: list[dict[str, object]] = [
                    {"type": f"{kind}.tick", "id": f"evt_{kind}_{n}", "data": {"n": n}}
                    for n in range(len(events), len(events) + BATCH)
                ]
                events.extend(batch)
                tries = await post_events(http, stack.url_of("producer"), batch, timeout_s=90)
                refused_then_accepted += tries > 1
                await asyncio.sleep(BATCH_EVERY_S)

        publishing = asyncio.create_task(publish())
        await eventually(
            lambda: sum(r.status == 500 for r in receiver.requests) >= 30, timeout_s=60
        )
        failed = {r.headers["webhook-id"] for r in receiver.requests if r.status == 500}
        delivered = {r.headers["webhook-id"] for r in receiver.requests if r.status == 200}
        in_chains = len(failed - delivered)
        down_s = await fault()
        fault_over.set()
        await publishing

        expected: list[Key] = [
            (str(event["id"]), webhook) for event in events for webhook in webhooks
        ]
        result = await settle_and_audit(
            lambda: receiver.requests,
            expected,
            url=broker.url,
            topology=TOPOLOGY,
            sender_urls=lambda: [s.url for s in stack.services if s.name.startswith("sender")],
            schedule_s=SCHEDULE,
            timeout_s=90,
            # A retry that falls due while the broker is down can only be made once it is back:
            # the usual bound, plus the outage as measured (20 s once on a slow day, 7 s usually).
            late_slack_s=10.0 + down_s,
        )
        print(
            f"\n{kind}: broker down for at most {down_s:.1f}s with {in_chains} deliveries in "
            f"their retry chains; {len(events)} events, {refused_then_accepted} batches refused "
            f"meanwhile and accepted after; {result.summary()}"
        )
        assert not result.problems(), result.explain()
        assert in_chains > 0
        assert refused_then_accepted > 0
        # Every service reconnected by itself: same processes, each logged it, each is ready.
        assert {s.name: s.process.pid for s in stack.services if s.process.poll() is None} == pids
        for service in stack.services:
            assert reconnections(service) > reconnects[service.name], service.name
        await eventually(lambda: all_ready(http, stack), timeout_s=30, poll_s=0.5)
        assert await message_count(broker.url, TOPOLOGY.dead_queue) == 0
        assert await message_count(broker.url, TOPOLOGY.quarantine_queue) == 0
    finally:
        await receiver.stop()


@pytest.mark.timeout(240)
async def test_broker_kill_9_and_restart_mid_run_lose_nothing_and_double_no_chain(
    stack: Stack, broker: PrivateBroker, http: aiohttp.ClientSession
) -> None:
    """RabbitMQ killed with SIGKILL and restarted mid-run: every service reconnects by itself,
    nothing is lost, no retry chain is doubled and no retry is late."""

    async def kill_and_restart() -> float:
        await asyncio.to_thread(broker.kill)
        killed = time.monotonic()
        await asyncio.to_thread(broker.restart)
        return time.monotonic() - killed

    await events_flow_through(kill_and_restart, "killed", stack, broker, http)


@pytest.mark.timeout(240)
async def test_broker_stop_app_and_start_app_mid_run_lose_nothing_and_double_no_chain(
    stack: Stack, broker: PrivateBroker, http: aiohttp.ClientSession
) -> None:
    """RabbitMQ's application stopped and started mid-run: every service reconnects by itself,
    nothing is lost, no retry chain is doubled and no retry is late."""

    async def stop_and_start() -> float:
        stopping = time.monotonic()
        await asyncio.to_thread(broker.stop_app)
        await asyncio.to_thread(broker.start_app)
        return time.monotonic() - stopping

    await events_flow_through(stop_and_start, "stopped", stack, broker, http)
