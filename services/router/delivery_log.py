"""The read side of the delivery log stream: each webhook's `last_error`."""

from __future__ import annotations

import structlog

from schemas.deliveries import DELIVERY_LOG_RECORD, last_error_after

log = structlog.get_logger(__name__)


class DeliveryLogView:
    """Folds delivery outcomes into the last error of each webhook."""

    def __init__(self) -> None:
        self._last_error: dict[str, str] = {}

    def last_error(self, webhook_id: str) -> str | None:
        return self._last_error.get(webhook_id)

    def apply_bytes(self, body: bytes, offset: int) -> None:
        try:
            record = DELIVERY_LOG_RECORD.validate_json(body)
        except ValueError as error:
            log.error("delivery_log.unreadable_record", offset=offset, error=str(error)[:500])
            return
        last_error = last_error_after(self._last_error.get(record.webhook_id), record)
        if last_error is None:
            self._last_error.pop(record.webhook_id, None)
        else:
            self._last_error[record.webhook_id] = last_error
