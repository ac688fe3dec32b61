"""The marker a reader appends to a stream to learn it has read everything written before it."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# The AMQP `type` of a marker message: readers skip it without parsing its body.
MARKER_KIND = "reader.synced"


class ReaderSynced(BaseModel):
    """A marker a reader appends: once it reads it back, it has read all records before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["reader.synced"] = "reader.synced"
    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    at: AwareDatetime
    reader: str
