"""The router's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.runtime.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    port: int = Field(default=8001, ge=0, le=65535)
    admin_token: SecretStr = Field(description="Bearer token of the webhooks API.")
    # Events routed at once; each holds its fan-out publishes until all are confirmed.
    prefetch: int = Field(default=64, ge=1, le=10_000)
    # Event ids remembered to drop a repeated one (the same id twice is one event).
    dedupe_window: int = Field(default=100_000, ge=0)
    # Events published over AMQP larger than this are parked in quarantine (POST /events has its
    # own, smaller body limit). Each delivery message carries the whole event.
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
