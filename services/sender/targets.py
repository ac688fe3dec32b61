"""Which addresses a webhook may reach: public ones, plus the CIDRs an operator allowed.

Checked where the connection is made (a resolver that filters what DNS returns, so a rebinding
name cannot slip through) and, because aiohttp never asks the resolver about a host that looks like
an IP literal (`http://127.1/`), once more on the URL itself.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address in their last 32 bits, which Python's `is_global` does not
# look into: NAT64 (well-known and local-use, RFC 6052 / RFC 8215), IPv4-translated (RFC 2765)
# and the deprecated IPv4-compatible form.
LAST_32_BITS_IPV4 = tuple(
    ipaddress.IPv6Network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")
)


class TargetRefused(OSError):
    """The target resolves to an address webhooks may not reach."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`127.0.0.0/8, ::1/128` → networks; ValueError names the one that is wrong."""
    networks = []
    for part in (piece.strip() for piece in text.split(",")):
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    return tuple(networks)


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo…), else itself."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address, which a packet would reach
    if int(address) > 1 and any(address in net for net in LAST_32_BITS_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


class TargetPolicy:
    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self._allowed = tuple(allowed)

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be reached, or None when it may."""
        inner = embedded_ipv4(address)
        if any(address in net or inner in net for net in self._allowed):
            return None
        if not inner.is_global or inner.is_multicast:
            return f"{address} is not a public address"
        return None

    def check_url(self, url: str) -> None:
        """Raise TargetRefused when the URL's host is an IP literal that may not be reached."""
        host = URL(url).host or ""
        address = ip_literal(host)
        if address is not None:
            reason = self.refusal(address)
            if reason:
                raise TargetRefused(reason)


def ip_literal(host: str) -> IPAddress | None:
    """The address of a host written as an IP, including the short forms (`127.1`, `2130706433`)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


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
