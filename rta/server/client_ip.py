"""The client's IP address: the connection's peer, or `X-Forwarded-For` behind a trusted proxy.

Anyone can send `X-Forwarded-For`, so it is believed only when the connection comes from an
address in the setting `trusted_proxies` (CIDRs, e.g. "127.0.0.1/32, 10.0.0.0/8"). The
header is then read from the right (the entry the nearest proxy appended) and the first
address that is not itself a trusted proxy is the client: a client cannot push a forged
address past the proxy by putting its own value first. The address is used for the geo
lookup only and never stored (`core/enrich.py`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from rta.core.geoip import parse_ip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str | Iterable[str] | None) -> tuple[Network, ...]:
    """CIDRs (or single addresses) from a comma-separated setting; a bad entry is a
    ValueError naming it, so a mistyped setting fails at start rather than trusting
    nobody (or everybody) quietly."""
    if spec is None:
        return ()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Network] = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {text!r} is not an IP address or CIDR"
                             ) from None
    return tuple(out)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    ip = parse_ip(address)
    return ip is not None and any(ip in net for net in networks)


def client_ip(peer: str | None, forwarded_for: str | None,
              trusted: tuple[Network, ...]) -> str | None:
    """The client's address as text (None when unknown)."""
    if not peer:
        return None
    if not forwarded_for or not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if parse_ip(hop) is None:
            return None  # a garbled chain: no address rather than a wrong one
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer
