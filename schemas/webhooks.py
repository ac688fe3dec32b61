"""Webhooks (subscriptions): the API's models, the records of their log, and the fold over it.

The webhooks stream is the source of truth. Every change is one record; a service rebuilds its
webhook table by replaying them through `evolve`.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    field_validator,
)

from schemas.events import MAX_TYPE_LENGTH, TYPE_WORD
from schemas.health import HEALTHY, WebhookHealth
from schemas.markers import ReaderSynced
from schemas.targets import parse_target

# A subscription's `event`: an exact type or an AMQP-style pattern where `*` is one word and `#`
# is zero or more (`problem.*`, `*.create`, `#`).
EVENT_PATTERN = rf"^({TYPE_WORD}|\*|#)(\.({TYPE_WORD}|\*|#))*$"
MAX_DESCRIPTION_BYTES = 64 * 1024
MAX_URI_LENGTH = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
# 24 random bytes: 192 bits, inside Standard Webhooks' 24..64 byte range.
SECRET_BYTES = 24
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64

# How the body a subscriber receives is shaped (`services/sender/formats.py`, README "Payload
# formats"), and how it is sent.
PayloadFormat = Literal["standard", "xurrent", "keyclic", "raw", "cloudevents"]
HttpMethod = Literal["POST", "GET"]

_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def _check_uri(value: str) -> str:
    """Accept a target the sender can reach as written (read as the sender reads it, by
    `schemas.targets`), and keep it exactly as given."""
    parse_target(value)
    return value


def _check_secret(value: str) -> str:
    """A Standard Webhooks secret of the caller's choosing: `whsec_` and base64 of 24 to 64
    bytes."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError(f"must be {SECRET_PREFIX} and base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return value


def _check_mail_list(value: str) -> str:
    """Accept a comma separated list of e-mail addresses (Xurrent's `mail_exceptions_to`)."""
    addresses = [part.strip() for part in value.split(",")]
    bad = [address for address in addresses if not _EMAIL.match(address)]
    if bad:
        raise ValueError(f"not an e-mail address: {bad[0]!r}")
    return ",".join(addresses)


def _check_description(value: str) -> str:
    if len(value.encode()) > MAX_DESCRIPTION_BYTES:
        raise ValueError(f"must be at most {MAX_DESCRIPTION_BYTES} bytes")
    return value


EventPattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TYPE_LENGTH,
        pattern=EVENT_PATTERN,
        description="An exact event type or a pattern: `*` matches one word, `#` any number.",
        examples=["problem.update", "problem.*", "*.create", "#"],
    ),
]
Uri = Annotated[
    str,
    Field(
        max_length=MAX_URI_LENGTH,
        description="Where Hookline POSTs, http or https.",
        examples=["https://example.com/hooks/hookline"],
    ),
    AfterValidator(_check_uri),
]
Name = Annotated[str, Field(min_length=1, max_length=255)]
Account = Annotated[str, Field(min_length=1, max_length=255)]
Description = Annotated[str, AfterValidator(_check_description)]
MailList = Annotated[str, Field(max_length=4096), AfterValidator(_check_mail_list)]
PolicyRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="The id (`pol_…`) of the webhook policy that signs the webhook's messages as a "
        "JWT; `null` for none.",
    ),
]
Secret = Annotated[
    str,
    Field(
        max_length=128,
        description="A signing secret of your choosing: `whsec_` and base64 of 24 to 64 bytes.",
    ),
    AfterValidator(_check_secret),
]


FORMAT_DESCRIPTION = (
    "The body's shape: `standard` (the Standard Webhooks envelope), `xurrent` (Xurrent/ITRP), "
    "`keyclic` (`{event, payload}`), `raw` (the event's data alone), `cloudevents` (a "
    "structured CloudEvents 1.0 body)."
)
METHOD_DESCRIPTION = (
    "POST sends the body; GET sends its top-level fields as query parameters instead (strings "
    "as they are, other values as JSON), and signs the query string. GET cannot carry "
    "`cloudevents`."
)
HTTPS_ONLY_DESCRIPTION = "Refuse an http `uri`, and send only over https."
SIGNED_DESCRIPTION = (
    "Sign each request (`webhook-signature`); `webhook-id` and `webhook-timestamp` are sent "
    "either way."
)


def delivery_option_errors(
    *, uri: str, payload_format: PayloadFormat, method: HttpMethod, https_only: bool
) -> list[dict[str, str]]:
    """Field errors of a webhook's delivery options taken together (each alone is valid)."""
    errors = []
    if https_only and not uri.lower().startswith("https:"):
        errors.append({"field": "uri", "message": "must be an https URL: https_only is on"})
    if method == "GET" and payload_format == "cloudevents":
        errors.append(
            {"field": "method", "message": "GET cannot carry a structured CloudEvents body"}
        )
    return errors


