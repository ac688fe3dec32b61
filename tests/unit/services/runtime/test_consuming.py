"""Settling messages: confirming what a handler produced, within a bound, and reading the headers
that say a message may repeat work or crashed before."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractIncomingMessage

from schemas.topology import CRASHES_HEADER, REPEAT_HEADER, ROUTING_KEY_HEADER
from services.runtime import consuming
from services.runtime.broker import PublishFailed
from services.runtime.consuming import (
    confirm,
    crashes_of,
    last_line_of,
    may_repeat,
    routing_key_of,
)
from services.runtime.outcomes import ChannelLost, GiveBack, HoldExpired, Quarantine, Unreadable


@dataclass
class FakeChannel:
    is_closed: bool = False


@dataclass
class FakeMessage:
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    routing_key: str | None = "problem.update"
    channel: FakeChannel = field(default_factory=FakeChannel)


def message(**fields: Any) -> AbstractIncomingMessage:
    return cast(AbstractIncomingMessage, FakeMessage(**fields))


def test_crash_counts_come_from_the_header() -> None:
    """A message republished after crashes says how many; anything else counts as none."""
    assert crashes_of(message()) == 0
    assert crashes_of(message(headers={CRASHES_HEADER: 3})) == 3
    assert crashes_of(message(headers={CRASHES_HEADER: "3"})) == 0
    assert crashes_of(message(headers={CRASHES_HEADER: -1})) == 0


def test_a_message_may_repeat_work_when_redelivered_or_marked() -> None:
    """Redelivered by the broker, or marked as a repeat by whoever published it."""
    assert not may_repeat(message())
    assert may_repeat(message(redelivered=True))
    assert may_repeat(message(headers={REPEAT_HEADER: True}))
    assert may_repeat(message(headers={REPEAT_HEADER: "1"}))


def test_the_original_routing_key_survives_a_republish() -> None:
    """The key kept in a header wins over the queue name a republish used."""
    assert routing_key_of(message()) == "problem.update"
    kept = message(routing_key="hl.route", headers={ROUTING_KEY_HEADER: b"problem.create"})
    assert routing_key_of(kept) == "problem.create"


def test_last_line_of_names_the_error() -> None:
    """The quarantine reason of a crash is the last line of its traceback."""
    assert last_line_of(ValueError("bad thing")) == "ValueError: bad thing"
    assert len(last_line_of(RuntimeError("x" * 5000))) == 1000


class Flaky:
    """A publish that fails `failures` times (refused by the broker), then is confirmed."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise PublishFailed("nacked")


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consuming, "PUBLISH_RETRY_DELAYS_S", (0.01, 0.02))


async def test_confirm_retries_only_what_failed() -> None:
    """Publishes that failed are tried again; confirmed ones are not repeated."""
    ok, flaky = Flaky(0), Flaky(2)
    await confirm(message(), [ok, flaky], what="deliveries", hold_s=5)
    assert (ok.calls, flaky.calls) == (1, 3)


async def test_confirm_gives_the_message_back_after_its_hold() -> None:
    """A publish that keeps failing ends the hold: HoldExpired, which returns the message."""
    never = Flaky(10**9)
    with pytest.raises(HoldExpired, match=r"deliveries not confirmed within 0\.1s: nacked"):
        await confirm(message(), [never], what="deliveries", hold_s=0.1)
    assert never.calls > 1


async def test_confirm_stops_when_the_channel_is_gone() -> None:
    """Nothing may be acked on a closed channel: ChannelLost, the broker redelivers."""
    gone = message(channel=FakeChannel(is_closed=True))
    with pytest.raises(ChannelLost):
        await confirm(gone, [Flaky(1)], what="deliveries", hold_s=5)


async def test_a_bug_in_a_publish_is_not_retried() -> None:
    """An error that is not a refused publish is a bug: it propagates at once."""

    async def buggy() -> None:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        await confirm(message(), [buggy], what="deliveries", hold_s=5)


async def test_confirm_runs_a_big_batch_in_bounded_groups() -> None:
    """At most PUBLISH_BATCH publishes wait for their confirms at once."""
    running = peak = 0

    async def publish() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1

    await confirm(message(), [publish] * 450, what="deliveries", hold_s=5)
    assert peak == consuming.PUBLISH_BATCH


def test_errors_say_what_becomes_of_the_message() -> None:
    """Unreadable input is quarantined with its reason; an expired hold goes back to the queue."""
    assert Unreadable("not JSON").outcome() == Quarantine("not JSON")
    back = HoldExpired("table_behind", "webhook table behind", delay_s=2.0).outcome()
    assert back == GiveBack("table_behind", "webhook table behind", 2.0)
