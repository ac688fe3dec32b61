"""Settings every service shares, read from `HOOKLINE_*` environment variables."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.catalog import UncatalogedEvents
from schemas.targets import IPNetwork, TargetPolicy, parse_networks
from schemas.topology import DEFAULT_PARK_DELAYS_S, Topology
from services.runtime.catalog import EventCatalog
from services.runtime.catalog_files import load_catalog

# Seconds between attempts, spanning about a day like Svix's schedule: 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 10 h, so eight attempts over about 27.6 hours.
DEFAULT_RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
# RabbitMQ's x-max-age syntax: a number and Y, M, D, h, m or s.
MAX_AGE_PATTERN = r"^[0-9]+[YMDhms]$"


def _split_schedule(value: object) -> object:
    """`5,300,1800` → (5.0, 300.0, 1800.0); an empty string means: never retry."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
        return tuple(part for part in parts if part)
    return value


def split_tokens(value: str) -> tuple[str, ...]:
    """`a, b` → ('a', 'b'): several tokens per role, so one can be replaced without downtime."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _some_token(value: SecretStr) -> SecretStr:
    if not split_tokens(value.get_secret_value()):
        raise ValueError("at least one token is needed")
    return value


# A role's bearer tokens, comma-separated: a new one is added, then the old one removed, so a
# token is replaced without downtime.
Tokens = Annotated[SecretStr, AfterValidator(_some_token)]
RetrySchedule = Annotated[tuple[float, ...], NoDecode, BeforeValidator(_split_schedule)]
Delays = RetrySchedule


class ServiceSettings(BaseSettings):
    """What a Hookline service needs to reach the broker and serve its HTTP edge."""

    # Inputs stay out of validation errors: they may be tokens or passwords.
    model_config = SettingsConfigDict(
        env_prefix="HOOKLINE_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    prefix: str = Field(
        default="hookline", pattern=r"^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+)*$", max_length=100
    )
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    # uvloop runs the same code on a cheaper loop (a few % of sender CPU); `asyncio`: the standard.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # AMQP heartbeat: a frozen broker is noticed after about three of these.
    heartbeat_s: int = Field(default=5, ge=1, le=600)
    # How long a publish may wait for its confirm; past it the outcome is unknown, not failed.
    publish_timeout_s: float = Field(default=10.0, gt=0)
    retry_schedule: RetrySchedule = DEFAULT_RETRY_SCHEDULE_S
    # Delays of the park tiers, where deliveries to a busy endpoint or an open circuit wait.
    park_delays: Delays = DEFAULT_PARK_DELAYS_S
    events_max_age: str = Field(default="7D", pattern=MAX_AGE_PATTERN)
    delivery_log_max_age: str = Field(default="7D", pattern=MAX_AGE_PATTERN)
    health_max_age: str = Field(default="1D", pattern=MAX_AGE_PATTERN)
    # How long a message may be held waiting for something (a publish to be confirmed, the
    # webhook table, the delivery log) before it goes back to its queue.
    hold_s: float = Field(default=30.0, gt=0)
    # CIDRs webhooks may target although private or loopback, e.g. `127.0.0.0/8,::1/128`: the
    # router refuses other private targets at create and update, senders at every connection.
    allowed_targets: str = ""
    # Refuse plain http targets.
    https_only: bool = False
    # The event catalog: a folder of `*.json` files, one per product (see catalog/examples/).
    # Empty: no catalog. Checked whole when the settings are read: a broken file stops the start.
    catalog_path: str = ""
    # An event whose type the catalog lacks: `accept` it as any event, or `refuse` it (400 at the
    # producer, quarantine for one published over AMQP, and no webhook for such an exact type).
    uncataloged_events: UncatalogedEvents = "accept"

    @field_validator("retry_schedule")
    @classmethod
    def _delays_are_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay <= 0 for delay in value):
            raise ValueError("every delay must be more than 0 seconds")
        if len(value) > 100:
            raise ValueError("at most 100 retries")
        return value

    @field_validator("park_delays")
    @classmethod
    def _park_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("at least one park delay is needed")
        if any(delay <= 0 for delay in value) or len(value) > 20:
            raise ValueError("at most 20 delays, each more than 0 seconds")
        return value

    @field_validator("catalog_path")
    @classmethod
    def _catalog_loads(cls, value: str) -> str:
        if value:
            load_catalog(value)  # CatalogError (a ValueError) names the file and the type
        return value

    @field_validator("uncataloged_events")
    @classmethod
    def _refuse_needs_a_catalog(
        cls, value: UncatalogedEvents, info: ValidationInfo
    ) -> UncatalogedEvents:
        # (A catalog_path that failed has its own error.)
        if value == "refuse" and info.data.get("catalog_path", "-") == "":
            raise ValueError("refusing uncataloged events needs a catalog (HOOKLINE_CATALOG_PATH)")
        return value

    def event_catalog(self) -> EventCatalog:
        """The catalog, loaded from its files now (each service does so once, at start)."""
        if not self.catalog_path:
            return EventCatalog(uncataloged=self.uncataloged_events)
        return EventCatalog(load_catalog(self.catalog_path), uncataloged=self.uncataloged_events)

    @field_validator("allowed_targets")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_networks(value)  # raises ValueError naming the bad CIDR
        return value

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.allowed_targets)

    @property
    def target_policy(self) -> TargetPolicy:
        return TargetPolicy(self.allowed_networks, https_only=self.https_only)

    @property
    def topology(self) -> Topology:
        return Topology(
            prefix=self.prefix,
            retry_delays_s=self.retry_schedule,
            events_max_age=self.events_max_age,
            delivery_log_max_age=self.delivery_log_max_age,
            park_delays_s=self.park_delays,
            health_max_age=self.health_max_age,
        )
