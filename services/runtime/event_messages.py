"""Reading an event from an AMQP message as upstream published it: on the route queue (the
senders) and in the events stream (replay), checked against the event catalog unless its
publisher did so already."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from schemas.events import Event, EventIn, content_event_id
from schemas.topology import CATALOG_HEADER
from services.runtime.catalog import EventCatalog
from services.runtime.consuming import routing_key_of
from services.runtime.outcomes import Unreadable


class UnreadableEvent(Unreadable):
    """The message is not an event we can route; it goes to quarantine with this reason."""


def read_event(message: AbstractIncomingMessage, catalog: EventCatalog | None = None) -> Event:
    """The stamped event in an AMQP message, or UnreadableEvent saying what is wrong: with its
    fields, or (given a catalog) with its type or its data for the catalog."""
    return read_event_to_log(message, catalog)[0]


def read_event_to_log(
    message: AbstractIncomingMessage, catalog: EventCatalog | None = None
) -> tuple[Event, bytes]:
    """The stamped event (as `read_event`), and the JSON of it to append to the events stream: the
    message's own body when that has the event's id and time (the producer and the SDK stamp
    every event), so it is not encoded again; else the stamped event encoded."""
    try:
        raw = json.loads(message.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise UnreadableEvent(f"body is not JSON: {error}") from None
    except RecursionError:
        raise UnreadableEvent("body nests too deeply") from None
    if not isinstance(raw, dict):
        raise UnreadableEvent("body is not a JSON object")
    try:
        event_in = EventIn.model_validate(raw)
    except ValidationError as error:
        raise UnreadableEvent(describe_validation_error(error)) from None
    routing_key = routing_key_of(message)
    if routing_key != event_in.type:
        raise UnreadableEvent(
            f"routing key {routing_key!r} is not the event type {event_in.type!r}"
        )
    event_id = event_in.id or message.message_id or content_event_id(routing_key, message.body)
    received = message.timestamp or datetime.now(UTC)
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    try:
        event = event_in.stamped(id_=event_id, now=received)
    except ValidationError as error:  # only the AMQP message_id can be wrong by now
        raise UnreadableEvent(f"message_id: {describe_validation_error(error)}") from None
    if catalog is not None:
        check_cataloged(message, event, catalog)
    if event_in.id is not None and event_in.time is not None:
        return event, message.body
    return event, event.model_dump_json(exclude_none=True).encode()


def check_cataloged(message: AbstractIncomingMessage, event: Event, catalog: EventCatalog) -> None:
    """UnreadableEvent naming each place the catalog refuses the event, unless its publisher
    marked it as checked against these very rules: the producer checks every event it takes (a
    400 tells its client what is wrong), so each event is checked once on its way in."""
    if not catalog.checks or checked_by_publisher(message, catalog):
        return
    problems = catalog.problems(event.type, event.data)
    if not problems:
        return
    if event.type in catalog:
        reason = f"data does not match the catalog's schema of {event.type!r}: "
    else:
        reason = ""
    raise UnreadableEvent(reason + "; ".join(str(problem) for problem in problems))


def checked_by_publisher(message: AbstractIncomingMessage, catalog: EventCatalog) -> bool:
    mark = (message.headers or {}).get(CATALOG_HEADER)
    if isinstance(mark, bytes):
        mark = mark.decode(errors="replace")
    return mark == catalog.digest


def describe_validation_error(error: ValidationError) -> str:
    """`type: String should match pattern …; data: Field required` — field first."""
    parts = []
    for problem in error.errors()[:10]:
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        parts.append(f"{field}: {problem['msg']}")
    return "; ".join(parts)
