"""Where webhooks may send: one reading of a target URL and one address policy, used when a webhook
is created or changed (the router's API) and at every connection (the sender).

A URL is read with yarl, the parser the sender's HTTP client connects with, so the API accepts
nothing the sender would read differently: no backslash, control character, user information or
percent-encoded host, a real port, and a host that is a domain name or an IP address in any of
the spellings the C library accepts (`127.1`, `0x7f000001`, `2130706433`, `[::ffff:127.0.0.1]`).

An address may be reached when it is public, after unwrapping the IPv4 address an IPv6 one
carries (mapped, NAT64, 6to4, Teredo, compatible), or inside a network the operator allowed
(`HOOKLINE_ALLOWED_TARGETS`). A name is checked on every DNS answer, where the connection is made.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

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
SCHEMES = ("http", "https")
MAX_HOST_LENGTH = 253
# One label of a domain name: letters, digits, hyphens (not at either end); underscores are kept
# for the names that carry them in practice.
LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# Names that always mean this machine (RFC 6761).
LOCALHOST = ipaddress.IPv4Address("127.0.0.1")


class TargetRefused(OSError):
    """The target is, or resolves to, an address webhooks may not reach (an OSError, so that the
    HTTP client reports it as a connection that could not be made)."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`127.0.0.0/8, ::1/128` → networks; ValueError names the one that is wrong."""
    networks = []
    for part in (piece.strip() for piece in text.split(",")):
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    return tuple(networks)


def parse_target(uri: str) -> URL:
    """The URL a webhook's `uri` is sent to; ValueError says what is wrong with it."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise ValueError("must not contain white space or control characters")
    if "\\" in uri:
        raise ValueError("must not contain a backslash")
    try:
        url = URL(uri)
        port = url.explicit_port
    except (ValueError, TypeError) as error:
        raise ValueError(f"is not a URL: {error}") from None
    if url.scheme not in SCHEMES or not url.absolute or not url.raw_host:
        raise ValueError("must be an absolute http or https URL")
    if "@" in _authority(uri):
        raise ValueError("must not carry user information; put credentials in the secret instead")
    if port == 0:
        raise ValueError("port 0 cannot be connected to")
    _check_host(url.raw_host)
    return url


def _authority(uri: str) -> str:
    """The text between `scheme://` and the path, query or fragment, as written."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _check_host(host: str) -> None:
    if "%" in host:
        raise ValueError("the host must not be percent-encoded or carry an IPv6 zone")
    if ip_literal(host) is not None:
        return
    name = host.removesuffix(".")
    if len(name) > MAX_HOST_LENGTH:
        raise ValueError(f"the host is longer than {MAX_HOST_LENGTH} characters")
    labels = name.split(".")
    if not all(LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"host {host!r} is neither an IP address nor a valid domain name")


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


def is_localhost(host: str) -> bool:
    name = host.removesuffix(".").lower()
    return name == "localhost" or name.endswith(".localhost")


# Allowed targets a policy remembers (see TargetPolicy.check).
ALLOWED_URLS_KEPT = 10_000


class TargetPolicy:
    """Which targets webhooks may have: public addresses, and the networks `allowed`; only https
    ones when `https_only`."""

    def __init__(self, allowed: Iterable[IPNetwork] = (), *, https_only: bool = False) -> None:
        self._allowed = tuple(allowed)
        self._https_only = https_only
        # Targets checked and allowed, by uri: a sender checks its webhooks' few uris at every
        # attempt, and parsing one cost about 3% of its time. The answer depends only on the uri
        # and this policy, which never changes; refused ones are checked again each time.
        self._allowed_urls: dict[str, URL] = {}

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be reached, or None when it may."""
        inner = embedded_ipv4(address)
        if any(address in net or inner in net for net in self._allowed):
            return None
        if not inner.is_global or inner.is_multicast:
            return f"{address} is not a public address"
        return None

    def url_refusal(self, url: URL) -> str | None:
        """Why a parsed target may not be used, as far as the URL tells (its scheme, and its host
        when that is an IP address or a name of this machine), or None."""
        if self._https_only and url.scheme != "https":
            return "only https targets are allowed here"
        host = url.raw_host or ""
        address = LOCALHOST if is_localhost(host) else ip_literal(host)
        if address is None:
            return None  # a name: checked on every DNS answer, where the connection is made
        reason = self.refusal(address)
        return f"{host}: {reason}" if reason and address is LOCALHOST else reason

    def check(self, uri: str) -> URL:
        """The URL to connect to; ValueError when it is no valid target, TargetRefused when the
        policy refuses it."""
        url = self._allowed_urls.get(uri)
        if url is not None:
            return url
        url = parse_target(uri)
        reason = self.url_refusal(url)
        if reason:
            raise TargetRefused(reason)
        if len(self._allowed_urls) >= ALLOWED_URLS_KEPT:
            self._allowed_urls.clear()  # rare: more webhook uris than this in one sender
        self._allowed_urls[uri] = url
        return url
