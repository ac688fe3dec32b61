"""The producer's settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from services.producer.settings import ProducerSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer listens on 8000 by default under the `hookline` prefix."""
    monkeypatch.setenv("HOOKLINE_INGEST_TOKEN", "ingest-secret")
    settings = ProducerSettings()
    assert (settings.port, settings.prefix) == (8000, "hookline")


def test_the_ingest_token_is_required() -> None:
    """Without HOOKLINE_INGEST_TOKEN the producer does not start."""
    with pytest.raises(ValidationError) as caught:
        ProducerSettings()
    assert [problem["loc"] for problem in caught.value.errors()] == [("ingest_token",)]


def test_the_ingest_token_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is a SecretStr: repr hides it, get_secret_value gives it."""
    monkeypatch.setenv("HOOKLINE_INGEST_TOKEN", "ingest-secret")
    settings = ProducerSettings()
    assert isinstance(settings.ingest_token, SecretStr)
    assert "ingest-secret" not in repr(settings)
    assert settings.ingest_token.get_secret_value() == "ingest-secret"


def test_port_zero_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOOKLINE_PORT=0 asks for any free port."""
    monkeypatch.setenv("HOOKLINE_INGEST_TOKEN", "ingest-secret")
    monkeypatch.setenv("HOOKLINE_PORT", "0")
    assert ProducerSettings().port == 0


def test_several_ingest_tokens_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_INGEST_TOKEN", "team-a,team-b")
    assert ProducerSettings().ingest_tokens == ("team-a", "team-b")
