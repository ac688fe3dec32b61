"""Logging at debug shows our lines and the libraries', but never the AMQP client's frames."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from services.runtime.logging import QUIET_AT_DEBUG, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_AT_DEBUG}
    yield
    root.handlers[:], root.level = handlers, level
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()


def test_debug_shows_ours_and_the_libraries_lines_but_no_amqp_frame(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("router", "debug", "json")
    structlog.get_logger("services.router").debug("our.detail")
    logging.getLogger("aiohttp.client").debug("library detail")
    # What aiormq writes for each frame it sends: here, a webhook's signing secret.
    logging.getLogger("aiormq.connection").debug("Prepare to send %r", "whsec_c2VjcmV0")
    logging.getLogger("aio_pika.exchange").debug("Publishing message with routing key %r", "k")
    logging.getLogger("aiormq.connection").info("Connection established")
    out = capsys.readouterr().out
    assert "our.detail" in out
    assert "library detail" in out
    assert "Connection established" in out
    assert "whsec_" not in out
    assert "Publishing message" not in out


def test_at_info_the_libraries_speak_from_warning_up(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("sender", "info", "json")
    logging.getLogger("aiormq.connection").info("Connection established")
    logging.getLogger("aiormq.connection").warning("Connection lost")
    out = capsys.readouterr().out
    assert "Connection established" not in out
    assert "Connection lost" in out


def test_fields_without_a_value_are_left_out_of_ours_and_the_libraries_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A field whose value is None is not written, in our lines and the libraries' (a context
    variable bound to None reaches both); 0, False and "" are values and stay."""
    configure_logging("router", "info", "json")
    structlog.contextvars.bind_contextvars(request_id=None, attempt=0)
    try:
        structlog.get_logger("services.router").info(
            "our.line", checkpoint_at=None, count=0, test=False, note=""
        )
        logging.getLogger("aiormq.connection").warning("Connection lost")
    finally:
        structlog.contextvars.clear_contextvars()
    ours, theirs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert ours["event"] == "our.line"
    assert theirs["event"] == "Connection lost"
    for line in (ours, theirs):
        assert None not in line.values(), line
        assert "request_id" not in line
        assert line["attempt"] == 0
    assert (ours["count"], ours["test"], ours["note"]) == (0, False, "")
