"""Sending mail through an SMTP server (aiosmtplib), configured by one URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

SMTP_TIMEOUT_S = 30.0


class MailFailed(Exception):
    """The SMTP server did not take a digest."""


@dataclass(frozen=True)
class SmtpServer:
    """Where mail goes: `smtp://[user:password@]host[:port][?starttls=true]` or `smtps://…`."""

    hostname: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    use_tls: bool = False
    start_tls: bool | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("names no host")
        query = parse_qs(parts.query)
        starttls = query.get("starttls", [""])[0].lower()
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=parts.scheme == "smtps",
            start_tls=True if starttls in ("1", "true", "yes") else None,
        )


class Mailer:
    """Sends one plain-text mail through an SMTP server."""

    def __init__(self, server: SmtpServer, sender: str) -> None:
        self._server = server
        self._sender = sender

    async def send(self, recipients: list[str], subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message.set_content(text)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._server.hostname,
                port=self._server.port,
                username=self._server.username,
                password=self._server.password,
                use_tls=self._server.use_tls,
                start_tls=self._server.start_tls,
                timeout=SMTP_TIMEOUT_S,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise MailFailed(str(error) or type(error).__name__) from None
