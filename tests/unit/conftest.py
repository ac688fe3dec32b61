"""Helpers of the unit tests: a clean environment, and factories of events and webhooks."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.events import Event
from schemas.webhooks import WebhookState, new_secret

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

MakeWebhook = Callable[..., WebhookState]
MakeEvent = Callable[..., Event]


@pytest.fixture(autouse=True)
def _clean_hookline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HOOKLINE_* variable of the caller's shell leaks into a unit test."""
    for name in list(os.environ):
        if name.upper().startswith("HOOKLINE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_webhook() -> MakeWebhook:
    """A factory of webhook states: `make_webhook(id="wh_1", event="problem.*", disabled=True)`."""

    def make(**fields: Any) -> WebhookState:
        values: dict[str, Any] = {
            "id": "wh_1",
            "name": "a webhook",
            "event": "problem.update",
            "uri": "https://example.com/hook",
            "description": None,
            "disabled": False,
            "mail_exceptions_to": None,
            "secret": new_secret(),
            "created_at": AT,
            "updated_at": AT,
            "revision": 0,
        }
        values.update(fields)
        return WebhookState(**values)

    return make


@pytest.fixture
def make_event() -> MakeEvent:
    """A factory of stamped events: `make_event(type="problem.create", data={...})`."""

    def make(**fields: Any) -> Event:
        values: dict[str, Any] = {
            "type": "problem.update",
            "data": {"subject": "printer on fire"},
            "id": "evt_1",
            "time": AT,
        }
        values.update(fields)
        return Event(**values)

    return make
