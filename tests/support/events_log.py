"""Events appended to an install's events stream as a sender appends them: in batches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from schemas.events import EVENT_IDS_HEADER, EVENTS_KIND
from schemas.topology import Topology
from services.runtime.broker import Publisher
from services.runtime.record_batches import RecordBatches


async def append_events(
    publisher: Publisher,
    topology: Topology,
    *events: dict[str, Any],
    headers: Mapping[str, Any] | None = None,
) -> None:
    """Append `events` (stamped: with id and time) to the events stream."""
    batches = RecordBatches(
        publisher,
        topology.events_stream,
        kind=EVENTS_KIND,
        ids_header=EVENT_IDS_HEADER,
        headers=headers,
    )
    submitted = [
        batches.submit(str(event.get("id")), json.dumps(event).encode()) for event in events
    ]
    await asyncio.gather(*submitted)
