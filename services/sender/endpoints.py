"""Per-endpoint isolation in one sender: a limit on concurrent attempts and a circuit breaker.

An endpoint here is a webhook. A sender asks `admit` before an attempt; when the endpoint is at its
limit or its circuit is open, the answer says how long to stay away, and the delivery is parked
instead of holding a prefetch slot. A busy endpoint is stayed away from for about as long as its
attempts take, or, if longer, as long as every attempt in flight has been running: an endpoint that
went silent has finished no attempt to learn a duration from, and parking its backlog in the
shortest tier again and again until one times out would spend the sender on it.

An endpoint that has answered quickly and successfully `limit` times in a row may have up to
`fast_limit` attempts in flight instead: its slots turn over within milliseconds. It falls back
to `limit` as soon as it fails or its average slows past `fast_s`.

A delivery that finds a healthy endpoint busy may wait here for a slot instead (`admit_or_wait`),
but only when the wait it can expect (the attempts queued before it, at the endpoint's usual
duration, `limit` at a time) is short: a fast endpoint's burst is then sent at the endpoint's pace
without a trip through a park queue, while a slow or silent endpoint's backlog is still parked
and holds no prefetch slot for long. A slot that comes free is handed to the first waiter.

After `failures_to_open` consecutive failures the circuit opens for `open_s`; when that has passed
one probe goes through (half-open): a success closes the circuit, a failure opens it again for
twice as long, up to `max_open_s`. A `Retry-After` keeps it open at least that long.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ParkReason = Literal["endpoint_busy", "circuit_open"]
# How much one attempt's duration moves the running average a busy endpoint is parked by.
DURATION_WEIGHT = 0.2
# An endpoint whose attempts take at most this long on average is fast: it may get `fast_limit`.
FAST_S = 0.1
# The longest a delivery waits in the sender for a busy endpoint's slot before it is parked.
MAX_SLOT_WAIT_S = 0.25


@dataclass(frozen=True, slots=True)
class Admitted:
    """An attempt may go; `release` it when done."""

    key: str
    probe: bool = False
    started_s: float = 0.0  # on the gate's clock


@dataclass(frozen=True, slots=True)
class Refused:
    """Not now: stay away from this endpoint for about `wait_s`."""

    reason: ParkReason
    wait_s: float


@dataclass(slots=True)
class _Endpoint:
    # When each attempt in flight started, oldest first.
    started_s: list[float] = field(default_factory=list)
    consecutive_failures: int = 0
    open_until: float | None = None  # set while the circuit is open (or half-open once passed)
    open_for_s: float = 0.0
    probing: bool = False
    mean_duration_s: float = 0.0
    successes_in_a_row: int = 0

    @property
    def in_flight(self) -> int:
        return len(self.started_s)

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and self.consecutive_failures == 0 and self.open_until is None


def now_running_s(endpoint: _Endpoint, now: float) -> float:
    """How long the youngest attempt in flight has run: no slot has come free for this long."""
    return now - endpoint.started_s[-1] if endpoint.started_s else 0.0


class EndpointGate:
    """Admits attempts per endpoint; its state is this process's own (each sender learns alone)."""

    def __init__(
        self,
        *,
        limit: int,
        failures_to_open: int,
        open_s: float,
        max_open_s: float,
        fast_limit: int = 0,
        fast_s: float = FAST_S,
        max_wait_s: float = MAX_SLOT_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        on_circuit: Callable[[str, float | None], None] | None = None,
    ) -> None:
        self._limit = limit
        self._fast_limit = max(limit, fast_limit)
        self._fast_s = fast_s
        self._max_wait_s = max_wait_s
        self._failures_to_open = failures_to_open
        self._open_s = open_s
        self._max_open_s = max_open_s
        self._clock = clock
        # Told (endpoint, seconds it stays open) when a circuit opens or opens again, and
        # (endpoint, None) when it closes.
        self._on_circuit = on_circuit
        self._endpoints: dict[str, _Endpoint] = {}
        # Deliveries waiting for a busy endpoint's slot, first come first served.
        self._waiting: dict[str, deque[asyncio.Future[Admitted | Refused]]] = {}

    def admit(self, key: str) -> Admitted | Refused:
        """Whether an attempt to `key` may start now."""
        endpoint = self._endpoints.setdefault(key, _Endpoint())
        now = self._clock()
        if endpoint.open_until is not None:
            if now < endpoint.open_until:
                return Refused("circuit_open", endpoint.open_until - now)
            if endpoint.probing:  # half-open, and the one probe is out
                return Refused("circuit_open", max(endpoint.mean_duration_s, self._open_s))
            endpoint.probing = True
            endpoint.started_s.append(now)
            return Admitted(key, probe=True, started_s=now)
        if endpoint.in_flight >= self._limit_of(endpoint):
            all_running_s = now_running_s(endpoint, now)
            return Refused("endpoint_busy", max(endpoint.mean_duration_s, all_running_s))
        endpoint.started_s.append(now)
        return Admitted(key, started_s=now)

    def _limit_of(self, endpoint: _Endpoint) -> int:
        """`fast_limit` for an endpoint proven fast (a run of quick successes, at least `limit`
        long), `limit` for any other: slots of a fast endpoint turn over within milliseconds, so
        it may have more of them without holding others up (Little's law); one that slows down or
        fails is back to `limit` at once."""
        if endpoint.successes_in_a_row >= self._limit and endpoint.mean_duration_s <= self._fast_s:
            return self._fast_limit
        return self._limit

    def fast_and_healthy(self, key: str, max_duration_s: float) -> bool:
        """Whether the endpoint's attempts have succeeded so far (none failed since the last
        success) and taken at most `max_duration_s` on average; true of one never tried here."""
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            return True
        return (
            endpoint.consecutive_failures == 0
            and endpoint.open_until is None
            and endpoint.mean_duration_s <= max_duration_s
            and now_running_s(endpoint, self._clock()) <= max_duration_s
        )

    async def admit_or_wait(self, key: str) -> Admitted | Refused:
        """`admit`, but a delivery that finds the endpoint busy waits for a slot when it can expect
        one within `max_wait_s`; refused once that has passed."""
        answer = self.admit(key)
        if isinstance(answer, Admitted) or answer.reason != "endpoint_busy":
            return answer
        waiting = self._waiting.setdefault(key, deque())
        endpoint = self._endpoints[key]
        expected_s = (len(waiting) + 1) * endpoint.mean_duration_s / self._limit_of(endpoint)
        if (
            expected_s > self._max_wait_s
            or now_running_s(endpoint, self._clock()) > self._max_wait_s
        ):
            if not waiting:
                del self._waiting[key]
            return answer
        slot: asyncio.Future[Admitted | Refused] = asyncio.get_running_loop().create_future()
        waiting.append(slot)
        try:
            await asyncio.wait({slot}, timeout=self._max_wait_s)
        except asyncio.CancelledError:
            # Our caller is going away: a slot handed to it meanwhile must not stay taken.
            if slot.done() and isinstance(given := slot.result(), Admitted):
                self.release(given, succeeded=None)
            raise
        finally:
            if not slot.done():  # timed out, or our caller was cancelled: leave the queue
                slot.cancel()
                waiting.remove(slot)
                if not waiting:
                    del self._waiting[key]
        if slot.cancelled():
            return Refused("endpoint_busy", answer.wait_s)
        return slot.result()

    def release(
        self,
        admitted: Admitted,
        *,
        succeeded: bool | None,
        duration_s: float = 0.0,
        retry_after_s: float | None = None,
    ) -> None:
        """The attempt is over: `succeeded` None when no call was made."""
        endpoint = self._endpoints.get(admitted.key)
        if endpoint is None:
            return
        if admitted.started_s in endpoint.started_s:
            endpoint.started_s.remove(admitted.started_s)
        if admitted.probe:
            endpoint.probing = False
        was_open_until = endpoint.open_until
        if succeeded is not None:
            endpoint.mean_duration_s += DURATION_WEIGHT * (duration_s - endpoint.mean_duration_s)
        if succeeded:
            endpoint.successes_in_a_row += 1
            endpoint.consecutive_failures = 0
            endpoint.open_until = None
            endpoint.open_for_s = 0.0
        elif succeeded is False:
            endpoint.successes_in_a_row = 0
            self._failed(endpoint, admitted.probe, retry_after_s)
        if endpoint.open_until != was_open_until and self._on_circuit is not None:
            remaining_s = None
            if endpoint.open_until is not None:
                remaining_s = max(0.0, endpoint.open_until - self._clock())
            self._on_circuit(admitted.key, remaining_s)
        self._hand_on(admitted.key, endpoint)
        if endpoint.idle:
            del self._endpoints[admitted.key]  # memory follows the endpoints in trouble

    def _hand_on(self, key: str, endpoint: _Endpoint) -> None:
        """Give free slots to the deliveries waiting for them; all are refused once the circuit
        opened."""
        waiting = self._waiting.get(key)
        if not waiting:
            return
        while waiting and (
            endpoint.open_until is not None or endpoint.in_flight < self._limit_of(endpoint)
        ):
            slot = waiting.popleft()
            if slot.done():
                continue
            if endpoint.open_until is not None:
                slot.set_result(
                    Refused("circuit_open", max(0.0, endpoint.open_until - self._clock()))
                )
                continue
            now = self._clock()
            endpoint.started_s.append(now)
            slot.set_result(Admitted(key, started_s=now))
        if not waiting:
            del self._waiting[key]

    def _failed(self, endpoint: _Endpoint, probe: bool, retry_after_s: float | None) -> None:
        endpoint.consecutive_failures += 1
        now = self._clock()
        if probe:
            endpoint.open_for_s = min(max(endpoint.open_for_s, self._open_s) * 2, self._max_open_s)
            endpoint.open_until = now + endpoint.open_for_s
        elif (
            endpoint.open_until is None and endpoint.consecutive_failures >= self._failures_to_open
        ):
            endpoint.open_for_s = self._open_s
            endpoint.open_until = now + self._open_s
        if retry_after_s:
            asked_until = now + min(retry_after_s, self._max_open_s)
            if endpoint.open_until is None or endpoint.open_until < asked_until:
                endpoint.open_until = asked_until
                endpoint.open_for_s = max(endpoint.open_for_s, min(retry_after_s, self._max_open_s))

    @property
    def open_circuits(self) -> int:
        """Endpoints whose circuit is open or half-open now."""
        return sum(1 for endpoint in self._endpoints.values() if endpoint.open_until is not None)

    def circuit_open(self, key: str) -> bool:
        endpoint = self._endpoints.get(key)
        return endpoint is not None and endpoint.open_until is not None
