"""The producer's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.runtime.settings import ServiceSettings


class ProducerSettings(ServiceSettings):
    port: int = Field(default=8000, ge=0, le=65535)
    ingest_token: SecretStr = Field(description="Bearer token of POST /events.")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
