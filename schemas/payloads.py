"""The bodies of the payload formats other than `standard` (`schemas.deliveries.DeliveredPayload`).

Each is what one product's subscribers already receive, so a platform team can move that
product's webhooks onto Hookline without its subscribers changing a line. `raw` has no model: its
body is the event's `data` as the producer sent it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import ObjectId


class XurrentPayload(BaseModel):
    """The Xurrent (ITRP) webhook body: every key is always there, null when unknown."""

    model_config = ConfigDict(title="XurrentPayload")

    webhook_id: str = Field(description="The webhook's id.")
    account: str | None = Field(description="The account the event belongs to.")
    name: str = Field(description="The webhook's name (its event unless named).")
    event: str = Field(description="The event type, a noun and a verb: `request.update`.")
    object_id: ObjectId | None = Field(description="The object the event is about; 12345 in tests.")
    person_id: ObjectId | None = Field(description="Who made the change (the event's actor).")
    person_name: str | None = Field(description="Their name.")
    payload: dict[str, Any] = Field(description="The event's data.")


class KeyclicPayload(BaseModel):
    """The Keyclic webhook body: the event's name and the resource as the producer sent it."""

    model_config = ConfigDict(title="KeyclicPayload")

    event: str = Field(description="`reportCreated`, `operationStateChanged`, …")
    payload: dict[str, Any] = Field(description="The event's data: the resource.")


class CloudEvent(BaseModel):
    """A structured-mode CloudEvents 1.0 body (`application/cloudevents+json`)."""

    model_config = ConfigDict(title="CloudEvent")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="The event id.")
    source: str = Field(description="The event's `source`, or `hookline` when it had none.")
    type: str
    time: AwareDatetime
    subject: str | None = Field(default=None, description="The event's object_id, as text.")
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
