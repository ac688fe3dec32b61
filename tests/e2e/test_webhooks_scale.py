"""The many-webhooks bench in small: it finds every webhook it made, so it cannot rot. No figure is
asserted: speed is measured by the bench, never by a test."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RUN_PREFIX
from tools.bench import webhooks_scale

pytestmark = pytest.mark.e2e


def test_a_small_run_finds_every_webhook_and_reports_every_figure() -> None:
    """With 300 webhooks the late router lists each one once and answers every API-made one."""
    result = webhooks_scale.measure(300, prefix=f"{RUN_PREFIX}-scale")
    json.dumps(result)  # what the bench prints
    assert result["webhooks"] == 300
    assert result["api_found"] == result["through_api"] == webhooks_scale.API_WEBHOOKS
    assert result["listed"] == result["listed_distinct"] == 300
    assert result["missing"] == 0
    assert result["listing"]["entries"] == 300
    assert result["listing"]["status"] == 200
    for service in ("router", "sender"):
        figures = result[service]
        assert set(figures) == {
            "ready_s",
            "cpu_s",
            "empty_ready_s",
            "rss_mb",
            "empty_rss_mb",
            "running_rss_mb",
            "kb_per_webhook",
        }
        assert figures["ready_s"] > 0
        assert figures["rss_mb"] > 0
