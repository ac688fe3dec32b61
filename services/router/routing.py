"""Which webhooks an event goes to: AMQP topic matching over the webhook table, kept indexed."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.webhooks import WebhookState


def is_pattern(event: str) -> bool:
    """True when a subscription's `event` has wildcards, False for an exact type."""
    return any(word in ("*", "#") for word in event.split("."))


def matches(pattern: str, event_type: str) -> bool:
    """Whether a subscription's `event` (exact or pattern) covers an event type.

    AMQP topic semantics: `*` is exactly one word, `#` zero or more. Matched word by word over the
    set of positions reachable so far, in O(pattern words x type words) and without a regex, whose
    backtracking on patterns like `#.#.#.#.z` would take exponential time.
    """
    if not is_pattern(pattern):
        return pattern == event_type
    words = event_type.split(".")
    reachable = {0}  # how many words of the type the pattern words so far can have consumed
    for part in pattern.split("."):
        if part == "#":
            reachable = set(range(min(reachable), len(words) + 1))
        elif part == "*":
            reachable = {at + 1 for at in reachable if at < len(words)}
        else:
            reachable = {at + 1 for at in reachable if at < len(words) and words[at] == part}
        if not reachable:
            return False
    return len(words) in reachable


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
