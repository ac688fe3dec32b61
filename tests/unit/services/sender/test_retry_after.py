"""Reading a subscriber's Retry-After, which is hostile input like everything it sends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.sender.retry_after import parse_retry_after

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Thu, 26 Nov 2026 12:05:00 GMT", 300.0),
        ("Thu, 26 Nov 2026 11:00:00 GMT", 0.0),  # a date in the past: no wait
        ("Thursday, 26-Nov-26 12:01:00 GMT", 60.0),  # the obsolete RFC 850 form
    ],
)
def test_seconds_and_http_dates(value: str, seconds: float) -> None:
    """Delay-seconds and HTTP dates both give how long to wait from now."""
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value", [None, "", "-5", "1.5", "soon", "9" * 20, "x" * 100, "Thu, 26 Nov 2099 12:00:00 GMT"]
)
def test_unreadable_or_absurd_values_are_ignored(value: str | None) -> None:
    """Negative, fractional, huge or unreadable values are not trusted: no Retry-After."""
    assert parse_retry_after(value, now=NOW) is None
