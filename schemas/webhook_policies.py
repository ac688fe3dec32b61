"""Webhook policies (after Xurrent's): how a webhook's messages are signed as a JWT. The API's
models, the records of their changes in the webhooks stream, and the fold over them.

A webhook that names a policy is sent `{"jwt": "<token>"}` instead of its body; the token's `data`
claim is that body, signed with the policy's key. The key is made when the policy is created and
lives only in the stream (as webhooks' signing secrets do): its public half (or, for hs*, the
shared secret) is shown once, in the answer to the create.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

JwtAlg = Literal[
    "none", "hs256", "hs384", "hs512", "rs256", "rs384", "rs512", "es256", "es384", "es512"
]
JWT_ALGS: tuple[JwtAlg, ...] = get_args(JwtAlg)
POLICY_ID_PREFIX = "pol_"
# How long a token is valid (its `exp` after its `iat`): long enough for a call and some clock
# skew, short enough that a captured token is soon worthless.
DEFAULT_EXPIRES_IN_S = 60
MIN_EXPIRES_IN_S, MAX_EXPIRES_IN_S = 10, 24 * 3600
MAX_AUDIENCE_LENGTH = 1024
ALG_NOT_PATCHABLE = (
    "cannot be changed: the policy's key was made for its algorithm, and a new one would be "
    "needed; create a policy with the algorithm you want and point the webhooks at it"
)


def jws_algorithm(alg: JwtAlg) -> str:
    """The `alg` of the token's header (RFC 7518): `rs256` → `RS256`, `none` → `none`."""
    return alg if alg == "none" else alg.upper()


PolicyName = Annotated[str, Field(min_length=1, max_length=255)]
Audience = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_AUDIENCE_LENGTH,
        description="The token's `aud` claim: who the subscriber is, as it checks it.",
        examples=["https://example.com/hooks"],
    ),
]
ExpiresIn = Annotated[
    StrictInt,
    Field(
        ge=MIN_EXPIRES_IN_S,
        le=MAX_EXPIRES_IN_S,
        description="Seconds from the token's `iat` to its `exp`.",
    ),
]
Alg = Annotated[
    JwtAlg,
    Field(
        description="How tokens are signed: `none` (unsigned), HMAC with a shared secret (hs*), "
        "RSA (rs*, 2048-bit keys) or ECDSA (es256 on P-256, es384 on P-384, es512 on P-521).",
    ),
]


class WebhookPolicyCreate(BaseModel):
    """The body of `POST /webhook_policies`."""

    model_config = ConfigDict(extra="forbid")

    name: PolicyName
    jwt_alg: Alg
    jwt_audience: Audience | None = None
    jwt_claim_expires_in: ExpiresIn = DEFAULT_EXPIRES_IN_S
    disabled: StrictBool = False


