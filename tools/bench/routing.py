"""Routing, measured: what `RoutingIndex.route` costs per event with many pattern webhooks.

    .venv/bin/python -m tools.bench.routing [--webhooks 50000] [--events 20000]

In process, no broker. The index holds `--webhooks` pattern webhooks: a handful that match most
events (`MATCHING`), the rest scoped to one account or tenant (`account<N>.request.*`,
`tenant<N>.#`, `*.x<N>.update`, `account<N>.#.deleted`), so that an event matches few of them.
It routes `--events` event types, half plain (`problem.update`, …) and half scoped to accounts
spread over the range, and prints a JSON summary: ms per event (median of `REPEATS` passes), the
deliveries of one pass, the build time, and the bytes the index takes per webhook (tracemalloc,
the webhook states themselves not counted).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.webhooks import WebhookState, new_secret
from services.sender.routing import RoutingIndex

REPEATS = 5
# Patterns that most events match, as a few broad subscriptions would.
MATCHING = ("problem.*", "*.update", "#.update", "problem.#", "#.create.#")
# Patterns scoped to one account: `{}` is its number. Distinct first or second words.
SCOPED = ("account{}.request.*", "tenant{}.#", "*.x{}.update", "account{}.#.deleted")
PLAIN_TYPES = ("problem.update", "problem.create", "request.create", "record.approval.update")
SCOPED_TYPES = ("account{}.request.create", "tenant{}.problem.update", "a.x{}.update")
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def patterns(webhooks: int) -> list[str]:
    """The `event` of each webhook: `MATCHING` first, then scoped ones round the shapes."""
    matching = list(MATCHING[:webhooks])
    scoped = webhooks - len(matching)
    return matching + [SCOPED[n % len(SCOPED)].format(n // len(SCOPED)) for n in range(scoped)]


def event_types(events: int, webhooks: int) -> list[str]:
    """Plain and scoped types in turn; scoped ones hit accounts spread over the whole range."""
    accounts = max(1, webhooks // len(SCOPED))
    types = []
    for n in range(events):
        if n % 2 == 0:
            types.append(PLAIN_TYPES[n // 2 % len(PLAIN_TYPES)])
        else:  # a stride prime to most ranges, so the accounts hit are spread, not adjacent
            account = n * 7919 % accounts
            types.append(SCOPED_TYPES[n // 2 % len(SCOPED_TYPES)].format(account))
    return types


def webhook_states(events: Sequence[str]) -> list[WebhookState]:
    """A webhook per pattern, built once, outside what is measured."""
    return [
        WebhookState(
            id=f"wh_{n}",
            name=f"webhook {n}",
            event=event,
            uri="https://example.com/hook",
            description=None,
            disabled=False,
            mail_exceptions_to=None,
            secret=new_secret(),
            created_at=AT,
            updated_at=AT,
            revision=n,
        )
        for n, event in enumerate(events)
    ]


def measure(webhooks: int, events: int) -> dict[str, Any]:
    """Build the index of `webhooks` pattern webhooks and route `events` types through it."""
    states = webhook_states(patterns(webhooks))
    types = event_types(events, webhooks)

    started = time.perf_counter()
    index = RoutingIndex(states)
    build_s = time.perf_counter() - started

    # A second build under tracemalloc, which slows it down: for its size only.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sized = RoutingIndex(states)
    index_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(sized) == webhooks
    del sized

    passes = []
    deliveries = 0
    for _ in range(REPEATS):
        deliveries = 0
        started = time.perf_counter()
        for event_type in types:
            deliveries += len(index.route(event_type))
        passes.append(time.perf_counter() - started)
    return {
        "webhooks": len(index),
        "events": len(types),
        "ms_per_event": round(statistics.median(passes) * 1000 / max(1, len(types)), 6),
        "deliveries": deliveries,
        "build_s": round(build_s, 4),
        "index_bytes_per_webhook": round(index_bytes / max(1, webhooks)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--webhooks", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.webhooks, args.events), indent=2))


if __name__ == "__main__":
    main()
