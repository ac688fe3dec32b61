"""Failure-mail digests: where mail goes, and what a digest says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.mail import FailureNotice
from schemas.webhooks import WebhookState
from services.router.mail import MAX_LISTED, render_digest
from services.router.smtp import SmtpServer
from tests.unit.conftest import MakeWebhook

AT = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


def dead(n: int) -> FailureNotice:
    return FailureNotice(
        kind="dead_lettered",
        webhook_id="wh_1",
        at=AT,
        reason="503 Service Unavailable",
        delivery_id=f"msg_{n}",
        event_id=f"evt_{n}",
        event_type="problem.update",
        attempts=8,
    )


def test_smtp_urls() -> None:
    """smtp:// and smtps:// with their default ports, credentials and STARTTLS."""
    assert SmtpServer.from_url("smtp://127.0.0.1:2525") == SmtpServer("127.0.0.1", 2525)
    secure = SmtpServer.from_url("smtps://ops%40acme.com:p%40ss@mail.acme.com")
    assert (secure.port, secure.use_tls, secure.username, secure.password) == (
        465,
        True,
        "ops@acme.com",
        "p@ss",
    )
    assert SmtpServer.from_url("smtp://mail:587?starttls=true").start_tls is True
    assert "p@ss" not in repr(secure)


@pytest.mark.parametrize("url", ["http://mail", "smtp://", "mail.acme.com"])
def test_bad_smtp_urls_say_why(url: str) -> None:
    """A URL that is not an SMTP server is refused with the reason."""
    with pytest.raises(ValueError, match=r"smtp|host"):
        SmtpServer.from_url(url)


def test_a_digest_of_dead_letters_lists_each_one(make_webhook: MakeWebhook) -> None:
    """Each dead letter is listed with its event, webhook-id, reason and attempts."""
    webhook: WebhookState = make_webhook(name="Ops hook")
    subject, text = render_digest(webhook, [dead(1), dead(2)])
    assert subject == '[Hookline] webhook "Ops hook": 2 deliveries dead-lettered'
    assert (
        "problem.update evt_1 (webhook-id msg_1): 503 Service Unavailable after 8 attempts" in text
    )
    assert webhook.uri in text


def test_a_digest_says_the_webhook_was_disabled_and_why(make_webhook: MakeWebhook) -> None:
    """A disable notice leads the digest, with its reason and how to enable it again."""
    disabled = FailureNotice(kind="disabled", webhook_id="wh_1", at=AT, reason="410 Gone")
    subject, text = render_digest(make_webhook(name="h"), [disabled, dead(1)])
    assert subject == '[Hookline] webhook "h": disabled, 1 delivery dead-lettered'
    assert "Hookline disabled it: 410 Gone" in text
    assert "disabled=false" in text


def test_a_long_digest_lists_the_first_and_counts_the_rest(make_webhook: MakeWebhook) -> None:
    """A digest of many dead letters stays readable."""
    _, text = render_digest(make_webhook(), [dead(n) for n in range(MAX_LISTED + 7)])
    assert text.count("\n- ") == MAX_LISTED + 1
    assert "- and 7 more" in text
