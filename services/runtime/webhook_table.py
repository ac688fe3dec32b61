"""The webhook table a service rebuilds from the webhooks stream, and waits on.

Writers wait until their own record is applied (read-your-writes); senders wait until the table has
reached the revision a router routed with, so every replica acts on what the router saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from schemas.webhooks import WEBHOOK_RECORD, WebhookRecord, WebhookState, evolve

log = structlog.get_logger(__name__)

ChangeListener = Callable[[str, WebhookState | None], None]


class WebhookTable:
    """Webhooks by id, as of `offset`: the last stream offset applied."""

    def __init__(self) -> None:
        self.webhooks: dict[str, WebhookState] = {}
        self.offset = -1
        self._listeners: list[ChangeListener] = []
        self._record_waiters: dict[str, asyncio.Future[int]] = {}
        self._offset_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(webhook_id, state or None)` after every change."""
        self._listeners.append(listener)

    def get(self, webhook_id: str) -> WebhookState | None:
        return self.webhooks.get(webhook_id)

    def apply_bytes(self, body: bytes, offset: int) -> None:
        """Fold one stream message; one that cannot be read is logged and skipped, never fatal."""
        if offset <= self.offset:
            return  # already applied (a consumer restored after a reconnect reads again)
        try:
            record = WEBHOOK_RECORD.validate_json(body)
        except ValueError as error:
            log.error("webhook_log.unreadable_record", offset=offset, error=str(error)[:500])
            self._advance(offset)
            return
        self.apply(record, offset)

    def apply(self, record: WebhookRecord, offset: int) -> None:
        webhook_id = getattr(record, "webhook_id", None)
        if webhook_id is not None:
            after = evolve(self.webhooks.get(webhook_id), record, offset)
            if after is None:
                self.webhooks.pop(webhook_id, None)
            else:
                self.webhooks[webhook_id] = after
            for listener in self._listeners:
                listener(webhook_id, after)
        self._advance(offset)
        waiter = self._record_waiters.pop(record.record_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(offset)

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

    def expect(self, record_id: str) -> asyncio.Future[int]:
        """A future of the offset the record will be applied at; ask before publishing it."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._record_waiters[record_id] = future
        future.add_done_callback(lambda _: self._record_waiters.pop(record_id, None))
        return future

    async def wait_for_offset(self, offset: int, timeout_s: float) -> None:
        """Wait until the table has applied everything up to `offset`."""
        if offset <= self.offset:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._offset_waiters.append((offset, future))
        async with asyncio.timeout(timeout_s):
            await future