class WebhookPolicyPatch(BaseModel):
    """The body of `PATCH /webhook_policies/:id`: only the fields it names change. `jwt_alg`
    cannot be changed (it is refused by name, not as an unknown field)."""

    model_config = ConfigDict(extra="forbid")

    name: PolicyName | None = None
    disabled: StrictBool | None = None
    jwt_audience: Audience | None = None
    jwt_claim_expires_in: ExpiresIn | None = None
    jwt_alg: SkipJsonSchema[object] = Field(default=None, exclude=True)

    @field_validator("name", "disabled", "jwt_claim_expires_in", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value

    @field_validator("jwt_alg", mode="before")
    @classmethod
    def _alg_is_fixed(cls, value: object) -> object:
        raise ValueError(ALG_NOT_PATCHABLE)

    def changes(self) -> dict[str, Any]:
        """The fields the client sent; `null` clears `jwt_audience`."""
        return self.model_dump(include=self.model_fields_set & POLICY_MUTABLE_FIELDS)


class WebhookPolicy(BaseModel):
    """A webhook policy as the API shows it (never its key)."""

    model_config = ConfigDict(title="WebhookPolicy")

    id: str
    name: str
    disabled: bool = False
    jwt_alg: JwtAlg
    jwt_audience: str | None = None
    jwt_claim_expires_in: int
    created_at: AwareDatetime
    updated_at: AwareDatetime


class NewWebhookPolicy(WebhookPolicy):
    """The answer to a create, the only one that shows what verifies the tokens."""

    model_config = ConfigDict(title="NewWebhookPolicy")

    public_key: str | None = Field(
        default=None,
        description="rs* and es*: the public key (PEM, SubjectPublicKeyInfo) that verifies the "
        "tokens. Shown only here.",
    )
    secret: str | None = Field(
        default=None,
        description="hs*: the shared secret; its characters (ASCII) are the HMAC key that "
        "verifies the tokens. Shown only here.",
    )


# --- the records of the webhooks stream -------------------------------------------------------


class _PolicyRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    at: AwareDatetime
    policy_id: str


class WebhookPolicyCreated(_PolicyRecord):
    kind: Literal["webhook_policy.created"] = "webhook_policy.created"
    name: str
    disabled: bool = False
    jwt_alg: JwtAlg
    jwt_audience: str | None = None
    jwt_claim_expires_in: int
    # rs*, es*: the private key, PKCS#8 PEM; hs*: the shared secret; none: none. Only ever in
    # the stream (guard the broker like a database), never in an answer or a log line.
    signing_key: str | None = Field(default=None, repr=False)


class WebhookPolicyUpdated(_PolicyRecord):
    kind: Literal["webhook_policy.updated"] = "webhook_policy.updated"
    changes: dict[str, Any]


class WebhookPolicyDeleted(_PolicyRecord):
    kind: Literal["webhook_policy.deleted"] = "webhook_policy.deleted"


WebhookPolicyChange = WebhookPolicyCreated | WebhookPolicyUpdated | WebhookPolicyDeleted
POLICY_CHANGES = (WebhookPolicyCreated, WebhookPolicyUpdated, WebhookPolicyDeleted)

# The fields a WebhookPolicyUpdated may change; anything else in `changes` is ignored.
POLICY_MUTABLE_FIELDS = frozenset(WebhookPolicyPatch.model_fields) - {"jwt_alg"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyState:
    """One policy as the stream says it is now, key included; `revision` is its last offset."""

    id: str
    name: str
    disabled: bool
    jwt_alg: JwtAlg
    jwt_audience: str | None
    jwt_claim_expires_in: int
    signing_key: str | None = field(repr=False)
    created_at: datetime
    updated_at: datetime
    revision: int

    def public(self) -> WebhookPolicy:
        """What the API shows: no key, no revision."""
        return WebhookPolicy(
            id=self.id,
            name=self.name,
            disabled=self.disabled,
            jwt_alg=self.jwt_alg,
            jwt_audience=self.jwt_audience,
            jwt_claim_expires_in=self.jwt_claim_expires_in,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


def evolve_policy(
    state: PolicyState | None, record: WebhookPolicyChange, offset: int
) -> PolicyState | None:
    """The policy after `record` (read at `offset`); None when it does not exist (any more)."""
    if isinstance(record, WebhookPolicyCreated):
        if state is not None:  # a replayed create never overwrites what later records made
            return state
        return PolicyState(
            id=record.policy_id,
            name=record.name,
            disabled=record.disabled,
            jwt_alg=record.jwt_alg,
            jwt_audience=record.jwt_audience,
            jwt_claim_expires_in=record.jwt_claim_expires_in,
            signing_key=record.signing_key,
            created_at=record.at,
            updated_at=record.at,
            revision=offset,
        )
    if state is None:
        return None
    if isinstance(record, WebhookPolicyUpdated):
        changes = {k: v for k, v in record.changes.items() if k in POLICY_MUTABLE_FIELDS}
        return replace(state, **changes, updated_at=record.at, revision=offset)
    return None  # deleted


def new_policy_id() -> str:
    return f"{POLICY_ID_PREFIX}{uuid.uuid4().hex}"
