"""What becomes of a consumed message: the typed outcome a handler returns, and the small tree of
errors a handler raises when it cannot finish. `WorkConsumer` turns either into one settlement.

A handler confirms what it produced (deliveries, retries, records) before it returns `Done`, so
an ack never runs ahead of what follows the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# Why a message went back to its queue; a closed set, used as a metric label.
GiveBackReason = Literal["hold_expired", "table_behind", "not_current"]


@dataclass(frozen=True, slots=True)
class Done:
    """Ack the message: what it produced is confirmed. `then` runs once the ack went out."""

    then: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class GiveBack:
    """Return the message to its queue after `delay_s`: a bounded hold ran out, try again later."""

    reason: GiveBackReason
    detail: str
    delay_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Quarantine:
    """Park the message in quarantine with its reason, then ack it: no consumer can handle it."""

    reason: str


Outcome = Done | GiveBack | Quarantine


class HandlerError(Exception):
    """A handler could not finish a message; the subclass says what becomes of it."""

    def outcome(self) -> Outcome:
        raise NotImplementedError


class Unreadable(HandlerError):
    """The message is not what this queue carries (bad JSON, wrong shape): it is quarantined."""

    def outcome(self) -> Outcome:
        return Quarantine(str(self))


class HoldExpired(HandlerError):
    """Something the message waits for did not come within its bound: it goes back to its queue."""

    def __init__(self, reason: GiveBackReason, detail: str, *, delay_s: float = 1.0) -> None:
        super().__init__(detail)
        self.reason: GiveBackReason = reason
        self.delay_s = delay_s

    def outcome(self) -> Outcome:
        return GiveBack(self.reason, str(self), self.delay_s)


class ChannelLost(Exception):
    """The channel the message came on is gone: it cannot be settled, the broker redelivers it."""
