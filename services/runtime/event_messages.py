"""Reading an event from an AMQP message as upstream published it: on the route queue (the
senders) and in the events stream (replay)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from schemas.events import Event, EventIn, content_event_id
from services.runtime.consuming import routing_key_of
from services.runtime.outcomes import Unreadable


class UnreadableEvent(Unreadable):
    """The message is not an event we can route; it goes to quarantine with this reason."""


def read_event(message: AbstractIncomingMessage) -> Event:
    """The stamped event in an AMQP message, or UnreadableEvent saying what is wrong."""
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
        return event_in.stamped(id_=event_id, now=received)
    except ValidationError as error:  # only the AMQP message_id can be wrong by now
        raise UnreadableEvent(f"message_id: {describe_validation_error(error)}") from None


def describe_validation_error(error: ValidationError) -> str:
    """`type: String should match pattern …; data: Field required` — field first."""
    parts = []
    for problem in error.errors()[:10]:
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        parts.append(f"{field}: {problem['msg']}")
    return "; ".join(parts)
