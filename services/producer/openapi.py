"""POST /events' OpenAPI document (served by the producer at `/openapi.json`)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from schemas.events import EventIn
from services.runtime.openapi import UNAUTHORIZED, document, error, json_content, ref

EVENT_ID = {"type": "string", "description": "The event's id: its own, or the one given it."}
ACCEPTED = {
    "oneOf": [
        {
            "type": "object",
            "description": "One event was sent.",
            "properties": {
                "id": EVENT_ID,
                "ids": {"type": "array", "items": EVENT_ID, "minItems": 1, "maxItems": 1},
            },
            "required": ["id", "ids"],
        },
        {
            "type": "object",
            "description": "An array was sent: each event's id, in the order sent.",
            "properties": {
                "ids": {"type": "array", "items": EVENT_ID, "minItems": 1},
                "events": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"id": EVENT_ID}, "required": ["id"]},
                    "minItems": 1,
                },
            },
            "required": ["ids", "events"],
        },
    ]
}


def producer_document(*, max_batch: int) -> dict[str, Any]:
    events = {
        "oneOf": [
            ref(EventIn),
            {"type": "array", "items": ref(EventIn), "minItems": 1, "maxItems": max_batch},
        ]
    }
    unconfirmed = error(
        "The broker did not confirm the events: send them again with these ids.",
        **{"Retry-After": "string"},
    )
    paths = {
        "/events": {
            "post": {
                "summary": "Publish one event or a batch; answered once the broker confirmed all.",
                "requestBody": {"required": True, "content": json_content(events)},
                "responses": {
                    "202": {"description": "Published.", "content": json_content(ACCEPTED)},
                    "400": error(
                        "Invalid input, data its type's schema in the event catalog refuses "
                        "(`data.fields[0].value.current`), a type the catalog lacks while "
                        "uncataloged types are refused (`type`), or two events of one array with "
                        "one id: nothing is published."
                    ),
                    "401": UNAUTHORIZED,
                    "413": error("The body is larger than HOOKLINE_MAX_BODY_BYTES."),
                    "415": error("The body is not sent as application/json."),
                    "503": unconfirmed,
                },
            }
        }
    }
    return document(
        title="Hookline events API",
        version=version("hookline"),
        description="Upstream systems publish domain events here (or straight to the broker).",
        paths=paths,
        models=[EventIn],
    )
