"""Subscriber strings made safe to log, store and publish."""

from __future__ import annotations

import json

import pytest

from services.runtime.sanitize import MAX_ERROR_BYTES, clean_bytes, clean_text


def test_lone_surrogates_become_replacement_characters() -> None:
    """What aiohttp makes of bytes that are not UTF-8 (surrogate escapes) turns into U+FFFD."""
    cleaned = clean_text("500 Bad \udcff\udcfe Reason")
    assert cleaned == "500 Bad \ufffd\ufffd Reason"
    json.dumps(cleaned).encode()


def test_control_characters_are_blanked() -> None:
    """Newlines, NUL, escape sequences and C1 controls cannot forge log lines or terminals."""
    assert clean_text("a\nb\rc\x00d\x1b[31me\x85f") == "a b c d [31me f"


def test_valid_text_is_kept_as_it_is() -> None:
    """Printable text, tabs and non-ASCII letters pass unchanged."""
    assert clean_text("404 Nicht gefunden ✓\tok") == "404 Nicht gefunden ✓\tok"


@pytest.mark.parametrize("text", ["x" * 8000, "é" * 5000, "✓" * 4000])
def test_long_text_is_cut_to_the_byte_limit_on_a_character_boundary(text: str) -> None:
    """Long text ends in an ellipsis, within the limit, and stays valid UTF-8."""
    cleaned = clean_text(text)
    assert len(cleaned.encode()) <= MAX_ERROR_BYTES
    assert cleaned.endswith("…")
    assert cleaned[:-1] == text[: len(cleaned) - 1]


def test_a_body_is_shown_as_capped_text() -> None:
    """A response body that is not UTF-8 becomes capped, valid text."""
    assert clean_bytes(b"ok \xff\xfe" + b"y" * 10_000, 100).startswith("ok \ufffd\ufffdyyy")
    assert len(clean_bytes(b"y" * 10_000, 100).encode()) <= 100


def test_a_body_keeps_its_line_breaks_and_tabs_but_no_other_control_characters() -> None:
    assert clean_bytes(b"line 1\r\nline 2\tend\x00\x1b[31m", 100) == "line 1\r\nline 2\tend  [31m"
