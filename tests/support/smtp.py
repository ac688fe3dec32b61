"""A real SMTP server on loopback (aiosmtpd) that keeps every mail it is given."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Mail:
    recipients: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        payload = self.message.get_payload(decode=True)
        return payload.decode() if isinstance(payload, bytes) else str(payload)


@dataclass
class SmtpSink:
    """Accepts every mail on 127.0.0.1 and records it."""

    mails: list[Mail] = field(default_factory=list)
    port: int = 0
    _controller: Controller | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _arrived: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        content = envelope.original_content or b""
        mail = Mail(list(envelope.rcpt_tos), message_from_bytes(content))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._record, mail)
        return "250 OK"

    def _record(self, mail: Mail) -> None:
        self.mails.append(mail)
        if self._arrived is not None:
            self._arrived.set()

    async def wait_for(self, count: int, timeout_s: float = 20) -> list[Mail]:
        """Wait until at least `count` mails have arrived."""
        assert self._arrived is not None
        async with asyncio.timeout(timeout_s):
            while len(self.mails) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.mails

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        with socket.socket() as probe:  # aiosmtpd needs a port it can also connect to itself
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
