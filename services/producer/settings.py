"""The producer's settings."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import ServiceSettings, Tokens, split_tokens


class ProducerSettings(ServiceSettings):
    port: int = Field(default=8000, ge=0, le=65535)
    ingest_token: Tokens = Field(description="Bearer tokens of POST /events, comma-separated.")

    @property
    def ingest_tokens(self) -> tuple[str, ...]:
        return split_tokens(self.ingest_token.get_secret_value())

    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
