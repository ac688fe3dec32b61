"""Matching events to webhooks with AMQP topic semantics, and the routing index."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.event_patterns import matches
from schemas.webhooks import WebhookState
from services.sender.routing import RoutingIndex

MakeWebhook = Callable[..., WebhookState]


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


def trie_nodes(index: RoutingIndex) -> int:
    """How many nodes the index's pattern tries hold, their roots included."""
    count, todo = 0, [subscriptions._root for subscriptions in index._by_account.values()]
    while todo:
        node = todo.pop()
        count += 1
        todo.extend(node.children.values())
    return count


def routed_ids(index: RoutingIndex, event_type: str) -> list[str]:
    """The ids route() gives, sorted and duplicates kept, to compare with what is expected."""
    return sorted(w.id for w in index.route(event_type))


def test_index_routes_each_webhook_once_whatever_the_paths(make_webhook: MakeWebhook) -> None:
    """Patterns the trie reaches by several paths (`#.#`, `a.#.#`) still deliver once."""
    events = ["#.#", "a.#.#", "#.a.#", "a.*.#", "#.*.#.*.#"]
    index = RoutingIndex(make_webhook(id=f"wh_{n}", event=e) for n, e in enumerate(events))
    assert routed_ids(index, "a.b.c") == [f"wh_{n}" for n in range(5)]
    assert routed_ids(index, "b") == ["wh_0"]


# Words of the random patterns and types: few, so that patterns share prefixes and often match.
PATTERN_WORDS = ("a", "b", "c", "*", "#")
TYPE_WORDS = ("a", "b", "c")
# Every type of 1 to 4 words, and some longer ones, which `#` is for.
TYPES = [
    ".".join(words) for size in range(1, 5) for words in itertools.product(TYPE_WORDS, repeat=size)
]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_index_routes_as_matches_says(make_webhook: MakeWebhook, seed: int) -> None:
    """route() gives exactly the webhooks `matches` covers, each once, through removes and puts."""
    rng = random.Random(seed)

    def random_event() -> str:
        return ".".join(rng.choice(PATTERN_WORDS) for _ in range(rng.randint(1, 5)))

    types = TYPES + [".".join(rng.choices(TYPE_WORDS, k=rng.randint(5, 9))) for _ in range(20)]
    live = {f"wh_{n}": make_webhook(id=f"wh_{n}", event=random_event()) for n in range(80)}
    index = RoutingIndex(live.values())

    def check() -> None:
        assert len(index) == len(live)
        for event_type in types:
            expected = sorted(i for i, w in live.items() if matches(w.event, event_type))
            assert routed_ids(index, event_type) == expected, event_type

    check()
    for _ in range(3):
        for webhook_id in rng.sample(sorted(live), 30):
            index.remove(webhook_id)
            del live[webhook_id]
        for n in rng.sample(range(120), 40):  # re-puts, new ids and disabled ones alike
            webhook = make_webhook(id=f"wh_{n}", event=random_event(), disabled=rng.random() < 0.2)
            index.put(webhook)
            live.pop(webhook.id, None)
            if not webhook.disabled:
                live[webhook.id] = webhook
        check()


def test_removing_webhooks_prunes_the_trie(make_webhook: MakeWebhook) -> None:
    """Churn of creates, changes and deletes leaves no empty node: the trie does not grow."""
    rng = random.Random(7)

    def random_event() -> str:
        words = (*PATTERN_WORDS, f"account{rng.randint(0, 500)}")
        return ".".join(rng.choices(words, k=rng.randint(1, 6)))

    index = RoutingIndex()
    empty = trie_nodes(index)
    for round_ in range(5):
        live = {}
        for n in range(200):
            webhook = make_webhook(id=f"wh_{round_}_{n}", event=random_event())
            index.put(webhook)
            live[webhook.id] = webhook
        for webhook_id in rng.sample(sorted(live), 100):  # a changed event leaves the old path
            live[webhook_id] = make_webhook(id=webhook_id, event=random_event())
            index.put(live[webhook_id])
        for webhook_id in rng.sample(sorted(live), 150):
            index.remove(webhook_id)
            del live[webhook_id]
        assert trie_nodes(index) == trie_nodes(RoutingIndex(live.values()))
        for webhook_id in live:
            index.remove(webhook_id)
        assert len(index) == 0
        assert trie_nodes(index) == empty
        assert index.route("a.b") == []


def test_routing_with_many_hashes_is_bounded(make_webhook: MakeWebhook) -> None:
    """`#.#.#.#.#.#.z` against a 30-word type returns, and right: the walk is not exponential."""
    index = RoutingIndex(
        [
            make_webhook(id="wh_z", event=".".join(["#"] * 6 + ["z"])),
            make_webhook(id="wh_hashes", event=".".join(["#", "*"] * 6)),
        ]
    )
    assert routed_ids(index, ".".join(["a"] * 30)) == ["wh_hashes"]
    assert routed_ids(index, ".".join(["a"] * 29 + ["z"])) == ["wh_hashes", "wh_z"]


# Property: after any sequence of puts (enabled or disabled, exact or pattern, of an account or
# of none) and removals, the index routes every type, of an account or of none, to exactly the
# enabled webhooks whose event matches it and whose account is the event's or none, each once.
ROUTING_TYPES = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=5).map(".".join)
ROUTING_EVENTS = st.lists(st.sampled_from(["a", "b", "c", "*", "#"]), min_size=1, max_size=5).map(
    ".".join
)
ACCOUNTS = st.sampled_from([None, "acme", "globex"])
CHANGES = st.lists(
    st.tuples(
        st.integers(0, 9), ROUTING_EVENTS | ROUTING_TYPES, ACCOUNTS, st.booleans(), st.booleans()
    ),
    max_size=40,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # a stateless factory
@given(
    changes=CHANGES,
    events=st.lists(st.tuples(ROUTING_TYPES, ACCOUNTS), min_size=1, max_size=8),
)
def test_the_index_routes_as_matching_each_enabled_webhook_would(
    make_webhook: MakeWebhook,
    changes: list[tuple[int, str, str | None, bool, bool]],
    events: list[tuple[str, str | None]],
) -> None:
    index = RoutingIndex()
    table: dict[str, WebhookState] = {}
    for number, event, account, disabled, removed in changes:
        webhook_id = f"wh_{number}"
        if removed:
            index.apply(webhook_id, None)
            table.pop(webhook_id, None)
        else:
            state = make_webhook(id=webhook_id, event=event, account=account, disabled=disabled)
            index.apply(webhook_id, state)
            table[webhook_id] = state
    for event_type, event_account in events:
        routed = [webhook.id for webhook in index.route(event_type, event_account)]
        assert len(routed) == len(set(routed)), "a webhook routed twice"
        assert set(routed) == {
            webhook_id
            for webhook_id, state in table.items()
            if not state.disabled
            and matches(state.event, event_type)
            and state.account in (None, event_account)
        }
    assert len(index) == sum(not state.disabled for state in table.values())
