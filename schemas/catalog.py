"""The event catalog: the event types an install knows, each with a JSON Schema of its `data`.

A catalog is a folder of JSON files, one per product (`ketryx.json` → product `ketryx`), each
holding that product's types. This module has their shapes: a file as written (`CatalogFile`) and
a type as the router's `GET /event-types` shows it (`EventTypeView`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import EventType

# What becomes of an event whose type the catalog does not hold.
UncatalogedEvents = Literal["accept", "refuse"]
# The dialect of every schema in a catalog.
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

Description = Annotated[str, Field(min_length=1, max_length=4096)]


class CatalogEntry(BaseModel):
    """One event type of a catalog file."""

    model_config = ConfigDict(extra="forbid", title="EventCatalogEntry")

    description: Description = Field(
        description="What happened when an event of this type is sent."
    )
    data_schema: dict[str, Any] = Field(
        alias="schema",
        description="JSON Schema (Draft 2020-12) of the event's `data`; checked at start.",
    )
    examples: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=20,
        description="Examples of `data`: each must pass the schema, or the service does not start.",
    )


class CatalogFile(BaseModel):
    """One file of a catalog folder: one product's event types, by type."""

    model_config = ConfigDict(extra="forbid", title="EventCatalogFile")

    json_schema: str | None = Field(
        default=None,
        alias="$schema",
        description="For editors: where this file's own schema is (ignored by Hookline).",
    )
    title: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None, description="The product's name as people write it: `Ketryx`."
    )
    description: Description | None = None
    events: dict[EventType, CatalogEntry] = Field(
        min_length=1, description="The product's event types, by type."
    )


class EventTypeView(BaseModel):
    """A cataloged event type, as `GET /event-types` shows it."""

    model_config = ConfigDict(extra="forbid", title="EventTypeView")

    type: str = Field(description="The event type: an event's `type` and its routing key.")
    product: str = Field(description="The catalog file it comes from: `ketryx` for ketryx.json.")
    description: str
    data_schema: dict[str, Any] = Field(
        alias="schema", description="JSON Schema (Draft 2020-12) the event's `data` must pass."
    )
    examples: list[dict[str, Any]] = Field(description="Examples of `data` that pass the schema.")
