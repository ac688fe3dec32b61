"""Which addresses webhooks may reach: the SSRF guard on URLs and on resolved names."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from services.sender.targets import (
    GuardedResolver,
    TargetPolicy,
    TargetRefused,
    ip_literal,
    parse_networks,
)


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860::8888", "1.1.1.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    """Public IPv4 and IPv6 addresses may be reached."""
    assert TargetPolicy().refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
        "224.0.0.1",
        "ff0e::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "::127.0.0.1",
        "::",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
        "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    """Loopback, private, link-local, shared, unspecified, multicast, wrapped IPv4: refused."""
    reason = TargetPolicy().refusal(ipaddress.ip_address(address))
    assert reason == f"{ipaddress.ip_address(address)} is not a public address"


def test_the_local_use_nat64_prefix_is_refused() -> None:
    """64:ff9b:1::/48 (RFC 8215, not globally reachable) wraps the metadata address too."""
    reason = TargetPolicy().refusal(ipaddress.ip_address("64:ff9b:1::a9fe:a9fe"))
    assert reason is not None


def test_allowed_networks_let_private_addresses_through() -> None:
    """An operator's allowed CIDRs are reachable although not public; others stay refused."""
    policy = TargetPolicy(parse_networks("127.0.0.0/8, ::1/128"))
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) is not None


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.0.0.1"])
def test_ip_literal_reads_the_short_ipv4_forms(host: str) -> None:
    """Short, decimal, hex and octal IPv4 forms are read as the address they mean."""
    assert ip_literal(host) == ipaddress.IPv4Address("127.0.0.1")


def test_ip_literal_reads_bracketed_ipv6() -> None:
    """A bracketed IPv6 host is an IP literal."""
    assert ip_literal("[::1]") == ipaddress.IPv6Address("::1")


@pytest.mark.parametrize("host", ["example.com", "localhost", ""])
def test_ip_literal_of_a_name_is_none(host: str) -> None:
    """A host name is not an IP literal."""
    assert ip_literal(host) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1/",
        "http://2130706433/hook",
        "http://0x7f.1:8080/",
        "http://[::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_check_url_refuses_ip_literals_that_are_not_public(url: str) -> None:
    """A URL whose host is a non-public IP literal is refused before any connection."""
    with pytest.raises(TargetRefused, match="is not a public address"):
        TargetPolicy().check_url(url)


@pytest.mark.parametrize("url", ["https://8.8.8.8/", "https://example.com/", "http://localhost/"])
def test_check_url_passes_public_literals_and_names(url: str) -> None:
    """Public IP literals and names pass check_url (names are checked by the resolver)."""
    TargetPolicy().check_url(url)


def test_parse_networks() -> None:
    """A comma separated CIDR list is read; blanks are skipped; host bits are tolerated."""
    assert parse_networks(" 127.0.0.0/8 , ::1/128,, 10.1.2.3/8") == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    assert parse_networks("") == ()


@pytest.mark.parametrize("text", ["10.0.0.0/33", "not-a-cidr", "127.0.0.0/8,300.0.0.1"])
def test_parse_networks_rejects_a_bad_cidr(text: str) -> None:
    """A bad CIDR is a ValueError."""
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        parse_networks(text)


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
