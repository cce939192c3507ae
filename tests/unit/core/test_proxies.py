"""The client address behind load balancers: only trusted hops' headers are believed."""

from __future__ import annotations

import pytest

from core.proxies import ClientAddresses

LB = ClientAddresses(["10.0.0.0/8", "127.0.0.1/32"])


def test_no_trusted_proxies_ignores_every_header() -> None:
    resolver = ClientAddresses()
    assert resolver.resolve("127.0.0.1", "6.6.6.6", "for=6.6.6.6") == "127.0.0.1"


def test_untrusted_peer_headers_are_ignored() -> None:
    # A client talking to a server directly cannot choose its address.
    assert LB.resolve("203.0.113.9", "6.6.6.6", None) == "203.0.113.9"
    assert LB.resolve("203.0.113.9", None, "for=6.6.6.6") == "203.0.113.9"


def test_right_most_untrusted_hop_is_the_client() -> None:
    # The client forged "6.6.6.6"; our balancer appended the address it saw, 198.51.100.7;
    # an inner proxy of ours appended 10.1.2.3.
    assert LB.resolve("10.9.9.9", "6.6.6.6, 198.51.100.7, 10.1.2.3", None) == "198.51.100.7"
    assert LB.resolve("127.0.0.1", "198.51.100.7", None) == "198.51.100.7"


def test_several_header_lines_and_ports_and_ipv6() -> None:
    assert LB.resolve("10.0.0.1", "6.6.6.6,198.51.100.7:5555", None) == "198.51.100.7"
    assert LB.resolve("10.0.0.1", "[2001:db8::1]:443", None) == "2001:db8::1"
    assert LB.resolve("10.0.0.1", "2001:db8::2", None) == "2001:db8::2"


def test_forwarded_header_rfc7239() -> None:
    header = 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https, for=10.0.0.2;by=10.0.0.3'
    assert LB.resolve("10.0.0.1", None, header) == "2001:db8::7"
    # X-Forwarded-For wins when both are present (one proxy, one header; see the docs).
    assert LB.resolve("10.0.0.1", "198.51.100.7", header) == "198.51.100.7"


@pytest.mark.parametrize(
    ("xff", "forwarded"),
    [
        ("not-an-address", None),
        ("198.51.100.7, ", None),
        (None, "for=unknown"),
        (None, "proto=https"),
        (None, "garbage"),
        ("1.2.3.4.5", None),
    ],
)
def test_malformed_header_gives_the_peer(xff: str | None, forwarded: str | None) -> None:
    assert LB.resolve("10.0.0.1", xff, forwarded) == "10.0.0.1"


def test_garbage_written_by_the_client_left_of_its_address_is_not_read() -> None:
    assert LB.resolve("10.0.0.1", "garbage, 198.51.100.7", None) == "198.51.100.7"


def test_all_hops_trusted_gives_the_left_most() -> None:
    assert LB.resolve("127.0.0.1", "10.0.0.5, 10.0.0.6", None) == "10.0.0.5"


def test_rejects_a_bad_network() -> None:
    with pytest.raises(ValueError, match="nope"):
        ClientAddresses(["nope"])
