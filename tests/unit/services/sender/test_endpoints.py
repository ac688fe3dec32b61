"""Per-endpoint isolation: a limit on concurrent attempts, and a circuit breaker."""

from __future__ import annotations

import asyncio

import pytest

from services.sender.endpoints import Admitted, EndpointGate, Refused


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(clock: Clock) -> EndpointGate:
    return EndpointGate(limit=2, failures_to_open=3, open_s=10, max_open_s=60, clock=clock)


def admitted(gate: EndpointGate, key: str = "wh_1") -> Admitted:
    answer = gate.admit(key)
    assert isinstance(answer, Admitted), answer
    return answer


def fail(gate: EndpointGate, key: str = "wh_1", **extra: float) -> None:
    gate.release(admitted(gate, key), succeeded=False, duration_s=1.0, **extra)


def test_an_endpoint_at_its_limit_is_busy_and_others_are_not(gate: EndpointGate) -> None:
    """Two attempts in flight fill one endpoint; another endpoint is not affected."""
    first, _second = admitted(gate), admitted(gate)
    assert gate.admit("wh_1") == Refused("endpoint_busy", 0.0)
    admitted(gate, "wh_2")
    gate.release(first, succeeded=True, duration_s=0.5)
    admitted(gate)


def test_a_busy_endpoint_is_parked_for_about_its_attempt_duration(gate: EndpointGate) -> None:
    """The wait a busy endpoint asks for follows how long its attempts take."""
    admitted(gate)  # one stays in flight throughout, as on a busy endpoint
    for _ in range(20):
        gate.release(admitted(gate), succeeded=True, duration_s=4.0)
    admitted(gate)
    refused = gate.admit("wh_1")
    assert isinstance(refused, Refused)
    assert refused.reason == "endpoint_busy"
    assert 3.0 < refused.wait_s <= 4.0


def test_a_busy_endpoint_whose_attempts_do_not_end_is_parked_as_long_as_they_ran(
    gate: EndpointGate, clock: Clock
) -> None:
    """Before any attempt has ended there is no duration to go by: when every attempt in flight has
    run 6 s, the wait asked for is 6 s, not the shortest park over and over."""
    admitted(gate)
    clock.now += 2
    admitted(gate)
    clock.now += 6
    assert gate.admit("wh_1") == Refused("endpoint_busy", 6.0)


def test_one_slow_attempt_does_not_park_a_fast_endpoint_long(
    gate: EndpointGate, clock: Clock
) -> None:
    """A straggler among quick attempts: slots keep coming free, so the wait stays short."""
    admitted(gate)  # the straggler, in flight throughout
    for _ in range(20):
        clock.now += 0.5
        gate.release(admitted(gate), succeeded=True, duration_s=0.1)
    admitted(gate)
    clock.now += 0.05
    refused = gate.admit("wh_1")
    assert isinstance(refused, Refused)
    assert refused.wait_s < 0.2


def test_consecutive_failures_open_the_circuit(gate: EndpointGate, clock: Clock) -> None:
    """Three failures in a row open the circuit for 10 s: no attempt, the rest of it to wait."""
    fail(gate)
    fail(gate)
    assert gate.open_circuits == 0
    fail(gate)
    assert gate.open_circuits == 1
    clock.now += 4
    assert gate.admit("wh_1") == Refused("circuit_open", 6.0)
    admitted(gate, "wh_2")  # other endpoints go on


def test_a_success_between_failures_keeps_it_closed(gate: EndpointGate) -> None:
    """Failures that are not consecutive never open the circuit."""
    for _ in range(10):
        fail(gate)
        fail(gate)
        gate.release(admitted(gate), succeeded=True, duration_s=0.1)
    assert gate.open_circuits == 0


def test_half_open_lets_one_probe_through(gate: EndpointGate, clock: Clock) -> None:
    """Once open time has passed, one probe goes; the rest wait while it is out."""
    for _ in range(3):
        fail(gate)
    clock.now += 10
    probe = admitted(gate)
    assert probe.probe
    refused = gate.admit("wh_1")
    assert isinstance(refused, Refused)
    assert refused.reason == "circuit_open"
    gate.release(probe, succeeded=True, duration_s=0.1)
    assert gate.open_circuits == 0
    admitted(gate), admitted(gate)


