"""Who the client is behind load balancers: ``X-Forwarded-For`` / ``Forwarded`` from trusted hops only.

A forwarded header is a list of addresses that anybody may start: the client can send
``X-Forwarded-For: 1.2.3.4`` and every proxy on the way appends what it saw. Only the part
written by our own proxies can be believed, so the walk starts at the right: the TCP peer
first, then the header's entries from right to left, skipping every hop that is one of our
proxies (``ONECITY_TRUSTED_PROXIES``). The first address that is *not* ours is the client:
anything to its left was written by the client and is ignored. With no trusted proxies
(the default) the header is never read, so a client cannot pick its own address.

A malformed header from a trusted peer (a value that is not an address) gives the peer's
address: the request is then limited with everything else that proxy sends, which is the
safe side (a client cannot escape its limits by breaking the header).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["ClientAddresses", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings (``10.0.0.0/8``, ``::1/128``, a bare address) as networks.

    Raises:
        ValueError: one is not a network.
    """
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def _address(value: str) -> Address | None:
    """One hop as written by a proxy: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:5678`` (quotes already removed); ``None`` when it is none of these."""
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(value: str) -> list[str] | None:
    """The ``for=`` values of an RFC 7239 ``Forwarded`` header, in order; ``None`` if malformed."""
    hops: list[str] = []
    for element in value.split(","):
        found = None
        for pair in element.split(";"):
            name, sep, raw = pair.strip().partition("=")
            if not sep:
                if pair.strip():
                    return None
                continue
            if name.strip().lower() == "for":
                found = raw.strip().strip('"')
        if found is None:
            return None
        hops.append(found)
    return hops


class ClientAddresses:
    """Resolves the client address of a request from its peer and forwarded headers.

    Args:
        trusted: The networks of our own proxies (``ONECITY_TRUSTED_PROXIES``).
    """

    __slots__ = ("_trusted",)

    def __init__(self, trusted: Sequence[str] = ()) -> None:
        self._trusted = parse_networks(trusted)

    def _is_trusted(self, address: Address) -> bool:
        return any(address.version == net.version and address in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None, forwarded: str | None) -> str | None:
        """The client's address.

        Args:
            peer: The TCP peer (the ASGI ``client`` host).
            forwarded_for: ``X-Forwarded-For`` (several header lines joined by ``,``).
            forwarded: ``Forwarded`` (RFC 7239), read only when there is no
                ``X-Forwarded-For`` (a proxy that writes ``Forwarded`` should drop an
                incoming ``X-Forwarded-For``; see docs/operations.md).

        Returns:
            The right-most address that is not a trusted proxy; the peer when the peer is not
            trusted, when there is no header, or when the header is malformed.
        """
        if peer is None or not self._trusted:
            return peer
        peer_address = _address(peer)
        if peer_address is None or not self._is_trusted(peer_address):
            return peer
        hops: list[str] | None
        if forwarded_for is not None and forwarded_for.strip():
            hops = [h.strip().strip('"') for h in forwarded_for.split(",")]
        elif forwarded is not None and forwarded.strip():
            hops = _forwarded_for(forwarded)
        else:
            return peer
        if not hops:
            return peer
        address: Address | None = None
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # Malformed (or "unknown" / obfuscated) where our own proxies wrote: the safe
                # side. What the client wrote left of its own address is never looked at.
                return peer
            if not self._is_trusted(address):
                return str(address)
        # Every hop is one of ours (a health check from inside): the left-most is the origin.
        return str(address)
