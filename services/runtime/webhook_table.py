"""The webhook table a service rebuilds from the webhooks stream, and waits on.

Senders wait until the table has reached the revision a router routed with, so every replica acts
on what the router saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from schemas.webhooks import WEBHOOK_RECORD, WebhookRecord, WebhookState, evolve
from services.runtime.streams import StreamRecord

log = structlog.get_logger(__name__)

ChangeListener = Callable[[str, WebhookState | None], None]


class WebhookTable:
    """Webhooks by id, as of `offset`: the last stream offset applied."""

    def __init__(self) -> None:
        self.webhooks: dict[str, WebhookState] = {}
        self.offset = -1
        self._listeners: list[ChangeListener] = []
        self._offset_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(webhook_id, state or None)` after every change."""
        self._listeners.append(listener)

    def get(self, webhook_id: str) -> WebhookState | None:
        return self.webhooks.get(webhook_id)

    def apply_record(self, record: StreamRecord) -> None:
        """Fold one stream message; one that cannot be read is logged and skipped, never fatal."""
        if record.offset <= self.offset:
            return  # already applied (a consumer restored after a reconnect reads again)
        try:
            parsed = WEBHOOK_RECORD.validate_json(record.body)
        except ValueError as error:
            log.error("webhook_log.unreadable_record", offset=record.offset, error=str(error)[:500])
            self._advance(record.offset)
            return
        self.apply(parsed, record.offset)

    def apply(self, record: WebhookRecord, offset: int) -> None:
        webhook_id = getattr(record, "webhook_id", None)
        if webhook_id is not None:
            after = evolve(self.webhooks.get(webhook_id), record, offset)
            if after is None:
                self.webhooks.pop(webhook_id, None)
            else:
                self.webhooks[webhook_id] = after
            self._tell(webhook_id, after)
        self._advance(offset)

    def reset(self) -> None:
        """Forget every webhook (the stream was lost and is read again from its start)."""
        gone, self.webhooks = list(self.webhooks), {}
        self.offset = -1
        for webhook_id in gone:
            self._tell(webhook_id, None)

    def _tell(self, webhook_id: str, state: WebhookState | None) -> None:
        for listener in self._listeners:
            listener(webhook_id, state)

    def _advance(self, offset: int) -> None:
        self.offset = offset
        if not self._offset_waiters:
            return
        still_waiting = []
        for wanted, future in self._offset_waiters:
            if wanted <= offset:
                if not future.done():
                    future.set_result(None)
            else:
                still_waiting.append((wanted, future))
        self._offset_waiters = still_waiting

    async def wait_for_offset(self, offset: int, timeout_s: float) -> None:
        """Wait until the table has applied everything up to `offset`; TimeoutError after
        `timeout_s`, leaving no waiter behind."""
        if offset <= self.offset:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (offset, future)
        self._offset_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout_s):
                await future
        finally:
            future.cancel()
            if entry in self._offset_waiters:  # timed out or cancelled: leave nothing behind
                self._offset_waiters.remove(entry)

    @property
    def waiters(self) -> int:
        """How many are waiting for an offset (a gauge, and a check that none are left behind)."""
        return len(self._offset_waiters)
