"""structlog set-up: JSON lines for machines, colours for a person at a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
from structlog.typing import Processor

LogFormat = Literal["auto", "json", "console"]
# Libraries whose debug output carries message contents.
QUIET_AT_DEBUG = ("aiormq", "aio_pika", "pamqp")


def configure_logging(service: str, level: str = "info", log_format: LogFormat = "auto") -> None:
    """Send our logs and the libraries' (aio-pika, aiohttp) through one structlog pipeline."""
    as_console = log_format == "console" or (log_format == "auto" and sys.stdout.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=True)
        if as_console
        else structlog.processors.JSONRenderer()
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            drop_none,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                drop_none,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries speak at WARNING and up unless we debug; aiohttp's access log is one line a request.
    root.setLevel(numeric_level if numeric_level <= logging.DEBUG else logging.WARNING)
    # The AMQP client's debug lines hold whole frames (webhook secrets in the webhooks stream's
    # records, event payloads): they are never written, whatever the level.
    for name in QUIET_AT_DEBUG:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


def drop_none(
    _logger: object, _name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Leave out the fields whose value is None: in a line, a key without a value is noise."""
    return {key: value for key, value in event_dict.items() if value is not None}


def _add_service(service: str) -> Processor:
    def add_service(
        _logger: object, _name: str, event_dict: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service
