"""An attempt that made no call because Hookline could not build the request: its own failure,
which says nothing about the subscriber's endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Why, as a closed set (a metric label).
NotSentWhy = Literal["policy_disabled", "policy_missing", "policy_unusable"]


@dataclass(frozen=True, slots=True)
class NotSent:
    """No call was made; `reason` says why in a few words (the attempt's error)."""

    why: NotSentWhy
    reason: str


class RequestNotPrepared(Exception):
    """Building the request failed for a reason of Hookline's own: `not_sent` says which."""

    def __init__(self, not_sent: NotSent) -> None:
        super().__init__(not_sent.reason)
        self.not_sent = not_sent
