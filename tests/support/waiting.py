"""Waiting for something the system does asynchronously, with a deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, timeout_s: float = 10, poll_s: float = 0.05
) -> None:
    """Return once `check()` is true; TimeoutError if it is not within `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(poll_s)
