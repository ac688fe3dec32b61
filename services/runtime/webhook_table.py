"""The webhook table a service rebuilds from the webhooks stream, and waits on; the webhook
policies of the same stream beside it (`policies`).

Senders wait until the table has reached the revision a router routed with, so every replica acts
on what the router saw.

Listeners (the router's routing index, its health view) mirror the table. While it is rebuilt
from the start of the stream nobody acts on it, so they are told once, when it has caught up:
the final state of each webhook that changed, not every record on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from pydantic import ValidationError

from schemas.webhook_policies import POLICY_CHANGES
from schemas.webhooks import WebhookState, evolve
from schemas.webhooks_stream import STREAM_RECORD, StreamRecord
from services.runtime.policy_table import PolicyTable
from services.runtime.streams import StreamRecord as StreamMessage

log = structlog.get_logger(__name__)

ChangeListener = Callable[[str, WebhookState | None], None]


class WebhookTable:
    """Webhooks by id, as of `offset`: the last stream offset applied."""

    def __init__(self) -> None:
        self.webhooks: dict[str, WebhookState] = {}
        # The policies webhooks name, folded from the same records: as current as the webhooks.
        self.policies = PolicyTable()
        self.offset = -1
        self._listeners: list[ChangeListener] = []
        self._offset_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # While deferring: the ids changed since `defer_changes()`, which listeners were not told
        # of yet, and the ids they knew then (what they hold until `caught_up()`).
        self._deferred: set[str] | None = None
        self._known: frozenset[str] = frozenset()

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(webhook_id, state or None)` after every change, or, for the changes
        made while deferred, once per changed webhook with its state at `caught_up()`.

        So a listener must only mirror the latest state of each webhook (an index, a view).
        """
        self._listeners.append(listener)

    def defer_changes(self) -> None:
        """Note which webhooks change, and tell the listeners only at `caught_up()`: for a table
        being rebuilt from the stream's start, which nobody acts on before it has caught up."""
        if self._deferred is None:
            self._deferred = set()
            self._known = frozenset(self.webhooks)

    def caught_up(self) -> None:
        """Tell the listeners the state of each webhook changed while deferred (None for one
        they knew that is gone), then tell them of each change as it comes."""
        changed, known = self._deferred, self._known
        self._deferred, self._known = None, frozenset()
        for webhook_id in changed or ():
            state = self.webhooks.get(webhook_id)
            if state is not None or webhook_id in known:
                self._tell(webhook_id, state)

    def get(self, webhook_id: str) -> WebhookState | None:
        return self.webhooks.get(webhook_id)

    def apply_record(self, record: StreamMessage) -> None:
        """Fold one stream message; one that cannot be read is logged and skipped, never fatal."""
        if record.offset <= self.offset:
            return  # already applied (a consumer restored after a reconnect reads again)
        try:
            parsed = STREAM_RECORD.validate_json(record.body)
        except ValueError as error:
            log.error("webhook_log.unreadable_record", offset=record.offset, error=_why(error))
            self._advance(record.offset)
            return
        self.apply(parsed, record.offset)

    def apply(self, record: StreamRecord, offset: int) -> None:
        if isinstance(record, POLICY_CHANGES):
            self.policies.apply(record, offset)
        elif (webhook_id := getattr(record, "webhook_id", None)) is not None:
            after = evolve(self.webhooks.get(webhook_id), record, offset)
            if after is None:
                self.webhooks.pop(webhook_id, None)
            else:
                self.webhooks[webhook_id] = after
            if self._deferred is None:
                self._tell(webhook_id, after)
            else:
                self._deferred.add(webhook_id)
        self._advance(offset)

    def reset(self) -> None:
        """Forget every webhook (the stream was lost and is read again from its start); the
        listeners hear at once that each webhook they know is gone, deferred or not."""
        gone = list(self.webhooks) if self._deferred is None else list(self._known)
        self.webhooks = {}
        self.policies.reset()
        self.offset = -1
        if self._deferred is not None:
            self._deferred, self._known = set(), frozenset()
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


def _why(error: ValueError) -> str:
    """What is wrong with a record, without its values: a record holds signing secrets and
    keys, which pydantic's own message would quote (`input_value=…`)."""
    if isinstance(error, ValidationError):
        text = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'record'}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)
        )
    else:
        text = str(error)
    return text[:500]
