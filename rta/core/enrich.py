"""Devices and countries derived at ingest, on raw event dicts before validation.

Browser-side routes (the PostHog and Segment routes, the first-party script's) call
`Enricher.apply(events, client)`. For each event:

- the User-Agent is the one the event carries (`$raw_user_agent`, `$user_agent`,
  `$useragent`, Segment's `context.userAgent`: server-side SDKs forward their user's), else
  the request's own header when the request came from a browser (`Client.browser`);
- the IP is the one the event carries (`$ip`, Segment's `context.ip`), else the request's
  client address when it came from a browser. A server-side SDK's own header and address
  describe the server, not the user, so they are not used (its events then get only what
  they carry). `$geoip_disable: true` (PostHog's flag) turns the IP lookup off;
- the derived properties (`user_agents.py`, `geoip.py`) are added where the event has no
  value of its own: what a client sent is never overwritten;
- `$ip` and `context.ip` are removed: an IP address is used for the lookup and never stored.

Bad input (an unparseable User-Agent, an IP that is not an IP) derives nothing; it never
rejects an event.

Thread rule: as `user_agents.UserAgents`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rta.core.geoip import GeoIp
from rta.core.user_agents import UserAgents


@dataclass(frozen=True)
class Client:
    """What the request itself says about its sender."""

    user_agent: str | None = None
    ip: str | None = None
    # True when the sender is a browser (its header and address are the visitor's).
    browser: bool = False


def is_browser_agent(user_agent: str | None) -> bool:
    """Browsers (and crawlers posing as them) say "Mozilla/..." or "Opera/..."; SDKs on
    servers name themselves ("posthog-python/3.1", "analytics-node/...")."""
    return user_agent is not None and user_agent.startswith(("Mozilla/", "Opera/"))


class Enricher:
    """Adds the derived device and geo properties to raw events (see the module docstring)."""

    def __init__(self, geoip_database: str | None = None) -> None:
        self.agents = UserAgents()
        self.geo = GeoIp(geoip_database)

    def apply(self, events: list[dict[str, Any]], client: Client) -> None:
        """Enrich `events` in place: their `properties` dicts are changed, so pass events
        of your own (the routes' freshly decoded ones); a `context` object is replaced,
        never changed.

        Written for speed (it runs for every event of the browser-side routes): the common
        case is two cache hits and two C-level dict updates, nothing allocated."""
        default_ua = client.user_agent if client.browser else None
        default_ip = client.ip if client.browser else None
        agents, geo = self.agents, self.geo
        ua_cache, ip_cache = agents._cache, geo._cache
        for event in events:
            if event.__class__ is not dict:
                continue
            props = event.get("properties")
            if props is None:
                props = _EMPTY
            elif props.__class__ is not dict:
                continue  # the validator reports it
            ua: Any = props.get("$raw_user_agent")
            ip: Any = None
            if not props.keys().isdisjoint(_RARE):  # (one C-level test for the rare keys)
                ua, ip = _carried(props, ua)
            if ua.__class__ is not str or not ua:
                ua = default_ua  # (and a number or object sent as a User-Agent is ignored)
            if ip is _NO_IP:
                ip = None
            elif ip.__class__ is not str or not ip:
                ip = default_ip
            device = ua_cache.get(ua) if ua is not None else None
            if device is None:
                device = agents.derive(ua)
            place = ip_cache.get(ip) if ip is not None else None
            if place is None:
                place = geo.derive(ip)
            if props is _EMPTY:
                if device or place:
                    event["properties"] = {**device, **place}
                continue
            for derived in (device, place):
                if not derived:
                    continue
                if props.keys().isdisjoint(derived):
                    props.update(derived)
                else:  # the client sent some of them: those stay
                    for k in derived.keys() - props.keys():
                        props[k] = derived[k]


_EMPTY: dict[str, Any] = {}
_RARE = frozenset(("$user_agent", "$useragent", "$ip", "context", "$geoip_disable"))
_NO_IP = object()  # `$geoip_disable: true`: no lookup, not even of the request's address


def _carried(props: dict[str, Any], ua: Any) -> tuple[Any, Any]:
    """The User-Agent and IP an event carries beyond `$raw_user_agent` (`ua`); drops
    Segment's `context.ip` (a new context object; the caller's is not changed)."""
    ua = ua or props.get("$user_agent") or props.get("$useragent")
    ip = props.pop("$ip", None)
    context = props.get("context")
    if context.__class__ is dict:
        ua = ua or context.get("userAgent")
        if "ip" in context:
            ip = ip or context["ip"]
            props["context"] = {k: v for k, v in context.items() if k != "ip"}
    if props.get("$geoip_disable") is True:
        ip = _NO_IP
    return ua, ip
