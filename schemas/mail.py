"""Notices of failures that the addresses in a webhook's `mail_exceptions_to` are told about, in a
digest per webhook."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

# dead_lettered: a delivery used up its attempts, or its target was refused; disabled: Hookline
# disabled the webhook (410 Gone, or failing too long).
NoticeKind = Literal["dead_lettered", "disabled"]


class FailureNotice(BaseModel):
    """One thing to tell a webhook's owners about, queued on `<prefix>.mail`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="FailureNotice")

    kind: NoticeKind
    webhook_id: str
    at: AwareDatetime
    reason: str
    delivery_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    attempts: int | None = None


FAILURE_NOTICE = TypeAdapter(FailureNotice)
