"""Matching events to webhooks with AMQP topic semantics, and the routing index."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from schemas.webhooks import WebhookState
from services.router.routing import RoutingIndex, is_pattern, matches

MakeWebhook = Callable[..., WebhookState]


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
        f"from services.router.routing import matches; print(matches({pattern!r}, {event_type!r}))"
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


def test_index_routes_exact_and_pattern_subscriptions(make_webhook: MakeWebhook) -> None:
    """route() finds every webhook whose event covers the type, exact or pattern."""
    exact = make_webhook(id="wh_exact", event="problem.update")
    star = make_webhook(id="wh_star", event="problem.*")
    hash_ = make_webhook(id="wh_all", event="#")
    other = make_webhook(id="wh_other", event="request.create")
    index = RoutingIndex([exact, star, hash_, other])
    assert {w.id for w in index.route("problem.update")} == {"wh_exact", "wh_star", "wh_all"}
    assert {w.id for w in index.route("request.create")} == {"wh_other", "wh_all"}
    assert {w.id for w in index.route("unknown")} == {"wh_all"}


def test_index_does_not_route_disabled_webhooks(make_webhook: MakeWebhook) -> None:
    """A disabled webhook is not in the index and gets no events."""
    index = RoutingIndex([make_webhook(id="wh_1", disabled=True)])
    assert index.route("problem.update") == []
    assert len(index) == 0


def test_disabling_a_webhook_takes_it_out_of_routing(make_webhook: MakeWebhook) -> None:
    """Putting a disabled version of a routed webhook removes it."""
    index = RoutingIndex([make_webhook(id="wh_1", event="problem.*")])
    index.put(make_webhook(id="wh_1", event="problem.*", disabled=True))
    assert index.route("problem.update") == []
    assert len(index) == 0


def test_an_update_that_changes_the_event_moves_the_webhook(make_webhook: MakeWebhook) -> None:
    """A webhook whose event changed is routed by the new event only."""
    index = RoutingIndex([make_webhook(id="wh_1", event="problem.update")])
    index.put(make_webhook(id="wh_1", event="request.*", revision=2))
    assert index.route("problem.update") == []
    routed = index.route("request.create")
    assert [(w.id, w.revision) for w in routed] == [("wh_1", 2)]
    index.put(make_webhook(id="wh_1", event="problem.update", revision=3))
    assert index.route("request.create") == []
    assert [w.id for w in index.route("problem.update")] == ["wh_1"]
    assert len(index) == 1


def test_remove_takes_a_webhook_out_and_ignores_unknown_ids(make_webhook: MakeWebhook) -> None:
    """remove() drops a webhook; removing one that is not there does nothing."""
    index = RoutingIndex(
        [make_webhook(id="wh_1"), make_webhook(id="wh_2"), make_webhook(id="wh_3", event="#")]
    )
    index.remove("wh_1")
    index.remove("wh_3")
    index.remove("wh_missing")
    assert [w.id for w in index.route("problem.update")] == ["wh_2"]
    assert len(index) == 1


def test_len_counts_enabled_webhooks(make_webhook: MakeWebhook) -> None:
    """len() is the number of enabled webhooks, exact and pattern alike."""
    index = RoutingIndex()
    assert len(index) == 0
    index.put(make_webhook(id="wh_1"))
    index.put(make_webhook(id="wh_2", event="#"))
    index.put(make_webhook(id="wh_3", disabled=True))
    index.put(make_webhook(id="wh_1"))
    assert len(index) == 2
