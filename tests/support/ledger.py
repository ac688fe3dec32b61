"""Counting every event of a fault test: what a receiver got, what the delivery log says, and what
is wrong with it.

`audit` is pure: it compares the deliveries a test expects with what arrived (`Arrival`, one per
request the receiver recorded) and, when given, with the delivery log (`Logged`, one per record).
It reports, with figures:

- lost: an expected delivery never answered 2xx by the receiver;
- split: one (event, webhook) seen under more than one `webhook-id` (a repeat must carry the same);
- strays: a request for something the test never sent;
- over the schedule: a delivery the receiver saw more often than the schedule has attempts;
- late: a retry that came more than `late_factor` times its delay + `late_slack_s` after the failed
  attempt before it (measured between their arrivals at the receiver);
- from the log: a forked chain (one attempt recorded as `retry_scheduled` at two different times,
  so two retries went out; or an attempt that ended the delivery, delivered or dead-lettered,
  followed by a later attempt: the chain went on beside it), an attempt past the schedule, and an
  unfinished chain (its last attempt has no final outcome).

An attempt made twice without forking the chain (a copy of a delivered attempt) is allowed and
counted in `repeated_attempts`; a record published twice for one attempt (a confirm retried:
same body, same time) is one attempt. An attempt missing from the log below the last one (made,
but its record was lost with the broker, and the retry it published went on) is counted in
`log_gaps`: the delivery log misses that attempt, the subscriber misses nothing.

The rest of the module gathers those inputs from a running install: the delivery log read up to
now, and a quiet install (no work queued, no sender working).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage

from schemas.deliveries import ATTEMPTS_KIND
from schemas.markers import MARKER_KIND
from schemas.topology import Topology
from tests.support.broker import message_count
from tests.support.receiver import Received
from tests.support.waiting import eventually

# (event id, Hookline webhook id): one delivery as the test knows it.
Key = tuple[str, str]
FINAL_OUTCOMES = frozenset({"delivered", "dead_lettered", "cancelled", "failed"})


@dataclass(frozen=True)
class Arrival:
    """One request the receiver got: the delivery it carried, when, and what it was answered."""

    key: Key
    delivery_id: str  # the `webhook-id` header
    at: float
    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @classmethod
    def of(cls, request: Received) -> Arrival:
        body = request.json()
        return cls(
            key=(body["id"], body["webhook_id"]),
            delivery_id=request.headers["webhook-id"],
            at=request.at,
            status=request.status,
        )


def arrivals_of(requests: Iterable[Received]) -> list[Arrival]:
    return [Arrival.of(request) for request in requests]


@dataclass(frozen=True)
class Logged:
    """One record of the delivery log."""

    key: Key
    delivery_id: str
    attempt: int
    outcome: str
    at: datetime
    error: str | None = None

    @classmethod
    def of(cls, record: dict[str, Any]) -> Logged:
        return cls(
            key=(record["event_id"], record["webhook_id"]),
            delivery_id=record["delivery_id"],
            attempt=record["attempt"],
            outcome=record["outcome"],
            at=datetime.fromisoformat(record["at"]),
            error=record.get("error"),
        )


@dataclass(frozen=True)
class Late:
    """A retry that came later than allowed."""

    delivery_id: str
    delay_s: float
    gap_s: float
    allowed_s: float


@dataclass
class Audit:
    """What `audit` found; `problems()` says what is wrong, the rest are figures to report."""

    expected: int
    lost: list[Key] = field(default_factory=list)
    split: list[Key] = field(default_factory=list)
    strays: list[Key] = field(default_factory=list)
    # Successful requests beyond the first of each delivery (at-least-once allows them).
    duplicates: int = 0
    max_requests: int = 0
    over_schedule: list[tuple[str, int]] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    # The largest (gap - delay) between a failed attempt and the next, if any failed.
    worst_lateness_s: float | None = None
    # From the delivery log, when it was given.
    records: int = 0
    forked_chains: list[str] = field(default_factory=list)
    unfinished_chains: list[str] = field(default_factory=list)
    # Attempts made (and recorded) more than once, a forked chain or not.
    repeated_attempts: int = 0
    # Deliveries with an attempt below their last that has no record.
    log_gaps: int = 0
    beyond_schedule: list[tuple[str, int]] = field(default_factory=list)
    max_attempt: int = 0
    # What did not happen in time while waiting for the run to settle.
    notes: list[str] = field(default_factory=list)
    # What each delivery went through, to explain a problem.
    arrivals_of: dict[str, list[Arrival]] = field(default_factory=dict, repr=False)
    records_of: dict[str, list[Logged]] = field(default_factory=dict, repr=False)

    def problems(self) -> list[str]:
        found = list(self.notes)
        for name in (
            "lost",
            "split",
            "strays",
            "over_schedule",
            "late",
            "forked_chains",
            "beyond_schedule",
            "unfinished_chains",
        ):
            items: Sequence[object] = getattr(self, name)
            if items:
                found.append(f"{name}: {len(items)}, e.g. {list(items)[:3]}")
        return found

    def explain(self, limit: int = 5) -> str:
        """The problems, and for a few deliveries in trouble what the receiver and the log saw
        (times relative to the delivery's first request)."""
        trouble: list[str] = [
            *(delivery_id for delivery_id, _ in self.over_schedule),
            *(late.delivery_id for late in self.late),
            *self.forked_chains,
            *self.unfinished_chains,
        ]
        lines = self.problems()
        for delivery_id in list(dict.fromkeys(trouble))[:limit]:
            seen = self.arrivals_of.get(delivery_id, [])
            start = seen[0].at if seen else 0.0
            lines.append(f"{delivery_id}:")
            lines.append(
                "  receiver: " + ", ".join(f"+{a.at - start:.2f}s {a.status}" for a in seen)
            )
            for record in sorted(self.records_of.get(delivery_id, []), key=lambda r: r.at):
                lines.append(
                    f"  log: attempt {record.attempt} {record.outcome} at "
                    f"{record.at.time().isoformat()} {record.error or ''}"
                )
        return "\n".join(lines)

    def summary(self) -> str:
        lateness = "n/a" if self.worst_lateness_s is None else f"{self.worst_lateness_s:.2f}s"
        return (
            f"expected {self.expected}, lost {len(self.lost)}, duplicates {self.duplicates}, "
            f"max requests per delivery {self.max_requests}, max attempt logged "
            f"{self.max_attempt}, attempts made twice {self.repeated_attempts}, attempts missing "
            f"from the log {self.log_gaps}, worst retry lateness {lateness}, log records "
            f"{self.records}"
        )


def audit(
    expected: Iterable[Key],
    arrivals: Iterable[Arrival],
    *,
    schedule_s: Sequence[float],
    records: Iterable[Logged] | None = None,
    bound_requests: bool = True,
    check_lateness: bool = True,
    late_factor: float = 2.0,
    late_slack_s: float = 10.0,
) -> Audit:
    """Compare what a test sent with what arrived and what the log recorded (see the module)."""
    wanted = set(expected)
    max_attempts = len(schedule_s) + 1
    result = Audit(expected=len(wanted))
    by_delivery: dict[str, list[Arrival]] = defaultdict(list)
    ids_of: dict[Key, set[str]] = defaultdict(set)
    delivered: set[Key] = set()
    for arrival in arrivals:
        if arrival.key not in wanted:
            result.strays.append(arrival.key)
            continue
        by_delivery[arrival.delivery_id].append(arrival)
        ids_of[arrival.key].add(arrival.delivery_id)
        if arrival.ok:
            delivered.add(arrival.key)
    result.lost = sorted(wanted - delivered)
    result.split = sorted(key for key, ids in ids_of.items() if len(ids) > 1)
    result.arrivals_of = by_delivery
    for delivery_id, seen in by_delivery.items():
        seen.sort(key=lambda arrival: arrival.at)
        result.max_requests = max(result.max_requests, len(seen))
        result.duplicates += max(0, sum(arrival.ok for arrival in seen) - 1)
        if bound_requests and len(seen) > max_attempts:
            result.over_schedule.append((delivery_id, len(seen)))
        if check_lateness:
            _lateness(result, delivery_id, seen, schedule_s, late_factor, late_slack_s)
    if records is not None:
        _check_log(result, wanted, records, max_attempts)
    return result


def _lateness(
    result: Audit,
    delivery_id: str,
    seen: Sequence[Arrival],
    schedule_s: Sequence[float],
    factor: float,
    slack_s: float,
) -> None:
    failures = 0
    for failed, following in itertools.pairwise(seen):
        if failed.ok:
            continue
        failures += 1
        if not schedule_s:
            continue
        delay_s = schedule_s[min(failures, len(schedule_s)) - 1]
        gap_s = following.at - failed.at
        lateness_s = gap_s - delay_s
        if result.worst_lateness_s is None or lateness_s > result.worst_lateness_s:
            result.worst_lateness_s = lateness_s
        allowed_s = factor * delay_s + slack_s
        if gap_s > allowed_s:
            result.late.append(Late(delivery_id, delay_s, round(gap_s, 3), allowed_s))


def _check_log(
    result: Audit, wanted: set[Key], records: Iterable[Logged], max_attempts: int
) -> None:
    # (delivery, attempt) -> {time: outcome}: one record published twice has one time.
    made: dict[tuple[str, int], dict[datetime, str]] = defaultdict(dict)
    for record in records:
        if record.key not in wanted:
            continue
        result.records += 1
        result.records_of.setdefault(record.delivery_id, []).append(record)
        made[(record.delivery_id, record.attempt)][record.at] = record.outcome
        result.max_attempt = max(result.max_attempt, record.attempt)
        if record.attempt > max_attempts:
            result.beyond_schedule.append((record.delivery_id, record.attempt))
    result.repeated_attempts = sum(len(times) > 1 for times in made.values())
    chains: dict[str, dict[int, list[str]]] = defaultdict(dict)
    for (delivery_id, attempt), times in made.items():
        chains[delivery_id][attempt] = list(times.values())
    for delivery_id, outcomes in chains.items():
        last = max(outcomes)
        if any(
            outcomes[attempt].count("retry_scheduled") > 1
            or (attempt < last and FINAL_OUTCOMES & set(outcomes[attempt]))
            for attempt in outcomes
        ):
            result.forked_chains.append(delivery_id)
        if not FINAL_OUTCOMES & set(outcomes[last]):
            result.unfinished_chains.append(delivery_id)
        if sorted(outcomes) != list(range(1, last + 1)):
            result.log_gaps += 1


# --- gathering the inputs from a running install ---------------------------------------------


async def read_delivery_log(url: str, topology: Topology, *, timeout_s: float = 30) -> list[Logged]:
    """Every attempt record of the install's delivery log confirmed before this call.

    Like the services, it appends a marker of its own and reads from the first offset until the
    marker comes back.
    """
    marker_id = f"ledger-{uuid.uuid4().hex}"
    records: list[dict[str, Any]] = []
    done = asyncio.Event()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=1000)
        stream = await channel.get_queue(topology.delivery_log_stream, ensure=False)

        async def on_message(message: AbstractIncomingMessage) -> None:
            if message.type == ATTEMPTS_KIND:
                records.extend(json.loads(message.body))
            elif message.type == "delivery.attempted":
                records.append(json.loads(message.body))
            elif message.message_id == marker_id:
                done.set()
            await message.ack()

        await stream.consume(on_message, arguments={"x-stream-offset": "first"})
        await channel.default_exchange.publish(
            aio_pika.Message(
                b"{}",
                message_id=marker_id,
                type=MARKER_KIND,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=topology.delivery_log_stream,
        )
        async with asyncio.timeout(timeout_s):
            await done.wait()
    finally:
        await connection.close()
    return [Logged.of(record) for record in records]


def work_queues(topology: Topology) -> list[str]:
    """The queues that hold deliveries still to be made (the route queue, which makes them, too)."""
    return [
        topology.route_queue,
        topology.deliver_queue,
        *topology.retry_queues,
        *(topology.park_queue(delay_s) for delay_s in topology.park_tiers_s),
    ]


IN_FLIGHT = re.compile(r"^hookline_deliveries_in_flight (\S+)$", re.MULTILINE)


async def senders_in_flight(http: aiohttp.ClientSession, sender_urls: Iterable[str]) -> float:
    """Deliveries the senders are working on now, from their /metrics."""
    total = 0.0
    for url in sender_urls:
        async with http.get(f"{url}/metrics") as response:
            match = IN_FLIGHT.search(await response.text())
        assert match is not None, f"{url}/metrics has no hookline_deliveries_in_flight"
        total += float(match.group(1))
    return total


async def wait_until_quiet(
    url: str,
    topology: Topology,
    sender_urls: Sequence[str],
    *,
    timeout_s: float = 60,
    poll_s: float = 0.5,
) -> None:
    """Return once no work queue holds a message and no sender is working, twice in a row."""
    quiet_in_a_row = 0
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout_s):
        while quiet_in_a_row < 2:
            depths = [await message_count(url, queue) for queue in work_queues(topology)]
            working = await senders_in_flight(http, sender_urls)
            quiet_in_a_row = quiet_in_a_row + 1 if not any(depths) and not working else 0
            await asyncio.sleep(poll_s)


