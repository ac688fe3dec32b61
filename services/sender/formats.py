"""What each payload format makes of one delivery: the body's JSON value, its content type, and
the headers that belong to the format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from schemas.deliveries import DeliveredPayload, DeliveryTask
from schemas.payloads import CloudEvent, KeyclicPayload, XurrentPayload
from schemas.webhooks import WebhookState

JSON = "application/json"
CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"
# The delivery's id in the Xurrent style: one value for every attempt of the delivery.
XURRENT_DELIVERY_HEADER = "X-Hookline-Delivery"
DEFAULT_CLOUDEVENTS_SOURCE = "hookline"


@dataclass(frozen=True, slots=True)
class Shaped:
    """One delivery in its webhook's format, not yet encoded."""

    value: BaseModel | dict[str, Any]
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    # Absent optional fields are left out of the body (Xurrent's keys are always there).
    exclude_none: bool = True

    def body(self) -> bytes:
        """The exact bytes sent with POST (and signed)."""
        if isinstance(self.value, BaseModel):
            return self.value.model_dump_json(exclude_none=self.exclude_none).encode()
        return to_json(self.value)

    def query(self) -> list[tuple[str, str]]:
        """The body's top-level fields as query parameters, for GET: strings as they are, every
        other value (numbers, booleans, null, objects, arrays) as its JSON text."""
        if isinstance(self.value, BaseModel):
            fields = self.value.model_dump(mode="json", exclude_none=self.exclude_none)
        else:
            fields = self.value
        return [(name, _query_text(value)) for name, value in fields.items()]


def _query_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def shape(task: DeliveryTask, webhook: WebhookState) -> Shaped:
    """The delivery in the webhook's format."""
    event = task.event
    if webhook.format == "standard":
        return Shaped(DeliveredPayload.of(event, webhook.id))
    if webhook.format == "raw":
        return Shaped(event.data)
    if webhook.format == "keyclic":
        return Shaped(KeyclicPayload(event=event.type, payload=event.data))
    if webhook.format == "xurrent":
        actor = event.actor
        payload = XurrentPayload(
            webhook_id=webhook.id,
            account=event.account or webhook.account,
            name=webhook.name,
            event=event.type,
            object_id=event.object_id,
            person_id=actor.id if actor else None,
            person_name=actor.name if actor else None,
            payload=event.data,
        )
        return Shaped(
            payload, headers={XURRENT_DELIVERY_HEADER: task.delivery_id}, exclude_none=False
        )
    if webhook.format == "cloudevents":
        cloud_event = CloudEvent(
            id=event.id,
            source=event.source or DEFAULT_CLOUDEVENTS_SOURCE,
            type=event.type,
            time=event.time,
            subject=None if event.object_id is None else str(event.object_id),
            data=event.data,
        )
        return Shaped(cloud_event, content_type=CLOUDEVENTS_JSON)
    raise ValueError(f"unknown payload format {webhook.format!r}")
