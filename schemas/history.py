"""The delivery history as the router's API shows it: a delivery and each of its attempts."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.deliveries import Outcome


class AttemptView(BaseModel):
    """One attempt: when, what came back, and how long it took."""

    model_config = ConfigDict(title="Attempt")

    attempt: int = Field(description="1 for the first attempt; a redrive starts again at 1.")
    at: AwareDatetime
    outcome: Outcome
    status_code: int | None = Field(default=None, description="The answer's HTTP status, if any.")
    duration_ms: float | None = None
    error: str | None = Field(default=None, description="Why it failed: `404 Not Found`, …")
    response_body: str | None = Field(
        default=None, description="The first 4 KiB of the answer's body, as text."
    )


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