def test_a_failed_probe_doubles_the_open_time_up_to_the_max(
    gate: EndpointGate, clock: Clock
) -> None:
    """Each failed probe keeps the circuit open twice as long as before, capped at max_open_s."""
    for _ in range(3):
        fail(gate)
    waits = []
    for _ in range(4):
        clock.now += 1000
        gate.release(admitted(gate), succeeded=False, duration_s=1.0)
        refused = gate.admit("wh_1")
        assert isinstance(refused, Refused)
        waits.append(refused.wait_s)
    assert waits == [20.0, 40.0, 60.0, 60.0]


def test_retry_after_keeps_the_circuit_open_that_long(gate: EndpointGate, clock: Clock) -> None:
    """A 429 with Retry-After 30 s keeps the endpoint closed to attempts for 30 s at once."""
    fail(gate, retry_after_s=30.0)
    assert gate.admit("wh_1") == Refused("circuit_open", 30.0)
    clock.now += 30
    assert admitted(gate).probe


def test_retry_after_is_capped_at_the_max_open_time(gate: EndpointGate) -> None:
    """A hostile Retry-After of a day does not close the endpoint longer than max_open_s."""
    fail(gate, retry_after_s=86400.0)
    assert gate.admit("wh_1") == Refused("circuit_open", 60.0)


def test_idle_healthy_endpoints_are_forgotten(gate: EndpointGate) -> None:
    """Memory follows endpoints in trouble: a healthy, idle one leaves no state."""
    for index in range(1000):
        gate.release(admitted(gate, f"wh_{index}"), succeeded=True, duration_s=0.1)
    assert gate._endpoints == {}


def test_a_release_without_a_call_changes_no_health(gate: EndpointGate) -> None:
    """An attempt that made no call (cancelled) frees its slot and counts neither way."""
    for _ in range(2):
        fail(gate)
    gate.release(admitted(gate), succeeded=None)
    fail(gate)
    assert gate.open_circuits == 1


