"""Every exchange, queue and stream Hookline uses: names, arguments and why.

All names start with the install's prefix (`HOOKLINE_PREFIX`), so two installs or test runs share a
broker without touching each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Quorum queues replicate and survive a node loss; classic queues do not.
QUORUM = {"x-queue-type": "quorum"}
# The broker's own count of deliveries, after which a work queue dead-letters a message to
# quarantine. It counts every return, channel losses and restarts included, so it is only a safety
# net for a message that kills its consumer's process; crashes are counted by the consumers (see
# CRASHES_HEADER). Quorum queues allow limit + 1 deliveries.
POISON_DELIVERY_LIMIT = 200
# Routing key of the deliver queue on the deliveries exchange; retry and park tiers return to it.
DELIVER_KEY = "deliver"
# Header that says why a message was parked in quarantine or dead-lettered.
REASON_HEADER = "x-hookline-reason"
# Header that names the queue a message was quarantined from (the broker's own dead-lettering says
# it in `x-first-death-queue`).
SOURCE_HEADER = "x-hookline-source"
# Header that counts how many times in a row a message crashed its handler (set when a consumer
# republishes it after a crash; read to quarantine it after too many).
CRASHES_HEADER = "x-hookline-crashes"
# Header of a message that may repeat work already done (republished after a crash, or a delivery
# routed again from a redelivered event): its consumer checks what is recorded before acting.
REPEAT_HEADER = "x-hookline-repeat"
# Value of REPEAT_HEADER on the retry a repeated attempt produced: it may duplicate the retry the
# first making of that attempt published, and is checked once more, but its own retry is not.
REPEAT_PRODUCT = "product"
# Header of a message that may repeat work and waits until any earlier making of it must have been
# recorded: the Unix time in milliseconds it may be checked and attempted.
RECHECK_AT_HEADER = "x-hookline-recheck-at"
# Header that keeps a message's original routing key when it is republished to a queue directly.
ROUTING_KEY_HEADER = "x-hookline-routing-key"
# Header of a dead letter: the attempts it had.
ATTEMPTS_HEADER = "x-hookline-attempts"
# Header of an event its publisher checked against the event catalog (the producer does): the
# digest of the catalog's rules. A sender holding the same rules does not check it again; any
# other event off the route queue is checked there.
CATALOG_HEADER = "x-hookline-catalog"
# Delays of the park tiers: where a sender puts a delivery whose endpoint is busy or whose circuit
# is open, without using up an attempt, so it never holds a prefetch slot waiting.
DEFAULT_PARK_DELAYS_S = (1.0, 5.0, 30.0, 300.0)
# Segment size of the health stream: retention drops whole segments only.
HEALTH_SEGMENT_BYTES = 16 * 1024 * 1024


def delay_label(delay_s: float) -> str:
    """A readable, exact name for a retry delay: `200ms`, `5s`, `30m`, `10h`."""
    ms = delay_ms(delay_s)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def delay_ms(delay_s: float) -> int:
    return max(1, round(delay_s * 1000))


@dataclass(frozen=True)
class Topology:
    """The broker names of one install, and the arguments each is declared with."""

    prefix: str
    retry_delays_s: tuple[float, ...] = ()
    events_max_age: str = "7D"
    delivery_log_max_age: str = "7D"
    park_delays_s: tuple[float, ...] = DEFAULT_PARK_DELAYS_S
    health_max_age: str = "1D"
    _tiers: tuple[int, ...] = field(init=False, repr=False)
    _park_tiers: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_tiers", tuple(sorted({delay_ms(d) for d in self.retry_delays_s}))
        )
        object.__setattr__(
            self, "_park_tiers", tuple(sorted({delay_ms(d) for d in self.park_delays_s}))
        )

    # Upstream systems publish to this topic exchange with the event type as routing key.
    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    # The router's work queue: every event, bound with `#`.
    @property
    def route_queue(self) -> str:
        return f"{self.prefix}.route"

    # Every event routed, kept for replay (bounded by age). Senders append the events they take
    # off the route queue, many to a message (kind EVENTS_KIND), before acking them: one broker
    # write per batch instead of one per event, which the exchange's binding (up to 0.6) cost.
    @property
    def events_stream(self) -> str:
        return f"{self.prefix}.events.log"

    # Every change to a webhook: the source of truth of subscriptions, never truncated.
    @property
    def webhooks_stream(self) -> str:
        return f"{self.prefix}.webhooks.log"

    # Direct exchange for delivery messages; keys: `deliver` and nothing else for now.
    @property
    def deliveries_exchange(self) -> str:
        return f"{self.prefix}.deliveries"

    # The senders' shared work queue.
    @property
    def deliver_queue(self) -> str:
        return f"{self.prefix}.deliver"

    # Deliveries that used up every attempt, each with its reason.
    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    # Messages no service can read (bad JSON, wrong shape) or that crashed consumers repeatedly.
    @property
    def quarantine_queue(self) -> str:
        return f"{self.prefix}.quarantine"

    # One record per delivery attempt: the delivery log that endpoint health is folded from.
    @property
    def delivery_log_stream(self) -> str:
        return f"{self.prefix}.deliveries.log"

    # Checkpoints of the routers' endpoint-health projection, so a router starts from the latest
    # one instead of replaying the delivery log (bounded by age; only the last one matters).
    @property
    def health_stream(self) -> str:
        return f"{self.prefix}.health.log"

    # Notices of dead letters and disabled webhooks, mailed as digests by one router at a time.
    @property
    def mail_queue(self) -> str:
        return f"{self.prefix}.mail"

    def retry_queue(self, delay_s: float) -> str:
        return f"{self.prefix}.retry.{delay_label(delay_s)}"

    @property
    def retry_queues(self) -> tuple[str, ...]:
        return tuple(self.retry_queue(ms / 1000) for ms in self._tiers)

    @property
    def retry_tiers_s(self) -> tuple[float, ...]:
        """The delays that have a retry queue, shortest first."""
        return tuple(ms / 1000 for ms in self._tiers)

    def park_queue(self, delay_s: float) -> str:
        return f"{self.prefix}.park.{delay_label(delay_s)}"

    @property
    def park_tiers_s(self) -> tuple[float, ...]:
        """The delays that have a park queue, shortest first."""
        return tuple(ms / 1000 for ms in self._park_tiers)

    # --- arguments --------------------------------------------------------------------------

    def work_queue_arguments(self) -> dict[str, Any]:
        """A quorum work queue whose poison messages go to quarantine, at least once."""
        return {
            **QUORUM,
            "x-delivery-limit": POISON_DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.quarantine_queue,
            # at-least-once dead-lettering needs reject-publish overflow (RabbitMQ docs).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def retry_queue_arguments(self, delay_s: float) -> dict[str, Any]:
        """A retry (or park) tier: each message waits `delay_s`, then dead-letters back to the
        deliver queue.

        One queue per delay because per-message TTLs on a shared queue block behind the head.
        """
        return {
            **QUORUM,
            "x-message-ttl": delay_ms(delay_s),
            "x-dead-letter-exchange": self.deliveries_exchange,
            "x-dead-letter-routing-key": DELIVER_KEY,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def mail_queue_arguments(self) -> dict[str, Any]:
        """One consumer at a time, so each webhook's digest is gathered and mailed in one place."""
        return {**QUORUM, "x-single-active-consumer": True}

    @staticmethod
    def stream_arguments(max_age: str | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": "stream"}
        if max_age:
            arguments["x-max-age"] = max_age
        return arguments

    def health_stream_arguments(self) -> dict[str, Any]:
        # Small segments, so retention by age frees checkpoints soon after newer ones exist.
        return {
            **self.stream_arguments(self.health_max_age),
            "x-stream-max-segment-size-bytes": HEALTH_SEGMENT_BYTES,
        }

    def queues(self) -> dict[str, dict[str, Any]]:
        """Every queue of the install with its arguments, in declaration order."""
        queues: dict[str, dict[str, Any]] = {
            self.quarantine_queue: dict(QUORUM),
            self.dead_queue: dict(QUORUM),
            self.route_queue: self.work_queue_arguments(),
            self.deliver_queue: self.work_queue_arguments(),
            self.events_stream: self.stream_arguments(self.events_max_age),
            self.webhooks_stream: self.stream_arguments(None),
            self.delivery_log_stream: self.stream_arguments(self.delivery_log_max_age),
            self.health_stream: self.health_stream_arguments(),
            self.mail_queue: self.mail_queue_arguments(),
        }
        for delay_s in self.retry_tiers_s:
            queues[self.retry_queue(delay_s)] = self.retry_queue_arguments(delay_s)
        for delay_s in self.park_tiers_s:
            queues[self.park_queue(delay_s)] = self.retry_queue_arguments(delay_s)
        return queues

    def work_queues(self) -> dict[str, str]:
        """Every queue that holds work or letters, by role: its name without the prefix (`route`,
        `deliver`, `retry.5s`, `park.1s`, `dead`, `quarantine`, `mail`). Streams are left out: they
        are logs read from an offset, not queues that drain, so they have no depth to watch."""
        return {
            name.removeprefix(f"{self.prefix}."): name
            for name, arguments in self.queues().items()
            if arguments.get("x-queue-type") != "stream"
        }

    def exchanges(self) -> dict[str, str]:
        """Every exchange of the install with its type."""
        return {self.events_exchange: "topic", self.deliveries_exchange: "direct"}

    def bindings(self) -> Iterable[tuple[str, str, str]]:
        """(queue, exchange, routing key) for every binding."""
        yield self.route_queue, self.events_exchange, "#"
        yield self.deliver_queue, self.deliveries_exchange, DELIVER_KEY

    def retired_bindings(self) -> Iterable[tuple[str, str, str]]:
        """Bindings of earlier versions that this one removes: the events stream was bound to the
        events exchange up to 0.6, and now senders append to it (a second copy of every event
        while the binding stays)."""
        yield self.events_stream, self.events_exchange, "#"
