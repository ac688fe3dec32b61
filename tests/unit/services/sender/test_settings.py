"""The sender's settings."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from services.sender.settings import SenderSettings


def test_defaults() -> None:
    """The sender listens on 8002, allows no private targets and has a total attempt deadline."""
    settings = SenderSettings()
    assert (settings.port, settings.prefix) == (8002, "hookline")
    assert settings.allowed_networks == ()
    assert 0 < settings.attempt_timeout_s <= 60


def test_allowed_targets_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOOKLINE_ALLOWED_TARGETS is a comma separated list of CIDRs."""
    monkeypatch.setenv("HOOKLINE_ALLOWED_TARGETS", "127.0.0.0/8, ::1/128")
    assert SenderSettings().allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


def test_a_bad_allowed_target_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad CIDR in HOOKLINE_ALLOWED_TARGETS is a settings error naming the field."""
    monkeypatch.setenv("HOOKLINE_ALLOWED_TARGETS", "127.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ValidationError) as caught:
        SenderSettings()
    assert [problem["loc"] for problem in caught.value.errors()] == [("allowed_targets",)]
    assert "10.0.0.0/33" in str(caught.value)


def test_port_zero_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOOKLINE_PORT=0 asks for any free port."""
    monkeypatch.setenv("HOOKLINE_PORT", "0")
    assert SenderSettings().port == 0


@pytest.mark.parametrize("timeout", ["0", "-1", "301"])
def test_the_attempt_timeout_is_bounded(monkeypatch: pytest.MonkeyPatch, timeout: str) -> None:
    """An attempt deadline must be more than 0 and at most 300 seconds."""
    monkeypatch.setenv("HOOKLINE_ATTEMPT_TIMEOUT_S", timeout)
    with pytest.raises(ValidationError):
        SenderSettings()


def test_routing_defaults_and_a_dedupe_window_of_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Senders route events: duplicates are dropped within a window, which 0 turns off."""
    assert SenderSettings().dedupe_window > 0
    monkeypatch.setenv("HOOKLINE_DEDUPE_WINDOW", "0")
    assert SenderSettings().dedupe_window == 0
