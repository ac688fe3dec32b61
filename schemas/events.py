"""Domain events as upstream systems publish them, and as Hookline stores them once stamped."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
)

# One word of an event type: letters, digits, '_', '-' (`request.team-changed`, `recordApproval`).
TYPE_WORD = r"[A-Za-z0-9_-]+"
EVENT_TYPE_PATTERN = rf"^{TYPE_WORD}(\.{TYPE_WORD})*$"
# AMQP routing keys are at most 255 bytes, and the event type is the routing key.
MAX_TYPE_LENGTH = 255
# Visible ASCII without spaces: UUIDs, ULIDs, numeric ids and `KXREC…` ids all fit.
EVENT_ID_PATTERN = r"^[!-~]+$"
MAX_EVENT_ID_LENGTH = 128

# How deeply `data` may nest. Every parser on the way must read what the producer accepted, and
# pydantic's JSON parser stops near 200 levels; no real payload comes close to 64.
MAX_DATA_DEPTH = 64


def json_depth(value: object) -> int:
    """How many objects and arrays deep a parsed JSON value nests (a scalar is 0)."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _check_depth(data: dict[str, Any]) -> dict[str, Any]:
    if json_depth(data) > MAX_DATA_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DATA_DEPTH} levels")
    return data


EventType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TYPE_LENGTH,
        pattern=EVENT_TYPE_PATTERN,
        description="Dotted event name (`problem.update`) or a plain one (`recordApproval`).",
        examples=["problem.update", "recordApproval"],
    ),
]
EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_EVENT_ID_LENGTH,
        pattern=EVENT_ID_PATTERN,
        description="The event's id, also its idempotency key: the same id twice is one event.",
    ),
]
ObjectId = (
    Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
    | Annotated[str, Field(min_length=1, max_length=255)]
)


def rfc3339_text(value: object) -> object:
    """A time given as a number (pydantic would read it as Unix seconds) is a mistake here."""
    if value is not None and not isinstance(value, (str, datetime)):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


# The kind (AMQP `type`) of an events-stream message holding a JSON array of stamped events, as
# senders append them, and the header listing their ids in order. Up to 0.6 each event was its own
# message there, as published (routed by the events exchange).
EVENTS_KIND = "events.batch"
EVENT_IDS_HEADER = "event_ids"


class Actor(BaseModel):
    """Who made the change the event is about (Xurrent's `person_id` and `person_name`)."""

    model_config = ConfigDict(extra="forbid", title="Actor")

    id: ObjectId | None = None
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class EventIn(BaseModel):
    """An event as an upstream system sends it, over HTTP or AMQP."""

    model_config = ConfigDict(extra="forbid", title="Event")

    type: EventType
    data: Annotated[dict[str, Any], AfterValidator(_check_depth)] = Field(
        description=(
            "The event's payload (at most 64 levels deep), delivered as the same JSON value, not"
            " the same bytes: key order is kept, numbers and escapes are encoded again."
        )
    )
    id: EventId | None = None
    source: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    object_id: ObjectId | None = Field(
        default=None, description="The id of the object the event is about."
    )
    time: Annotated[AwareDatetime | None, BeforeValidator(rfc3339_text)] = Field(
        default=None, description="When it happened (RFC 3339 with a zone); defaults to receipt."
    )
    account: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    actor: Actor | None = Field(default=None, description="Who made the change, if a person did.")

    def stamped(self, *, id_: str | None = None, now: datetime | None = None) -> Event:
        """The event with an id and a time, keeping those it already had."""
        return Event(
            type=self.type,
            data=self.data,
            id=self.id or id_ or new_event_id(),
            source=self.source,
            object_id=self.object_id,
            time=self.time or now or datetime.now(UTC),
            account=self.account,
            actor=self.actor,
        )


class Event(EventIn):
    """An event once Hookline has accepted it: it always has an id and a time."""

    model_config = ConfigDict(extra="forbid", title="StampedEvent")

    id: EventId
    time: AwareDatetime


def new_event_id() -> str:
    """A fresh, unique event id."""
    return f"evt_{uuid.uuid4().hex}"


def content_event_id(routing_key: str, body: bytes) -> str:
    """A stable id for an AMQP event published without one, so a redelivery routes identically."""
    digest = hashlib.sha256(routing_key.encode() + b"\0" + body).hexdigest()
    return f"evt_{digest[:32]}"