def delivered_keys(requests: Iterable[Received]) -> set[Key]:
    """The deliveries a receiver answered 2xx at least once."""
    return {Arrival.of(request).key for request in requests if 200 <= request.status < 300}


async def settle_and_audit(
    receiver_requests: Callable[[], Sequence[Received]],
    expected: Iterable[Key],
    *,
    url: str,
    topology: Topology,
    sender_urls: Callable[[], Sequence[str]],
    schedule_s: Sequence[float],
    timeout_s: float = 60,
    quiet_timeout_s: float = 60,
    **checks: Any,
) -> Audit:
    """Wait (bounded) until every expected delivery arrived and the install is quiet, read the
    delivery log up to now, and audit. Whatever did not happen in time is reported, not raised."""
    wanted = set(expected)
    webhooks = {webhook_id for _event_id, webhook_id in wanted}

    def ours() -> list[Received]:
        return [r for r in receiver_requests() if r.json().get("webhook_id") in webhooks]

    notes: list[str] = []
    try:
        await eventually(lambda: wanted <= delivered_keys(ours()), timeout_s=timeout_s, poll_s=0.2)
    except TimeoutError:
        notes.append(f"not every delivery arrived within {timeout_s:g}s")
    try:
        await wait_until_quiet(url, topology, sender_urls(), timeout_s=quiet_timeout_s)
    except TimeoutError:
        notes.append(f"the install was not quiet within {quiet_timeout_s:g}s")
    records = await read_delivery_log(url, topology)
    result = audit(wanted, arrivals_of(ours()), schedule_s=schedule_s, records=records, **checks)
    result.notes.extend(notes)
    return result
