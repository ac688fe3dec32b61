"""`Retry-After` (RFC 9110 §10.2.3): seconds or an HTTP date, as a subscriber's 429 or 503 sends
it."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A Retry-After longer than this is not a number we take seriously (a year).
MAX_RETRY_AFTER_S = 365 * 24 * 3600.0


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """How many seconds the subscriber asked us to wait; None when absent or unreadable.

    A date in the past means "now" (0). Hostile values (negative, huge, not a date) are ignored
    rather than trusted.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        seconds = float(int(text))
        return seconds if seconds <= MAX_RETRY_AFTER_S else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    if seconds > MAX_RETRY_AFTER_S:
        return None
    return max(0.0, seconds)
