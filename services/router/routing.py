"""Which webhooks an event goes to: AMQP topic matching over the webhook table, kept indexed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from schemas.webhooks import WebhookState


def is_pattern(event: str) -> bool:
    """True when a subscription's `event` has wildcards, False for an exact type."""
    return any(word in ("*", "#") for word in event.split("."))


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    """A regex over `.` + the event type, for an AMQP topic pattern.

    Each word is matched with its leading dot, so `#` (zero or more words) is simply any number of
    `.word` and needs no special case at the start, middle or end.
    """
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:\.[^.]+)*")
        elif word == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(word))
    return re.compile("".join(parts))


def matches(pattern: str, event_type: str) -> bool:
    """Whether a subscription's `event` (exact or pattern) covers an event type."""
    if not is_pattern(pattern):
        return pattern == event_type
    return _compile(pattern).fullmatch("." + event_type) is not None


class RoutingIndex:
    """The enabled webhooks, found by exact type in O(1) and by pattern in O(patterns)."""

    def __init__(self, webhooks: Iterable[WebhookState] = ()) -> None:
        self._exact: dict[str, dict[str, WebhookState]] = {}
        self._patterns: dict[str, WebhookState] = {}
        self._event_of: dict[str, str] = {}
        for webhook in webhooks:
            self.put(webhook)

    def put(self, webhook: WebhookState) -> None:
        """Add or replace a webhook; a disabled one leaves routing."""
        self.remove(webhook.id)
        if webhook.disabled:
            return
        self._event_of[webhook.id] = webhook.event
        if is_pattern(webhook.event):
            self._patterns[webhook.id] = webhook
        else:
            self._exact.setdefault(webhook.event, {})[webhook.id] = webhook

    def remove(self, webhook_id: str) -> None:
        event = self._event_of.pop(webhook_id, None)
        if event is None:
            return
        if is_pattern(event):
            del self._patterns[webhook_id]
            return
        by_id = self._exact[event]
        del by_id[webhook_id]
        if not by_id:
            del self._exact[event]

    def route(self, event_type: str) -> list[WebhookState]:
        """Every enabled webhook subscribed to `event_type`."""
        found = list(self._exact.get(event_type, {}).values())
        found.extend(w for w in self._patterns.values() if matches(w.event, event_type))
        return found

    def __len__(self) -> int:
        return len(self._event_of)