async def test_a_fast_busy_endpoint_hands_its_next_slot_to_the_first_waiter(
    gate: EndpointGate,
) -> None:
    """A burst to a healthy, fast endpoint waits in the sender for slots, in arrival order, and
    nobody who comes later takes a freed slot first."""
    first, second = admitted(gate), admitted(gate)
    waiters = [asyncio.create_task(gate.admit_or_wait("wh_1")) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    gate.release(first, succeeded=True, duration_s=0.01)
    barging = gate.admit("wh_1")  # someone new does not take the freed slot
    assert isinstance(barging, Refused)
    assert barging.reason == "endpoint_busy"
    given = await waiters[0]
    assert isinstance(given, Admitted)
    assert not waiters[1].done()
    gate.release(second, succeeded=True, duration_s=0.01)
    assert isinstance(await waiters[1], Admitted)


async def test_a_slot_wait_is_bounded_then_refused() -> None:
    gate = EndpointGate(limit=1, failures_to_open=3, open_s=10, max_open_s=60, max_wait_s=0.05)
    holder = admitted(gate)
    answer = await gate.admit_or_wait("wh_1")
    assert isinstance(answer, Refused)
    assert answer.reason == "endpoint_busy"
    gate.release(holder, succeeded=True, duration_s=0.01)
    assert isinstance(gate.admit("wh_1"), Admitted)  # the timed-out waiter holds nothing


async def test_a_slow_endpoints_backlog_is_parked_not_waited_for(
    gate: EndpointGate, clock: Clock
) -> None:
    """With attempts of 4 s, even the first in line would wait too long: refused at once."""
    for _ in range(20):
        gate.release(admitted(gate), succeeded=True, duration_s=4.0)
    admitted(gate)
    admitted(gate)
    answer = await asyncio.wait_for(gate.admit_or_wait("wh_1"), timeout=1)
    assert isinstance(answer, Refused)


async def test_a_silent_endpoints_backlog_is_parked_not_waited_for(
    gate: EndpointGate, clock: Clock
) -> None:
    """No attempt finished to learn a duration from, but those in flight run for a minute."""
    admitted(gate)
    admitted(gate)
    clock.now += 60
    answer = await asyncio.wait_for(gate.admit_or_wait("wh_1"), timeout=1)
    assert isinstance(answer, Refused)


async def test_waiters_are_refused_when_the_circuit_opens(clock: Clock) -> None:
    gate = EndpointGate(limit=1, failures_to_open=1, open_s=10, max_open_s=60, clock=clock)
    holder = admitted(gate)
    waiter = asyncio.create_task(gate.admit_or_wait("wh_1"))
    await asyncio.sleep(0)
    gate.release(holder, succeeded=False, duration_s=0.01)
    answer = await waiter
    assert isinstance(answer, Refused)
    assert answer.reason == "circuit_open"


def test_a_proven_fast_endpoint_gets_the_fast_limit_until_it_fails(clock: Clock) -> None:
    """After `limit` quick successes in a row, up to `fast_limit` attempts may be in flight; one
    failure brings the endpoint back to `limit`."""
    gate = EndpointGate(
        limit=2, fast_limit=5, fast_s=0.1, failures_to_open=3, open_s=10, max_open_s=60, clock=clock
    )
    holder = admitted(gate)  # keeps the endpoint's state while the others come and go
    gate.release(admitted(gate), succeeded=True, duration_s=0.01)
    second = admitted(gate)  # 2 in flight: the base limit
    assert isinstance(gate.admit("wh_1"), Refused)
    gate.release(second, succeeded=True, duration_s=0.01)  # the second success in a row
    in_flight = [admitted(gate) for _ in range(4)]  # 5 with the holder: the fast limit
    assert isinstance(gate.admit("wh_1"), Refused)
    gate.release(in_flight.pop(), succeeded=False, duration_s=0.01)
    assert isinstance(gate.admit("wh_1"), Refused)  # 4 in flight, and the limit is 2 again
    for attempt in [holder, *in_flight]:
        gate.release(attempt, succeeded=True, duration_s=0.01)


def test_a_slow_endpoint_keeps_the_base_limit(clock: Clock) -> None:
    gate = EndpointGate(
        limit=2, fast_limit=5, fast_s=0.1, failures_to_open=3, open_s=10, max_open_s=60, clock=clock
    )
    holder = admitted(gate)
    for _ in range(10):
        gate.release(admitted(gate), succeeded=True, duration_s=0.5)
    admitted(gate)
    assert isinstance(gate.admit("wh_1"), Refused)
    gate.release(holder, succeeded=True, duration_s=0.5)


async def test_a_waiter_cancelled_as_its_slot_is_handed_over_gives_the_slot_back(
    gate: EndpointGate,
) -> None:
    """The slot is handed over and the waiter cancelled in the same moment: the slot is free
    again, not held by nobody."""
    first, second = admitted(gate), admitted(gate)
    waiter = asyncio.create_task(gate.admit_or_wait("wh_1"))
    await asyncio.sleep(0)
    gate.release(first, succeeded=True, duration_s=0.01)  # handed to the waiter
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert isinstance(gate.admit("wh_1"), Admitted)  # the slot it was given is free again
    gate.release(second, succeeded=True, duration_s=0.01)


def test_each_opening_and_the_closing_of_a_circuit_is_told(clock: Clock) -> None:
    """What the router shows as the circuit: opened for 10 s, opened again for 20 s by a failed
    probe, closed by a success; failures while open change nothing to tell."""
    told: list[tuple[str, float | None]] = []
    gate = EndpointGate(
        limit=2,
        failures_to_open=3,
        open_s=10,
        max_open_s=60,
        clock=clock,
        on_circuit=lambda key, open_for_s: told.append((key, open_for_s)),
    )
    fail(gate)
    fail(gate)
    assert told == []
    fail(gate)
    assert told == [("wh_1", 10.0)]
    clock.now += 10
    fail(gate)  # the probe
    assert told[-1] == ("wh_1", 20.0)
    clock.now += 20
    gate.release(admitted(gate), succeeded=True, duration_s=0.1)
    assert told == [("wh_1", 10.0), ("wh_1", 20.0), ("wh_1", None)]
