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

UA_PROPERTIES = ("$raw_user_agent", "$user_agent", "$useragent")


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
        """Enrich `events` in place (each event's `properties` is replaced, not mutated)."""
        default_ua = client.user_agent if client.browser else None
        default_ip = client.ip if client.browser else None
        agents, geo = self.agents, self.geo
        for event in events:
            if not isinstance(event, dict):
                continue
            original = props = event.get("properties")
            if props is None:
                props = {}
            elif not isinstance(props, dict):
                continue  # the validator reports it
            ua: Any = None
            ip: Any = None
            for key in UA_PROPERTIES:
                ua = props.get(key)
                if ua:
                    break
            context = props.get("context")
            if isinstance(context, dict):
                ua = ua or context.get("userAgent")
                if "ip" in context:
                    ip = context["ip"]
                    props = {**props, "context": {k: v for k, v in context.items()
                                                  if k != "ip"}}
            if "$ip" in props:
                ip = ip or props["$ip"]
                props = {k: v for k, v in props.items() if k != "$ip"}
            derived = agents.derive(ua or default_ua)
            if props.get("$geoip_disable") is not True:
                place = geo.derive(ip or default_ip)
                if place:
                    derived = {**derived, **place}
            if derived:
                event["properties"] = {**derived, **props}
            elif props is not original and original is not None:
                event["properties"] = props
