"""The producer's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from services.runtime.settings import ServiceSettings, split_tokens


class ProducerSettings(ServiceSettings):
    port: int = Field(default=8000, ge=0, le=65535)
    # Several, comma-separated: a new one is added, then the old one removed, without downtime.
    ingest_token: SecretStr = Field(description="Bearer tokens of POST /events, comma-separated.")

    @field_validator("ingest_token")
    @classmethod
    def _ingest_tokens_given(cls, value: SecretStr) -> SecretStr:
        if not split_tokens(value.get_secret_value()):
            raise ValueError("at least one token is needed")
        return value

    @property
    def ingest_tokens(self) -> tuple[str, ...]:
        return split_tokens(self.ingest_token.get_secret_value())

    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
