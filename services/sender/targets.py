"""The sender's side of the target policy (`schemas.targets`): a resolver that drops every address
the policy refuses from each DNS answer, so a name that rebinds to a private address between two
lookups cannot slip through, and the connection goes to an address that was checked.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult

from schemas.targets import TargetPolicy, TargetRefused


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then drops every address the policy refuses."""

    def __init__(self, policy: TargetPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed, reasons = [], []
        for result in results:
            reason = self._policy.refusal(ipaddress.ip_address(result["host"]))
            if reason:
                reasons.append(reason)
            else:
                allowed.append(result)
        if not allowed:
            raise TargetRefused(f"{host}: {reasons[0] if reasons else 'no address'}")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()
