"""POST /events' OpenAPI document (served by the producer at `/openapi.json`)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from schemas.events import EventIn
from services.runtime.openapi import UNAUTHORIZED, document, error, json_content, ref

ACCEPTED = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The event's id (a single event was sent)."},
        "ids": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["ids"],
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
                    "400": error("Invalid input: nothing is published."),
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
