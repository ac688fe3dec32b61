"""Making one call and saying what came of it: a status, or why there was none, in a few words.

Every failure of the call is a result, never an exception: classifying it is `fate.decide`'s job.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Literal

import aiohttp

from schemas.targets import TargetPolicy, TargetRefused
from services.runtime.sanitize import clean_text
from services.sender.request import PreparedRequest
from services.sender.retry_after import parse_retry_after

# Read at most this much of a response: we only want to know the call was answered.
MAX_RESPONSE_BYTES = 64 * 1024
# The start of the answer's body kept for the delivery history.
KEPT_BODY_BYTES = 4 * 1024

# What happened, as a closed set: answered (with a status), or why there was no answer.
CallKind = Literal["answered", "timeout", "connect_error", "refused", "invalid_target", "error"]


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one attempt got: a status, or an error that says why there was none."""

    kind: CallKind
    status_code: int | None
    error: str | None
    duration_s: float
    retry_after_s: float | None = None
    body: bytes = b""  # the first KEPT_BODY_BYTES of the answer, as received

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def status_class(self) -> str:
        """A closed set for metric labels: 1xx…5xx, timeout, connect_error, refused, error."""
        if self.status_code is not None:
            return f"{self.status_code // 100}xx"
        if self.kind == "invalid_target":
            return "error"
        return self.kind


def describe_status(status: int, reason: str | None) -> str:
    """`404 Not Found`: the status and its phrase, as Xurrent shows `last_error`; the phrase the
    subscriber sent is cleaned and capped."""
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return clean_text(f"{status} {reason}".strip())


async def call(
    session: aiohttp.ClientSession,
    request: PreparedRequest,
    timeout_s: float,
    policy: TargetPolicy,
) -> CallResult:
    """One attempt under one total deadline (a trickling receiver cannot stretch it).

    The status line decides: a 2xx whose body then stalls or breaks was still accepted.
    """
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    kind: CallKind = "answered"
    retry_after_s: float | None = None
    body = bytearray()
    try:
        # The URL as the policy read it; aiohttp never asks the resolver about an IP literal.
        url = policy.check(request.url)
        if request.https_only and url.scheme != "https":
            raise TargetRefused("this webhook takes https targets only")
        async with asyncio.timeout(timeout_s):
            async with session.request(
                request.method,
                url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = describe_status(status, response.reason)
                if status in (429, 503):
                    retry_after_s = parse_retry_after(
                        response.headers.get("Retry-After"), now=datetime.now(UTC)
                    )
                await _read_start(response.content, body)
    except TimeoutError:
        if status is None:
            kind, error = "timeout", f"timeout after {timeout_s:g}s"
    except TargetRefused as exc:
        kind, error = "refused", f"refused: {exc}"
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, TargetRefused):
            kind, error = "refused", f"refused: {exc.os_error}"
        else:
            kind, error = "connect_error", f"connect failed: {_reason(exc)}"
    except aiohttp.ClientResponseError as exc:
        if status is None:  # aiohttp could not parse the answer, and made up a 400 for it
            kind, error = "error", f"unreadable response: {exc.message}"
    except aiohttp.ClientError as exc:
        if status is None:
            kind, error = "error", f"request failed: {_reason(exc)}"
    except (ValueError, UnicodeError) as exc:  # a URL the client cannot use (bad IDNA, say)
        kind, error = "invalid_target", f"invalid target: {exc}"
    return CallResult(
        kind=kind,
        status_code=status,
        error=clean_text(error) if error is not None else None,
        duration_s=time.monotonic() - started,
        retry_after_s=retry_after_s,
        body=bytes(body),
    )


async def _read_start(content: aiohttp.StreamReader, kept: bytearray) -> None:
    """Read what the answer sent at once (at most MAX_RESPONSE_BYTES), and on until its first
    KEPT_BODY_BYTES are in `kept`, or it ends: a body that arrives in pieces is kept whole too."""
    chunk = await content.read(MAX_RESPONSE_BYTES)
    kept += chunk[:KEPT_BODY_BYTES]
    while chunk and len(kept) < KEPT_BODY_BYTES:
        chunk = await content.read(KEPT_BODY_BYTES - len(kept))
        kept += chunk


def _reason(exc: BaseException) -> str:
    """`connection refused`, `name or service not known`: the OS's words where there are some."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return f"could not resolve host ({os_error.strerror})"
        if os_error.errno and os_error.errno > 0:
            return os.strerror(os_error.errno).lower()
    return str(exc) or type(exc).__name__
