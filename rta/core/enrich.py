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

    def derived(self, ua: Any, ip: Any) -> dict[str, Any]:
        """The device and geo properties of one (User-Agent, IP) pair, as one new dict
        (None for either: nothing of that kind)."""
        agents, geo = self.agents, self.geo
        device = agents._cache.get(ua) if ua.__class__ is str else None
        if device is None:
            device = agents.derive(ua)
        place = geo._cache.get(ip) if ip.__class__ is str else None
        if place is None:
            place = geo.derive(ip)
        return {**device, **place}

    def apply(self, events: list[dict[str, Any]], client: Client) -> None:
        """Enrich `events`: each event's `properties` is replaced by a new dict (the sent
        ones, then the derived ones), so pass events of your own (the routes' freshly
        decoded ones); the sent dicts and a `context` object are never changed.

        Written for speed (it runs for every event of the browser-side routes). A batch is
        mostly one visitor's events, so the derived properties of the last User-Agent and
        IP are kept for the next event. The common cases (posthog-js from a browser, a
        server-side SDK's `$ip`; none of the rarer keys) cost per event two lookups, three
        membership tests, one or two comparisons and one C-level merge that adds every
        derived property at once; the lengths say whether the client had sent any of them
        (then theirs are put back).
        """
        default_ua = client.user_agent if client.browser else None
        default_ip = client.ip if client.browser else None
        last_ua: Any = _UNSET  # the last event's User-Agent and IP, as sent
        last_ip: Any = _UNSET
        derived: dict[str, Any] = _EMPTY
        count = 0
        for event in events:
            try:
                props = event["properties"]
                ua: Any = props.get("$raw_user_agent")
            except (KeyError, TypeError, AttributeError):  # (not an event; no properties,
                self._unusual(event, default_ua, default_ip)  # or not an object)
                continue
            if "context" in props or "$geoip_disable" in props or (
                    not ua and ("$user_agent" in props or "$useragent" in props)):
                self._rare(event, props, ua, default_ua, default_ip)
                last_ua = _UNSET
                continue
            if "$ip" not in props:  # (posthog-js from a browser)
                if ua != last_ua or last_ip is not _UNSET:
                    derived = self.derived(ua if ua.__class__ is str and ua else default_ua,
                                           default_ip)  # (a number or object: not a UA)
                    count = len(derived)
                    last_ua, last_ip = ua, _UNSET
                if count:
                    merged = {**props, **derived}
                    if len(merged) != len(props) + count:  # the client sent some: theirs
                        _put_back(merged, props, derived)  # stay
                    event["properties"] = merged
                continue
            ip = props["$ip"]  # (a server-side SDK's: the user's address, then dropped)
            if ua != last_ua or ip != last_ip:
                derived = self.derived(ua if ua.__class__ is str and ua else default_ua,
                                       ip if ip.__class__ is str and ip else default_ip)
                count = len(derived)
                last_ua, last_ip = ua, ip
            merged = {**props, **derived}
            del merged["$ip"]
            if len(merged) != len(props) - 1 + count:
                _put_back(merged, props, derived)
            event["properties"] = merged

    def _rare(self, event: dict[str, Any], props: dict[str, Any], ua: Any,
              default_ua: str | None, default_ip: str | None) -> None:
        """An event with one of the rare keys (Segment's `context`, `$geoip_disable`, or
        `$user_agent`/`$useragent` instead of `$raw_user_agent`): the User-Agent and IP may
        come from elsewhere."""
        props = dict(props)
        ua, ip = _carried(props, ua)
        if ip is _NO_IP:
            ip = None
        elif ip.__class__ is not str or not ip:
            ip = default_ip
        derived = self.derived(ua if ua.__class__ is str and ua else default_ua, ip)
        for key in derived.keys() - props.keys():
            props[key] = derived[key]
        event["properties"] = props

    def _unusual(self, event: Any, default_ua: str | None, default_ip: str | None) -> None:
        """An event without properties gets the request's derived ones; anything else
        (not an object, properties not an object) is left to the validator."""
        if event.__class__ is dict and event.get("properties") is None:
            bare = self.derived(default_ua, default_ip)
            if bare:
                event["properties"] = bare


_EMPTY: dict[str, Any] = {}
_NO_IP = object()  # `$geoip_disable: true`: no lookup, not even of the request's address
_UNSET = object()


def _put_back(merged: dict[str, Any], sent: dict[str, Any], derived: dict[str, Any]
              ) -> None:
    """The values the client sent for derived keys win over the derived ones."""
    for key in derived:
        if key in sent:
            merged[key] = sent[key]


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
