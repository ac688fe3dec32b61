"""The grammar of a subscription's `event`: an exact type, or an AMQP topic pattern (`*` is one
word, `#` zero or more), and what a pattern matches."""

from __future__ import annotations


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
