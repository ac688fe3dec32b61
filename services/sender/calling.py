"""Making one call and saying what came of it: success, or why not in a few words."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus

import aiohttp

from services.sender.request import PreparedRequest
from services.sender.targets import TargetPolicy, TargetRefused

# Read at most this much of a response: we only want to know the call was answered.
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one attempt got: a status, or an error that says why there was none."""

    status_code: int | None
    error: str | None
    duration_s: float

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def status_class(self) -> str:
        """A closed set for metric labels: 1xx…5xx, timeout, connect_error, refused, error."""
        if self.status_code is not None:
            return f"{self.status_code // 100}xx"
        if self.error and self.error.startswith("timeout"):
            return "timeout"
        if self.error and self.error.startswith("connect"):
            return "connect_error"
        if self.error and self.error.startswith("refused"):
            return "refused"
        return "error"


def describe_status(status: int, reason: str | None) -> str:
    """`404 Not Found`: the status and its phrase, as Xurrent shows `last_error`."""
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return f"{status} {reason}".strip()


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
    try:
        policy.check_url(request.url)  # aiohttp skips the resolver's check for IP literals
        async with asyncio.timeout(timeout_s):
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = describe_status(status, response.reason)
                await response.content.read(MAX_RESPONSE_BYTES)
    except TimeoutError:
        error = error or (None if status else f"timeout after {timeout_s:g}s")
    except TargetRefused as exc:
        error = f"refused: {exc}"
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, TargetRefused):
            error = f"refused: {exc.os_error}"
        else:
            error = f"connect failed: {_reason(exc)}"
    except aiohttp.ClientError as exc:
        error = error or (None if status else f"request failed: {_reason(exc)}")
    except (ValueError, UnicodeError) as exc:  # a URL the client cannot use (bad IDNA, say)
        error = f"invalid target: {exc}"
    return CallResult(status_code=status, error=error, duration_s=time.monotonic() - started)


def _reason(exc: BaseException) -> str:
    """`connection refused`, `name or service not known`: the OS's words where there are some."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return f"could not resolve host ({os_error.strerror})"
        if os_error.errno and os_error.errno > 0:
            return os.strerror(os_error.errno).lower()
    return str(exc) or type(exc).__name__
