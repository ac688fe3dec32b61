"""Where webhooks may send: the reading of a target URL, and which addresses the policy refuses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from schemas import targets
from schemas.targets import TargetPolicy, TargetRefused, ip_literal, parse_networks, parse_target


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
        "http://0x7f000002/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.2]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/",
        "http://127.0.0.2/",
    ],
)
def test_ip_literals_that_are_not_public_are_refused(url: str) -> None:
    """A URL whose host is a non-public IP literal, in any spelling, is refused before any
    connection."""
    with pytest.raises(TargetRefused, match="is not a public address"):
        TargetPolicy().check(url)


@pytest.mark.parametrize(
    "url", ["http://localhost/", "http://LOCALHOST.:8080/", "http://a.localhost/"]
)
def test_names_of_this_machine_are_refused_as_its_loopback_address(url: str) -> None:
    with pytest.raises(TargetRefused, match=r"localhost.*: 127\.0\.0\.1 is not a public address"):
        TargetPolicy().check(url)
    TargetPolicy(parse_networks("127.0.0.0/8")).check(url)


@pytest.mark.parametrize(
    "url", ["https://8.8.8.8/", "https://example.com/", "http://[2001:4860::8888]/"]
)
def test_public_literals_and_names_pass(url: str) -> None:
    """Public IP literals and names pass (names are checked on each DNS answer, at connect)."""
    assert TargetPolicy().check(url) == URL(url)


def test_allowed_networks_let_private_literals_through() -> None:
    policy = TargetPolicy(parse_networks("127.0.0.0/8"))
    assert policy.check("http://127.0.0.1:9000/hook").port == 9000
    with pytest.raises(TargetRefused):
        policy.check("http://10.0.0.1/")


def test_a_checked_target_is_remembered_and_a_refused_one_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An allowed uri is parsed once however often it is checked; a refused one is refused every
    time; past the bound the memory starts over."""
    parsed: list[str] = []

    def counting(uri: str) -> URL:
        parsed.append(uri)
        return parse_target(uri)

    monkeypatch.setattr(targets, "parse_target", counting)
    monkeypatch.setattr(targets, "ALLOWED_URLS_KEPT", 2)
    policy = TargetPolicy(parse_networks("127.0.0.0/8"))
    for _ in range(3):
        assert policy.check("http://127.0.0.1:9000/hook").port == 9000
        with pytest.raises(TargetRefused):
            policy.check("http://10.0.0.1/")
    assert parsed == ["http://127.0.0.1:9000/hook"] + ["http://10.0.0.1/"] * 3
    policy.check("http://127.0.0.2/")
    policy.check("http://127.0.0.3/")  # the bound: what was kept is dropped
    policy.check("http://127.0.0.1:9000/hook")
    assert parsed[-3:] == ["http://127.0.0.2/", "http://127.0.0.3/", "http://127.0.0.1:9000/hook"]


