"""Deliveries: the message a sender works on, the body a subscriber receives, and the log record
of every outcome."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.events import Actor, Event, ObjectId

if TYPE_CHECKING:  # schemas.webhooks imports schemas.health, which imports this module
    from schemas.webhooks import WebhookState

# The object_id of every test call, as Xurrent and ITRP document it.
TEST_OBJECT_ID = 12345


def delivery_id_for(event_id: str, webhook_id: str) -> str:
    """The delivery's stable id: the same for every attempt and for a router redelivery."""
    digest = hashlib.sha256(f"{event_id}\0{webhook_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


class DeliveryTask(BaseModel):
    """One event for one webhook, as it travels the deliveries exchange and the retry tiers."""

    model_config = ConfigDict(extra="forbid", title="DeliveryTask")

    delivery_id: str
    webhook_id: str
    webhook_revision: int = Field(
        description="Offset of the webhook's last change the router saw: senders wait for it."
    )
    attempt: int = Field(default=1, ge=1, description="The attempt this message asks for.")
    schedule_from: int = Field(
        default=1,
        ge=1,
        description="The attempt the retry schedule counts from: 1, or the first attempt after "
        "a redrive, which starts a fresh schedule while attempt numbers go on.",
    )
    test: bool = Field(default=False, description="A test call: sent even to a disabled webhook.")
    replay: str | None = Field(
        default=None, description="The replay (`rpl_…`) that sent it again from the events stream."
    )
    event: Event

    @model_validator(mode="after")
    def _schedule_starts_by_now(self) -> DeliveryTask:
        if self.schedule_from > self.attempt:
            raise ValueError("schedule_from is after attempt")
        return self

    @property
    def attempt_of_schedule(self) -> int:
        """The attempt's place in its retry schedule (1 for the first of a fresh one)."""
        return self.attempt - self.schedule_from + 1

    def redriven(self) -> DeliveryTask:
        """This dead letter sent again: the next attempt, with a fresh retry schedule."""
        return self.model_copy(
            update={"attempt": self.attempt + 1, "schedule_from": self.attempt + 1}
        )


DELIVERY_TASK = TypeAdapter(DeliveryTask)


class DeliveredPayload(BaseModel):
    """The JSON body a subscriber receives."""

    model_config = ConfigDict(title="DeliveredPayload")

    id: str = Field(description="The event id.")
    type: str
    timestamp: AwareDatetime = Field(description="When the event happened.")
    webhook_id: str
    object_id: ObjectId | None = None
    account: str | None = None
    source: str | None = None
    actor: Actor | None = None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event, webhook_id: str) -> DeliveredPayload:
        return cls(
            id=event.id,
            type=event.type,
            timestamp=event.time,
            webhook_id=webhook_id,
            object_id=event.object_id,
            account=event.account,
            source=event.source,
            actor=event.actor,
            data=event.data,
        )

    def body(self) -> bytes:
        """The exact bytes that are signed and sent; absent optional fields are left out."""
        return self.model_dump_json(exclude_none=True).encode()


# delivered: a 2xx; retry_scheduled: failed, another attempt is queued; dead_lettered: failed and
# out of attempts, or failed for good (a refused target, 410 Gone); failed: a test call failed
# (never retried); cancelled: not attempted because the webhook was deleted or disabled meanwhile.
Outcome = Literal["delivered", "retry_scheduled", "dead_lettered", "failed", "cancelled"]


