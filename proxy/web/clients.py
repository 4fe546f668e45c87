"""Which client a request comes from, for limits kept per client (connect sign-ins).

Behind a reverse proxy every request arrives from the proxy's own address: only hops listed in
``[server] trusted_proxies`` may say, in X-Forwarded-For, whom they forward for; anyone else's
header is ignored, so a client cannot pick its own address. IPv6 clients are counted per /64,
the block one subscriber usually holds, so one host cannot become many.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cache

from aiohttp import web

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """The networks of ``[server] trusted_proxies`` (checked by the config loader), parsed once."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def client_of(request: web.BaseRequest, trusted: Sequence[IPNetwork]) -> str:
    """The address a per-client limit counts ``request`` under."""
    peer = _address(request.remote)
    if peer is None:
        return request.remote or ""
    if trusted and _trusted(peer, trusted):
        # The nearest hop the trusted proxies do not vouch for is the client.
        hops = [
            h for value in request.headers.getall("X-Forwarded-For", ()) for h in value.split(",")
        ]
        for hop in reversed(hops):
            address = _address(hop.strip())
            if address is None:
                break
            peer = address
            if not _trusted(address, trusted):
                break
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((peer, 64), strict=False))
    return str(peer.ipv4_mapped if isinstance(peer, ipaddress.IPv6Address) else peer)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[IPNetwork]
) -> bool:
    return any(address in network for network in trusted)
