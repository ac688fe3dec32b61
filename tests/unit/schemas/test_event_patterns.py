"""Matching events to subscriptions with AMQP topic semantics."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.event_patterns import is_pattern, matches


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("#", "a", True),
        ("#", "recordApproval", True),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.#", "b.a", False),
        ("a.#", "ab", False),
        ("#.b", "b", True),
        ("#.b", "a.c.b", True),
        ("#.b", "b.a", False),
        ("#.b", "ab", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.x", False),
        ("*.create", "problem.create", True),
        ("*.create", "create", False),
        ("*.create", "a.b.create", False),
        ("problem.*", "problem.update", True),
        ("problem.*", "problem", False),
        ("problem.*", "problem.a.b", False),
        ("*", "recordApproval", True),
        ("*", "a.b", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b.c.d", True),
        ("request.*", "request.team-changed", True),
    ],
)
def test_matches_follows_amqp_topic_semantics(
    pattern: str, event_type: str, expected: bool
) -> None:
    """`*` matches exactly one word and `#` zero or more words, anywhere in the pattern."""
    assert matches(pattern, event_type) is expected


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("problem.update", "problem.update", True),
        ("problem.update", "problem.updated", False),
        ("problem.update", "problem", False),
        ("recordApproval", "recordapproval", False),
    ],
)
def test_exact_types_match_only_themselves(pattern: str, event_type: str, expected: bool) -> None:
    """A subscription without wildcards matches its type exactly, case included."""
    assert matches(pattern, event_type) is expected


def test_matching_time_does_not_explode_with_many_hashes() -> None:
    """A legal pattern of many `#` words is matched against a 255-character type in linear time.

    Run in a child process, because a backtracking matcher would not return for hours.
    """
    pattern = ".".join(["#"] * 12 + ["z"])  # WebhookCreate accepts this pattern
    event_type = ".".join(["a"] * 128)  # 255 characters, the longest type there is
    code = (
        f"from schemas.event_patterns import matches; print(matches({pattern!r}, {event_type!r}))"
    )
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=5, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"matches({pattern!r}, <128 words>) did not return within 5 s")
    assert done.stdout.strip() == "False"


def test_is_pattern() -> None:
    """Only whole `*` or `#` words make a pattern."""
    assert is_pattern("problem.*")
    assert is_pattern("#")
    assert not is_pattern("problem.update")
    assert not is_pattern("recordApproval")


# Property: `matches` is AMQP topic matching, checked against its definition written as plainly
# as possible (a recursion over words), on types and patterns from a small alphabet so that
# wildcards meet the words they may or may not cover.
TYPE_WORDS = st.sampled_from(["a", "b", "c"])
PATTERN_WORDS = st.sampled_from(["a", "b", "c", "*", "#"])
EVENT_TYPES = st.lists(TYPE_WORDS, min_size=1, max_size=6).map(".".join)
PATTERNS = st.lists(PATTERN_WORDS, min_size=1, max_size=6).map(".".join)


@functools.cache
def topic_match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":  # takes no word, or one more word and stays
        return topic_match(rest, words) or (bool(words) and topic_match(pattern, words[1:]))
    if not words:
        return False
    return (head in ("*", words[0])) and topic_match(rest, words[1:])


@given(PATTERNS, EVENT_TYPES)
def test_matches_is_amqp_topic_matching(pattern: str, event_type: str) -> None:
    expected = topic_match(tuple(pattern.split(".")), tuple(event_type.split(".")))
    assert matches(pattern, event_type) == expected
