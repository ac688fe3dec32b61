"""Anything a subscriber sends back, or a producer parks in quarantine, is hostile input: status
reasons, headers and bodies are made valid UTF-8, stripped of control characters and capped before
they are logged, stored, published or shown.

aiohttp decodes a status line with `surrogateescape`, so a reason with bytes that are not UTF-8
reaches us as lone surrogates, which no JSON encoder accepts (that crashed the sender once).
"""

from __future__ import annotations

import re

# `last_error` and every other stored reason are at most this long, in UTF-8 bytes.
MAX_ERROR_BYTES = 1024
# Control characters but the tab: a newline in a reason could forge a log line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
ELLIPSIS = "…"


def clean_text(text: str, max_bytes: int = MAX_ERROR_BYTES) -> str:
    """`text` as valid UTF-8 without control characters, at most `max_bytes` long (cut with …)."""
    valid = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _capped(_CONTROL.sub(" ", valid), max_bytes)


# In a body shown as text, line breaks and tabs are the answer's layout, not a forged log line:
# bodies are stored and shown as JSON strings, never written to a log.
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_bytes(body: bytes, max_bytes: int) -> str:
    """A response body as text to show: valid UTF-8, without control characters but line breaks
    and tabs, at most `max_bytes` long (cut with …)."""
    valid = body[: max_bytes * 2].decode("utf-8", "replace")
    return _capped(_CONTROL_BUT_LAYOUT.sub(" ", valid), max_bytes)


def _capped(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(ELLIPSIS.encode())
    return encoded[:room].decode("utf-8", "ignore") + ELLIPSIS
