"""The broker names of an install and the arguments they are declared with."""

from __future__ import annotations

import pytest

from schemas.topology import DELIVER_KEY, Topology, delay_label


@pytest.fixture
def topology() -> Topology:
    return Topology(prefix="hl-test", retry_delays_s=(5.0, 0.2, 300.0))


def test_every_name_starts_with_the_prefix(topology: Topology) -> None:
    """Every exchange, queue and stream of an install is named under its prefix."""
    names = {*topology.queues(), *topology.exchanges(), *topology.retry_queues}
    # 9 queues and streams, 3 retry tiers, 4 park tiers, 2 exchanges
    assert len(names) == 18
    assert all(name.startswith("hl-test.") for name in names)


@pytest.mark.parametrize(
    ("delay_s", "label"),
    [(0.2, "200ms"), (5, "5s"), (300, "5m"), (7200, "2h"), (1.5, "1500ms"), (90, "90s")],
)
def test_delay_label(delay_s: float, label: str) -> None:
    """A delay is named in the largest unit that divides it exactly."""
    assert delay_label(delay_s) == label


def test_duplicated_delays_give_one_retry_queue() -> None:
    """The same delay twice in the schedule is one retry tier, and tiers are sorted."""
    topology = Topology(prefix="p", retry_delays_s=(300.0, 5.0, 5, 300.0))
    assert topology.retry_queues == ("p.retry.5s", "p.retry.5m")
    assert [name for name in topology.queues() if ".retry." in name] == ["p.retry.5s", "p.retry.5m"]


def test_park_tiers_return_to_the_deliver_queue_like_retry_tiers() -> None:
    """Park tiers are TTL queues named by delay that dead-letter back to `deliver`."""
    topology = Topology(prefix="p", park_delays_s=(5.0, 0.5, 5.0))
    assert topology.park_tiers_s == (0.5, 5.0)
    queues = topology.queues()
    assert queues["p.park.500ms"] == topology.retry_queue_arguments(0.5)
    assert queues["p.park.5s"]["x-message-ttl"] == 5000


def test_the_mail_queue_has_one_active_consumer(topology: Topology) -> None:
    """Failure notices are gathered into digests by one consumer at a time."""
    assert topology.queues()[topology.mail_queue] == {
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
    }


def test_the_health_stream_is_bounded_by_age(topology: Topology) -> None:
    """Health checkpoints are kept a day by default, in small segments so old ones go."""
    arguments = topology.queues()[topology.health_stream]
    assert (arguments["x-queue-type"], arguments["x-max-age"]) == ("stream", "1D")
    assert arguments["x-stream-max-segment-size-bytes"] <= 64 * 1024 * 1024


def test_retry_queue_arguments(topology: Topology) -> None:
    """A retry tier holds messages for its TTL, then dead-letters them back to `deliver`."""
    assert topology.retry_queue_arguments(0.2) == {
        "x-queue-type": "quorum",
        "x-message-ttl": 200,
        "x-dead-letter-exchange": "hl-test.deliveries",
        "x-dead-letter-routing-key": DELIVER_KEY,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert topology.queues()["hl-test.retry.5m"]["x-message-ttl"] == 300_000


def test_work_queues_dead_letter_to_quarantine(topology: Topology) -> None:
    """The route and deliver queues park poison messages in quarantine, at least once."""
    queues = topology.queues()
    for name in (topology.route_queue, topology.deliver_queue):
        arguments = queues[name]
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-dead-letter-exchange"] == ""
        assert arguments["x-dead-letter-routing-key"] == topology.quarantine_queue
        assert arguments["x-dead-letter-strategy"] == "at-least-once"
        assert arguments["x-overflow"] == "reject-publish"
        assert arguments["x-delivery-limit"] > 0


def test_streams_have_a_max_age_only_where_set() -> None:
    """Streams are stream queues; the events and delivery logs are bounded, webhooks is not."""
    topology = Topology(prefix="p", events_max_age="3D", delivery_log_max_age="12h")
    queues = topology.queues()
    assert queues[topology.events_stream] == {"x-queue-type": "stream", "x-max-age": "3D"}
    assert queues[topology.delivery_log_stream] == {"x-queue-type": "stream", "x-max-age": "12h"}
    assert queues[topology.webhooks_stream] == {"x-queue-type": "stream"}
    assert Topology.stream_arguments("") == {"x-queue-type": "stream"}


def test_dead_and_quarantine_queues_are_plain_quorum_queues(topology: Topology) -> None:
    """The dead-letter and quarantine queues dead-letter nowhere themselves."""
    queues = topology.queues()
    assert queues[topology.dead_queue] == {"x-queue-type": "quorum"}
    assert queues[topology.quarantine_queue] == {"x-queue-type": "quorum"}


def test_exchanges(topology: Topology) -> None:
    """Events go through a topic exchange, deliveries through a direct one."""
    assert topology.exchanges() == {"hl-test.events": "topic", "hl-test.deliveries": "direct"}


def test_bindings(topology: Topology) -> None:
    """The route queue gets every event; the deliver queue its key. The events stream is written
    by the senders, not by the exchange."""
    assert list(topology.bindings()) == [
        ("hl-test.route", "hl-test.events", "#"),
        ("hl-test.deliver", "hl-test.deliveries", DELIVER_KEY),
    ]


def test_the_events_streams_binding_of_earlier_versions_is_retired(topology: Topology) -> None:
    """Up to 0.6 the exchange also wrote every event to the events stream: that binding goes."""
    assert list(topology.retired_bindings()) == [("hl-test.events.log", "hl-test.events", "#")]
    assert not set(topology.retired_bindings()) & set(topology.bindings())


def test_every_bound_queue_and_exchange_is_declared(topology: Topology) -> None:
    """Bindings name only queues and exchanges the install declares."""
    for queue, exchange, _key in topology.bindings():
        assert queue in topology.queues()
        assert exchange in topology.exchanges()


def test_work_queues_are_named_by_role_without_the_streams(topology: Topology) -> None:
    """The queues whose depth means something, keyed by their name without the prefix."""
    roles = topology.work_queues()
    assert set(roles) == {
        "route",
        "deliver",
        "dead",
        "quarantine",
        "mail",
        "retry.200ms",
        "retry.5s",
        "retry.5m",
        "park.1s",
        "park.5s",
        "park.30s",
        "park.5m",
    }
    assert roles["dead"] == topology.dead_queue
    assert roles["retry.5s"] == topology.retry_queue(5.0)
    assert topology.events_stream not in roles.values()
