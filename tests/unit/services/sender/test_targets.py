"""The sender's resolver drops every address the target policy refuses from each DNS answer."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from schemas.targets import TargetPolicy, TargetRefused, parse_networks
from services.sender.targets import GuardedResolver


class FakeResolver(AbstractResolver):
    """Answers every name with fixed addresses."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_guarded_resolver_drops_refused_addresses() -> None:
    """A name resolving to public and private addresses keeps only the public ones."""
    inner = FakeResolver("10.0.0.1", "93.184.215.14", "127.0.0.1", "2606:2800:21f::1")
    resolver = GuardedResolver(TargetPolicy(), inner)
    results = await resolver.resolve("example.com", 443)
    assert [result["host"] for result in results] == ["93.184.215.14", "2606:2800:21f::1"]
    assert all(result["port"] == 443 for result in results)


async def test_guarded_resolver_refuses_a_name_with_no_allowed_address() -> None:
    """A name that resolves only to refused addresses (DNS rebinding) raises TargetRefused."""
    resolver = GuardedResolver(TargetPolicy(), FakeResolver("169.254.169.254", "127.0.0.1"))
    with pytest.raises(TargetRefused, match=r"^rebind\.example: 169\.254\.169\.254 is not a pub"):
        await resolver.resolve("rebind.example", 80)


async def test_guarded_resolver_refuses_a_name_with_no_address() -> None:
    """A name that resolves to nothing raises TargetRefused too."""
    resolver = GuardedResolver(TargetPolicy(), FakeResolver())
    with pytest.raises(TargetRefused, match="no address"):
        await resolver.resolve("empty.example", 80)


async def test_guarded_resolver_honours_allowed_networks() -> None:
    """Addresses in the allowed networks pass the resolver."""
    resolver = GuardedResolver(
        TargetPolicy(parse_networks("127.0.0.0/8")), FakeResolver("127.0.0.1")
    )
    assert [result["host"] for result in await resolver.resolve("localhost")] == ["127.0.0.1"]


async def test_guarded_resolver_closes_its_inner_resolver() -> None:
    """Closing the guard closes the resolver it wraps."""
    inner = FakeResolver()
    await GuardedResolver(TargetPolicy(), inner).close()
    assert inner.closed
