"""The router's settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from services.router.settings import RouterSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router listens on 8001 by default under the `hookline` prefix."""
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", "admin-secret")
    settings = RouterSettings()
    assert (settings.port, settings.prefix) == (8001, "hookline")


def test_the_admin_token_is_required() -> None:
    """Without HOOKLINE_ADMIN_TOKEN the router does not start."""
    with pytest.raises(ValidationError) as caught:
        RouterSettings()
    assert [problem["loc"] for problem in caught.value.errors()] == [("admin_token",)]


def test_the_admin_token_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is a SecretStr: repr hides it, get_secret_value gives it."""
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", "admin-secret")
    settings = RouterSettings()
    assert isinstance(settings.admin_token, SecretStr)
    assert "admin-secret" not in repr(settings)
    assert settings.admin_token.get_secret_value() == "admin-secret"


def test_port_zero_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOOKLINE_PORT=0 asks for any free port."""
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", "admin-secret")
    monkeypatch.setenv("HOOKLINE_PORT", "0")
    assert RouterSettings().port == 0


def test_several_admin_tokens_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tokens at once let one be replaced without downtime; blanks are dropped."""
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", " old-token , new-token ,")
    assert RouterSettings().admin_tokens == ("old-token", "new-token")


def test_an_admin_token_of_only_commas_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", " , ")
    with pytest.raises(ValidationError, match="at least one token"):
        RouterSettings()


def test_account_tokens_map_each_token_to_its_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", "admin-secret")
    monkeypatch.setenv("HOOKLINE_ACCOUNT_TOKENS", "acme:tok-a1, acme:tok-a2 ,globex:tok-g")
    assert RouterSettings().scoped_tokens == {"tok-a1": "acme", "tok-a2": "acme", "tok-g": "globex"}
    monkeypatch.delenv("HOOKLINE_ACCOUNT_TOKENS")
    assert RouterSettings().scoped_tokens == {}


@pytest.mark.parametrize("value", ["tok-without-account", "acme:", ":tok-x", "acme:tok,globex"])
def test_an_account_token_entry_must_be_account_and_token(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """The error says which entry is wrong, never what the token is."""
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", "admin-secret")
    monkeypatch.setenv("HOOKLINE_ACCOUNT_TOKENS", value)
    with pytest.raises(ValidationError, match="is not account:token") as caught:
        RouterSettings()
    assert value not in str(caught.value)


def test_queue_metrics_are_polled_every_15_s_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOOKLINE_QUEUE_METRICS_S sets the poll interval of the queue depths; 0 is refused."""
    monkeypatch.setenv("HOOKLINE_ADMIN_TOKEN", "admin-secret")
    assert RouterSettings().queue_metrics_s == 15
    monkeypatch.setenv("HOOKLINE_QUEUE_METRICS_S", "2.5")
    assert RouterSettings().queue_metrics_s == 2.5
    monkeypatch.setenv("HOOKLINE_QUEUE_METRICS_S", "0")
    with pytest.raises(ValidationError):
        RouterSettings()