def test_https_only_refuses_plain_http() -> None:
    policy = TargetPolicy(https_only=True)
    assert policy.check("https://example.com/").scheme == "https"
    with pytest.raises(TargetRefused, match="only https"):
        policy.check("http://example.com/")


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://127.0.0.1:18005\\@127.0.0.2:18009/", "backslash"),
        ("http://example.com\\@evil.com/", "backslash"),
        ("http://user:pw@example.com/", "user information"),
        ("http://@example.com/", "user information"),
        ("http://%31%32%37.0.0.2/", "percent-encoded"),
        ("http://[fe80::1%25eth0]/", "IPv6 zone"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com:99999/", "not a URL"),
        ("http://example.com:80x/", "not a URL"),
        ("http://example.com/a\x00b", "control characters"),
        ("http://example.com/a b", "white space"),
        ("http://example.com/\t", "white space"),
        (" http://example.com/", "white space"),
        ("ftp://example.com/", "absolute http or https"),
        ("http:///path", "absolute http or https"),
        ("//example.com/", "absolute http or https"),
        ("example.com/hook", "absolute http or https"),
        ("http://a..b/", "valid domain name"),
        ("http://-a.com/", "valid domain name"),
        ("http://1.2.3.4.5/", "valid domain name"),
        ("http://exa$mple.com/", "valid domain name"),
        ("http://" + "a" * 64 + ".com/", "valid domain name"),
        ("http://" + "a." * 127 + "com/", "longer than 253"),
    ],
)
def test_a_target_the_sender_could_not_reach_as_written_is_invalid(uri: str, reason: str) -> None:
    """What yarl (the sender's parser) would refuse or read differently is refused here, with
    the reason."""
    with pytest.raises(ValueError, match=reason):
        parse_target(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/hook?x=1#frag",
        "http://example.com:8080/",
        "https://bücher.de/hook",
        "https://xn--bcher-kva.de/",
        "http://a_b.example.com/",
        "http://example.com./",
        "http://10.1.2.3/",  # well-formed: the policy, not the reading, refuses it
        "http://[::1]:9000/",
        "HTTPS://EXAMPLE.COM/",
    ],
)
def test_well_formed_targets_are_read(uri: str) -> None:
    assert parse_target(uri) == URL(uri)


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


def spellings(address: ipaddress.IPv4Address) -> list[str]:
    """Hosts that the C library, yarl or an IPv6 stack read as `address` (or as an IPv6 address
    that carries it)."""
    value = int(address)
    octets = list(address.packed)
    return [
        str(address),
        str(value),  # 2130706433
        hex(value),  # 0x7f000001
        ".".join(f"0{octet:o}" for octet in octets),  # 0177.00.00.01
        f"{octets[0]}.{octets[1]}.{value & 0xFFFF}",  # 127.0.1
        f"{octets[0]}.{value & 0xFFFFFF}",  # 127.1
        f"[::ffff:{address}]",
        f"[64:ff9b::{address}]",
        f"[2002:{value >> 16:x}:{value & 0xFFFF:x}::1]",  # 6to4
    ]


@given(st.ip_addresses(v=4))
def test_every_spelling_of_an_address_gets_the_addresss_verdict(
    address: ipaddress.IPv4Address,
) -> None:
    """Whatever spelling a URL uses, the policy refuses exactly the addresses it refuses."""
    policy = TargetPolicy()
    refused = policy.refusal(address) is not None
    for host in spellings(address):
        try:
            policy.check(f"http://{host}:8080/hook")
        except TargetRefused:
            assert refused, host
        else:
            assert not refused, host


@given(st.ip_addresses(v=4), st.integers(8, 32))
def test_an_allowed_network_lets_in_its_addresses_in_every_spelling(
    address: ipaddress.IPv4Address, prefix: int
) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    policy = TargetPolicy([network])
    for host in spellings(address):
        policy.check(f"http://{host}/")


HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
    st.from_regex(r"\A[a-zA-Z0-9_-]{1,12}(\.[a-zA-Z0-9_-]{1,12}){0,3}\.?\Z"),
    st.text(alphabet="abc019.%@:[]\\-_ ", max_size=12),
)
URLISH = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:", "//", ""]),
    st.sampled_from(["", "", "", "u@", "u:p@", "@"]),
    HOSTS,
    st.one_of(st.just(""), st.integers(-1, 70_000).map(lambda port: f":{port}")),
    st.one_of(st.just("/"), st.text(max_size=12).map(lambda path: "/" + path)),
)


@given(st.one_of(URLISH, st.text(max_size=60)))
def test_any_text_is_read_as_yarl_reads_it_or_refused_with_a_reason(uri: str) -> None:
    """The reading never fails otherwise than with a ValueError; what it accepts is the URL the
    sender's client connects to, with a host that is an address or a valid name, and a port."""
    try:
        url = parse_target(uri)
    except ValueError:
        return
    assert url == URL(uri)
    assert url.scheme in ("http", "https")
    assert url.raw_host
    assert url.port is not None
    assert 0 < url.port < 65536
    assert "@" not in uri.split("://", 1)[1].split("/", 1)[0]
