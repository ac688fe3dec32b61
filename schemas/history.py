"""The delivery history as the router's API shows it: a delivery and each of its attempts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.deliveries import Outcome
from schemas.events import rfc3339_text
from schemas.webhooks import EventPattern


class AttemptView(BaseModel):
    """One attempt: when, what came back, and how long it took."""

    model_config = ConfigDict(title="Attempt")

    attempt: int = Field(description="1 for the first; a redrive or replay goes on counting.")
    at: AwareDatetime
    outcome: Outcome
    status_code: int | None = Field(default=None, description="The answer's HTTP status, if any.")
    duration_ms: float | None = None
    error: str | None = Field(default=None, description="Why it failed: `404 Not Found`, …")
    response_body: str | None = Field(
        default=None, description="The first 4 KiB of the answer's body, as text."
    )
    replay: bool = Field(default=False, description="Sent by a replay of the events stream.")


class DeliveryView(BaseModel):
    """One event for one webhook, over all its attempts."""

    model_config = ConfigDict(title="Delivery")

    delivery_id: str = Field(
        description="The `webhook-id` header of every attempt: the same on each retry and redrive."
    )
    webhook_id: str
    event_id: str
    event_type: str
    outcome: Outcome = Field(description="What the newest attempt decided.")
    attempt_count: int
    first_attempt_at: AwareDatetime
    last_attempt_at: AwareDatetime
    next_attempt_at: AwareDatetime | None = Field(
        default=None, description="When the next attempt is due, while one is scheduled."
    )
    test: bool = Field(default=False, description="A test call (`POST /webhooks/:id/test`).")
    replay: bool = Field(default=False, description="A replay of the events stream sent it.")
    attempts: list[AttemptView] = Field(description="Oldest first.")


class RedriveRequest(BaseModel):
    """Which dead letters to send again: every one (an empty body), one webhook's, or the chosen
    deliveries (both: the chosen deliveries of that webhook)."""

    model_config = ConfigDict(extra="forbid", title="RedriveRequest")

    webhook_id: str | None = Field(default=None, min_length=1, max_length=64)
    delivery_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=10_000, description="`webhook-id`s of deliveries."
    )


class RedriveView(BaseModel):
    """A redrive's (or discard's) progress: one pass over the queue as deep as it was at its
    start."""

    model_config = ConfigDict(title="Redrive")

    id: str
    status: Literal["running", "done", "failed"]
    total: int = Field(description="Messages in the queue when the pass began.")
    looked_at: int
    redriven: int = Field(description="Sent again, each as its delivery's next attempt.")
    kept: int = Field(
        description="Left in the queue (not chosen, or a dead letter whose webhook is gone or "
        "disabled)."
    )
    discarded: int = Field(default=0, description="Dropped on purpose (quarantine discard).")
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    error: str | None = None


class QuarantinedView(BaseModel):
    """A message in quarantine: why it is there, where it came from, and what it holds."""

    model_config = ConfigDict(title="Quarantined")

    id: str = Field(description="`q_…`, a digest of the message: name it to redrive or discard.")
    source_queue: str | None = Field(description="The queue it was quarantined from.")
    reason: str | None
    message_id: str | None = None
    type: str | None = None
    routing_key: str | None = Field(
        default=None, description="The key it was first published with."
    )
    quarantined_at: AwareDatetime | None = None
    size: int = Field(description="The body's length in bytes.")
    body: str = Field(description="The body's first 1 KiB, as text.")
    times_looked_at: int = Field(
        default=0, description="How often it was handed out and given back (listings included)."
    )


class QuarantineChoice(BaseModel):
    """Which quarantined messages to act on, by the ids the listing gives."""

    model_config = ConfigDict(extra="forbid", title="QuarantineChoice")

    ids: list[str] | None = Field(default=None, min_length=1, max_length=10_000)


class ReplayRequest(BaseModel):
    """Which events of the events stream to send to a webhook again."""

    model_config = ConfigDict(extra="forbid", title="ReplayRequest")

    since: Annotated[AwareDatetime, BeforeValidator(rfc3339_text)] = Field(
        description="From this time (the events' own `time`), included."
    )
    until: Annotated[AwareDatetime | None, BeforeValidator(rfc3339_text)] = Field(
        default=None, description="Up to this time, excluded; default: when the replay starts."
    )
    event: EventPattern | None = Field(
        default=None,
        description="Only events of types this matches (an exact type or a pattern), besides "
        "the webhook's own `event`.",
    )
    rate_per_s: float = Field(
        default=100, gt=0, le=1000, description="At most this many deliveries a second."
    )

    @model_validator(mode="after")
    def _a_window(self) -> ReplayRequest:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class ReplayView(BaseModel):
    """A replay's progress."""

    model_config = ConfigDict(title="Replay")

    id: str
    webhook_id: str
    status: Literal["running", "done", "failed", "stopped"]
    since: AwareDatetime
    until: AwareDatetime
    event: str | None = None
    rate_per_s: float
    read: int = Field(description="Events read from the stream.")
    matched: int = Field(description="Events in the window that the webhook takes.")
    sent: int = Field(description="Deliveries confirmed into the deliver queue.")
    unreadable: int = Field(
        default=0,
        description="Events skipped as unreadable, or refused by the event catalog: they were "
        "quarantined when they came in.",
    )
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    error: str | None = None