class WebhookCreate(BaseModel):
    """The body of `POST /webhooks`."""

    model_config = ConfigDict(extra="forbid")

    event: EventPattern
    uri: Uri
    name: Name | None = Field(default=None, description="Defaults to the event.")
    description: Description | None = None
    disabled: StrictBool = False  # `"yes"` or 1 is a mistake, not true
    mail_exceptions_to: MailList | None = None
    secret: Secret | None = Field(default=None, description="Generated when not given.")
    account: Account | None = Field(
        default=None,
        description="The account the webhook belongs to: it gets only that account's events. "
        "A token scoped to an account creates webhooks of that account only.",
    )
    format: PayloadFormat = Field(default="standard", description=FORMAT_DESCRIPTION)
    method: HttpMethod = Field(default="POST", description=METHOD_DESCRIPTION)
    https_only: StrictBool = Field(default=False, description=HTTPS_ONLY_DESCRIPTION)
    signed: StrictBool = Field(default=True, description=SIGNED_DESCRIPTION)
    webhook_policy: PolicyRef | None = None


class WebhookPatch(BaseModel):
    """The body of `PATCH /webhooks/:id`: only the fields it names change."""

    model_config = ConfigDict(extra="forbid")

    event: EventPattern | None = None
    uri: Uri | None = None
    name: Name | None = None
    description: Description | None = None
    disabled: StrictBool | None = None
    mail_exceptions_to: MailList | None = None
    format: PayloadFormat | None = Field(default=None, description=FORMAT_DESCRIPTION)
    method: HttpMethod | None = Field(default=None, description=METHOD_DESCRIPTION)
    https_only: StrictBool | None = Field(default=None, description=HTTPS_ONLY_DESCRIPTION)
    signed: StrictBool | None = Field(default=None, description=SIGNED_DESCRIPTION)
    webhook_policy: PolicyRef | None = None

    @field_validator(
        "event",
        "uri",
        "name",
        "disabled",
        "format",
        "method",
        "https_only",
        "signed",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the client sent; `null` clears the optional ones."""
        return self.model_dump(include=self.model_fields_set)


class SecretRotate(BaseModel):
    """The body of `POST /webhooks/:id/secret/rotate` (it may be empty)."""

    model_config = ConfigDict(extra="forbid")

    secret: Secret | None = Field(default=None, description="Generated when not given.")


class Webhook(BaseModel):
    """A webhook as the API shows it."""

    model_config = ConfigDict(title="Webhook")

    id: str
    name: str
    event: str
    uri: str
    description: str | None = None
    disabled: bool = False
    mail_exceptions_to: str | None = None
    account: str | None = None
    format: PayloadFormat = "standard"
    method: HttpMethod = "POST"
    https_only: bool = False
    signed: bool = True
    disabled_reason: str | None = Field(
        default=None,
        description="Why Hookline disabled the webhook (410 Gone, failing too long); cleared when "
        "it is enabled again.",
    )
    last_error: str | None = Field(
        default=None, description="Why the most recent failed call failed, e.g. `404 Not Found`."
    )
    last_attempt_at: AwareDatetime | None = None
    last_success_at: AwareDatetime | None = None
    consecutive_failures: int = Field(
        default=0, description="Failed calls since the last success (or since it was enabled)."
    )
    failing_since: AwareDatetime | None = Field(
        default=None, description="When the first of those consecutive failures happened."
    )
    circuit_open_until: AwareDatetime | None = Field(
        default=None,
        description="While a sender's circuit breaker holds attempts back from this endpoint: "
        "until when (past it, one probe goes through).",
    )
    webhook_policy: str | None = Field(
        default=None, description="The webhook policy that signs its messages as a JWT."
    )
    created_at: AwareDatetime
    updated_at: AwareDatetime


# --- the records of the webhooks stream -------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    at: AwareDatetime


class WebhookCreated(_Record):
    kind: Literal["webhook.created"] = "webhook.created"
    webhook_id: str
    name: str
    event: str
    uri: str
    description: str | None = None
    disabled: bool = False
    mail_exceptions_to: str | None = None
    secret: str
    account: str | None = None
    format: PayloadFormat = "standard"
    method: HttpMethod = "POST"
    https_only: bool = False
    signed: bool = True
    webhook_policy: str | None = None


class WebhookUpdated(_Record):
    kind: Literal["webhook.updated"] = "webhook.updated"
    webhook_id: str
    changes: dict[str, Any]


class WebhookDeleted(_Record):
    kind: Literal["webhook.deleted"] = "webhook.deleted"
    webhook_id: str


class WebhookDisabled(_Record):
    """Hookline disabled the webhook by itself: its endpoint said 410 Gone, or failed too long."""

    kind: Literal["webhook.disabled"] = "webhook.disabled"
    webhook_id: str
    reason: str


class WebhookSecretRotated(_Record):
    """A new signing secret; the one it replaces keeps signing beside it until `previous_until`."""

    kind: Literal["webhook.secret_rotated"] = "webhook.secret_rotated"
    webhook_id: str
    secret: str
    previous_until: AwareDatetime


# A change record of one webhook; markers (ReaderSynced) are skipped by readers before parsing,
# and parsed here only in case an old reader wrote one without its message type.
WebhookChange = (
    WebhookCreated | WebhookUpdated | WebhookDeleted | WebhookDisabled | WebhookSecretRotated
)
WebhookRecord = Annotated[
    WebhookCreated
    | WebhookUpdated
    | WebhookDeleted
    | WebhookDisabled
    | WebhookSecretRotated
    | ReaderSynced,
    Field(discriminator="kind"),
]
WEBHOOK_RECORD = TypeAdapter(WebhookRecord)

# The fields a WebhookUpdated may change; anything else in `changes` is ignored when folding.
MUTABLE_FIELDS = frozenset(WebhookPatch.model_fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookState:
    """One webhook as the log says it is now, secret included; `revision` is its last offset.

    Every router and sender holds one per webhook, 100,000 and more, each folded from a record
    pydantic has already validated: so a slotted dataclass, not a model, which took about 1.1 KB
    more each (its `__dict__` and its set of fields set; tools/bench/webhooks_scale.py).
    """

    id: str
    name: str
    event: str
    uri: str
    description: str | None
    disabled: bool
    mail_exceptions_to: str | None
    secret: str
    created_at: datetime
    updated_at: datetime
    revision: int
    disabled_reason: str | None = None
    # When it was last enabled after being disabled: older failures no longer count toward
    # disabling it again.
    enabled_at: datetime | None = None
    # The secret a rotation replaced, which signs beside `secret` until `previous_secret_until`.
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    # The account it belongs to: it gets only that account's events (None: every event).
    account: str | None = None
    # How its requests are shaped and sent (WebhookCreate says what each means).
    format: PayloadFormat = "standard"
    method: HttpMethod = "POST"
    https_only: bool = False
    signed: bool = True
    # The webhook policy that signs its messages as a JWT (None: the body as it is).
    webhook_policy: str | None = None

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a request is signed with at `now`: the current one, and the one it
        replaced while its grace period lasts."""
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def public(
        self, health: WebhookHealth = HEALTHY, circuit_open_until: datetime | None = None
    ) -> Webhook:
        """What the API shows: no secret, no revision, and the health of its endpoint."""
        return Webhook(
            id=self.id,
            name=self.name,
            event=self.event,
            uri=self.uri,
            description=self.description,
            disabled=self.disabled,
            mail_exceptions_to=self.mail_exceptions_to,
            account=self.account,
            format=self.format,
            method=self.method,
            https_only=self.https_only,
            signed=self.signed,
            disabled_reason=self.disabled_reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
            circuit_open_until=circuit_open_until,
            webhook_policy=self.webhook_policy,
            **health.model_dump(),
        )


def evolve(state: WebhookState | None, record: WebhookRecord, offset: int) -> WebhookState | None:
    """The webhook after `record` (read at `offset`); None when it does not exist (any more)."""
    if isinstance(record, WebhookCreated):
        if state is not None:  # a replayed create never overwrites what later records made
            return state
        return WebhookState(
            id=record.webhook_id,
            # The name defaults to the event: then one string serves both.
            name=record.event if record.name == record.event else record.name,
            event=record.event,
            uri=record.uri,
            description=record.description,
            disabled=record.disabled,
            mail_exceptions_to=record.mail_exceptions_to,
            secret=record.secret,
            created_at=record.at,
            updated_at=record.at,
            revision=offset,
            account=record.account,
            format=record.format,
            method=record.method,
            https_only=record.https_only,
            signed=record.signed,
            webhook_policy=record.webhook_policy,
        )
    if state is None:
        return None
    if isinstance(record, WebhookUpdated):
        changes: dict[str, Any] = {k: v for k, v in record.changes.items() if k in MUTABLE_FIELDS}
        if changes.get("disabled") is False and state.disabled:
            changes.update(disabled_reason=None, enabled_at=record.at)
        return replace(state, **changes, updated_at=record.at, revision=offset)
    if isinstance(record, WebhookDisabled):
        return replace(
            state,
            disabled=True,
            disabled_reason=record.reason,
            updated_at=record.at,
            revision=offset,
        )
    if isinstance(record, WebhookSecretRotated):
        return replace(
            state,
            secret=record.secret,
            previous_secret=state.secret,
            previous_secret_until=record.previous_until,
            updated_at=record.at,
            revision=offset,
        )
    if isinstance(record, WebhookDeleted):
        return None
    return state


def new_webhook_id() -> str:
    return f"wh_{uuid.uuid4().hex}"


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
