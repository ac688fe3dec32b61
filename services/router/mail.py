"""Failure mail: dead letters and disabled webhooks, told to the addresses in `mail_exceptions_to`
as at most one digest per webhook every `digest_s`.

Notices wait unacked on `<prefix>.mail` until the digest that holds them was accepted by the SMTP
server, so a router that dies takes none with it. The queue has a single active consumer, so one
router at a time gathers each webhook's digest.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from schemas.mail import FAILURE_NOTICE, FailureNotice
from schemas.webhooks import WebhookState
from services.router.metrics import RouterMetrics
from services.router.smtp import Mailer, MailFailed
from services.runtime.outcomes import Done, HoldExpired, Outcome, Unreadable
from services.runtime.webhook_table import WebhookTable

log = structlog.get_logger(__name__)

# A digest lists at most this many dead letters; the rest are counted.
MAX_LISTED = 50
# After a failed send, the notices go back to the queue and come again after this long.
RETRY_SEND_S = 30.0


class NoticeUnreadable(Unreadable):
    """A message on the mail queue is not a failure notice."""


@dataclass
class _Digest:
    notices: list[FailureNotice] = field(default_factory=list)
    sent: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def render_digest(webhook: WebhookState, notices: list[FailureNotice]) -> tuple[str, str]:
    """The subject and text of one digest."""
    disabled = [notice for notice in notices if notice.kind == "disabled"]
    dead = [notice for notice in notices if notice.kind == "dead_lettered"]
    parts = []
    if disabled:
        parts.append("disabled")
    if dead:
        parts.append(f"{len(dead)} deliver{'y' if len(dead) == 1 else 'ies'} dead-lettered")
    subject = f'[Hookline] webhook "{webhook.name}": {", ".join(parts)}'
    lines = [f"Webhook {webhook.name} ({webhook.id}) posts to {webhook.uri}.", ""]
    if disabled:
        lines += [f"Hookline disabled it: {disabled[-1].reason}", ""]
        lines += [
            "Enable it again once its endpoint works: PATCH /webhooks/:id disabled=false.",
            "",
        ]
    if dead:
        lines.append(f"Deliveries that could not be delivered ({len(dead)}):")
        for notice in dead[:MAX_LISTED]:
            attempts = f" after {notice.attempts} attempts" if notice.attempts else ""
            lines.append(
                f"- {notice.at:%Y-%m-%d %H:%M:%S}Z {notice.event_type} {notice.event_id} "
                f"(webhook-id {notice.delivery_id}): {notice.reason}{attempts}"
            )
        if len(dead) > MAX_LISTED:
            lines.append(f"- and {len(dead) - MAX_LISTED} more")
    return subject, "\n".join(lines) + "\n"


class MailDigests:
    """The mail queue's handler: gathers notices per webhook and mails them as digests."""

    def __init__(
        self,
        mailer: Mailer | None,
        table: WebhookTable,
        metrics: RouterMetrics,
        *,
        digest_s: float,
        gather_s: float,
    ) -> None:
        self._metrics = metrics
        self._mailer = mailer
        self._table = table
        self._digest_s = digest_s
        self._gather_s = gather_s
        self._pending: dict[str, _Digest] = {}
        self._last_sent: dict[str, float] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        self._said_unconfigured = False

    async def handle(self, message: AbstractIncomingMessage) -> Outcome:
        try:
            notice = FAILURE_NOTICE.validate_json(message.body)
        except ValidationError as error:
            raise NoticeUnreadable(f"not a failure notice: {error}") from None
        if self._mailer is None:
            if not self._said_unconfigured:
                self._said_unconfigured = True
                log.warning("mail.not_configured", hint="set HOOKLINE_SMTP_URL to mail failures")
            return Done()
        webhook = self._table.get(notice.webhook_id)
        if webhook is None or not webhook.mail_exceptions_to:
            return Done()  # deleted, or nobody to tell any more
        digest = self._pending.get(webhook.id)
        if digest is None:
            digest = self._pending[webhook.id] = _Digest()
            self._schedule(webhook.id)
        digest.notices.append(notice)
        try:
            await asyncio.shield(digest.sent)
        except MailFailed as error:
            raise HoldExpired(
                "hold_expired", f"mail not sent: {error}", delay_s=RETRY_SEND_S
            ) from None
        return Done()

    def _schedule(self, webhook_id: str) -> None:
        now = time.monotonic()
        last = self._last_sent.get(webhook_id)
        send_at = max(now + self._gather_s, (last + self._digest_s) if last is not None else now)
        task = asyncio.create_task(self._flush(webhook_id, send_at - now))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, webhook_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        digest = self._pending.pop(webhook_id)
        webhook = self._table.get(webhook_id)
        if webhook is None or not webhook.mail_exceptions_to or self._mailer is None:
            digest.sent.set_result(None)
            return
        notices = _merged(digest.notices)
        subject, text = render_digest(webhook, notices)
        recipients = [a.strip() for a in webhook.mail_exceptions_to.split(",") if a.strip()]
        try:
            await self._mailer.send(recipients, subject, text)
        except MailFailed as error:
            self._metrics.mail_digests.labels(result="failed").inc()
            log.warning("mail.failed", webhook_id=webhook_id, error=str(error))
            digest.sent.set_exception(error)
            digest.sent.exception()  # retrieved here: every waiter re-raises it on its own
            return
        self._last_sent[webhook_id] = time.monotonic()
        self._forget_old_sends()
        self._metrics.mail_digests.labels(result="sent").inc()
        log.info("mail.sent", webhook_id=webhook_id, notices=len(notices), to=len(recipients))
        digest.sent.set_result(None)

    def _forget_old_sends(self) -> None:
        horizon = time.monotonic() - self._digest_s
        for webhook_id in [w for w, at in self._last_sent.items() if at < horizon]:
            del self._last_sent[webhook_id]

    async def stop(self) -> None:
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)


def _merged(notices: list[FailureNotice]) -> list[FailureNotice]:
    """The notices of one digest, a repeated one (same delivery, or a second disable) once."""
    seen: set[tuple[str, str | None]] = set()
    merged = []
    for notice in notices:
        key = (notice.kind, notice.delivery_id)
        if key not in seen:
            seen.add(key)
            merged.append(notice)
    return merged