class DeliveryAttempted(BaseModel):
    """What happened to one attempt: one record per attempt in the delivery log stream."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="DeliveryAttempted")

    kind: Literal["delivery.attempted"] = "delivery.attempted"
    delivery_id: str
    event_id: str
    event_type: str
    webhook_id: str
    attempt: int
    at: AwareDatetime
    outcome: Outcome
    status_code: int | None = None
    error: str | None = Field(
        default=None, description="Why it failed: `404 Not Found`, … (at most 1 KiB)."
    )
    duration_s: float | None = None
    next_attempt_in_s: float | None = None
    test: bool = False
    replay: bool = Field(default=False, description="Sent by a replay of the events stream.")
    response_body: str | None = Field(
        default=None,
        description="The start of the answer's body (its first 4 KiB, as text), if it had one.",
    )
    not_sent: Literal[True] | None = Field(
        default=None,
        description="No call was made: Hookline could not build the request (the webhook's "
        "policy is disabled or gone). It says nothing about the endpoint. Absent otherwise.",
    )


DELIVERY_LOG_RECORD = TypeAdapter(DeliveryAttempted)
DELIVERY_LOG_BATCH = TypeAdapter(list[DeliveryAttempted])
# The kind (AMQP `type`) of a delivery-log message that carries a JSON array of records, and the
# header listing their `RecordId`s in order (readers that need only those skip the body).
ATTEMPTS_KIND = "delivery.attempts"
RECORD_IDS_HEADER = "record_ids"


def attempts_in(kind: str | None, body: bytes) -> list[DeliveryAttempted]:
    """The records of one delivery-log message: a batch, or (as written before batches) one
    record alone, typed as such or untyped; none for other kinds (readers' markers). Raises
    ValidationError when unreadable."""
    if kind == ATTEMPTS_KIND:
        return DELIVERY_LOG_BATCH.validate_json(body)
    if kind in (None, "delivery.attempted"):
        return [DELIVERY_LOG_RECORD.validate_json(body)]
    return []


# The kind of a delivery-log message that says a sender's circuit breaker for a webhook's endpoint
# opened (or opened again) or closed; readers of attempts skip it.
CIRCUIT_KIND = "endpoint.circuit"


class CircuitChanged(BaseModel):
    """A sender's circuit breaker for one webhook's endpoint opened until a time, or closed."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="CircuitChanged")

    kind: Literal["endpoint.circuit"] = "endpoint.circuit"
    webhook_id: str
    sender: str = Field(description="Which sender process (host:pid): each has its own breaker.")
    at: AwareDatetime
    open_until: AwareDatetime | None = Field(description="None: closed again.")


# Outcomes after which a delivery has no further attempt.
FINAL_OUTCOMES: frozenset[str] = frozenset({"delivered", "dead_lettered", "failed", "cancelled"})
_OUTCOMES: frozenset[str] = FINAL_OUTCOMES | {"retry_scheduled"}


@dataclass(frozen=True, slots=True)
class RecordId:
    """What the message id of an attempt's record says: which attempt, what came of it, when,
    and how long until the next one (readers that need only this do not parse the body)."""

    delivery_id: str
    attempt: int
    outcome: Outcome
    at_ms: int
    next_attempt_in_s: float | None = None

    def __str__(self) -> str:
        text = f"{self.delivery_id}/{self.attempt}/{self.outcome}/{self.at_ms}"
        if self.next_attempt_in_s is not None:
            text += f"/{round(self.next_attempt_in_s * 1000)}"
        return text

    @property
    def next_attempt_due_ms(self) -> int | None:
        """When the next attempt is due (Unix milliseconds), if one is."""
        if self.next_attempt_in_s is None:
            return None
        return self.at_ms + round(self.next_attempt_in_s * 1000)

    @classmethod
    def of(cls, record: DeliveryAttempted) -> RecordId:
        at_ms = round(record.at.timestamp() * 1000)
        return cls(
            record.delivery_id, record.attempt, record.outcome, at_ms, record.next_attempt_in_s
        )

    @classmethod
    def parse(cls, message_id: str | None) -> RecordId | None:
        """`msg_…/3/retry_scheduled/1795699000000/300000` → its parts; None when it is not a
        record id."""
        parts = (message_id or "").split("/")
        if len(parts) not in (4, 5) or not parts[0]:
            return None
        if not all(part.isdigit() for part in parts[1:2] + parts[3:]):
            return None
        outcome = parts[2]
        if outcome not in _OUTCOMES:
            return None
        delay_s = int(parts[4]) / 1000 if len(parts) == 5 else None
        return cls(parts[0], int(parts[1]), cast(Outcome, outcome), int(parts[3]), delay_s)


def first_attempt(event: Event, webhook: WebhookState, *, test: bool = False) -> DeliveryTask:
    """The first attempt of delivering `event` to `webhook`, as routed at the webhook's revision."""
    return DeliveryTask(
        delivery_id=delivery_id_for(event.id, webhook.id),
        webhook_id=webhook.id,
        webhook_revision=webhook.revision,
        attempt=1,
        test=test,
        event=event,
    )
