"""`Enricher.apply` (columnar and memoised for speed) against a naive reference: the rules
of `rta/core/enrich.py` written out one event at a time, with no caches or shortcuts. Also
the fast bot test against its regex and the IPv4 parser against `ipaddress`."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.enrich import Client, Enricher
from rta.core.geoip import GeoIp, ipv4_int
from rta.core.user_agents import BOT_PATTERN, BOT_WORDS, UserAgents, is_bot

from .test_enrich import USER_AGENTS

AGENTS = [row[0] for row in USER_AGENTS[:6]] + [
    "", "  ", "☃ garbage", "Mozilla/5.0", "curl/8.5.0", "posthog-python/3.5.0"]
ADDRESSES = ["8.8.8.8", "81.2.69.160", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8",
             "10.0.0.1", "127.0.0.1", "not an ip", "", " 8.8.8.8", "01.2.3.4", "[::1]"]
DERIVED = ["$browser", "$browser_version", "$os", "$os_version", "$device_type", "$bot",
           "$geoip_country_code", "$geoip_country_name"]


def reference_apply(events: list[Any], client: Client, agents: UserAgents, geo: GeoIp
                    ) -> None:
    """The rules, one event at a time (see `rta/core/enrich.py`'s docstring)."""
    for event in events:
        if not isinstance(event, dict):
            continue
        props = event.get("properties")
        if props is not None and not isinstance(props, dict):
            continue
        props = {} if props is None else props
        context = props.get("context")
        ua = (props.get("$raw_user_agent") or props.get("$user_agent")
              or props.get("$useragent")
              or (context.get("userAgent") if isinstance(context, dict) else None))
        if not isinstance(ua, str) or not ua:
            ua = client.user_agent if client.browser else None
        ip = props.pop("$ip", None)
        if isinstance(context, dict) and "ip" in context:
            ip = ip or context["ip"]
            props["context"] = {k: v for k, v in context.items() if k != "ip"}
        if props.get("$geoip_disable") is True:
            ip = None
        elif not isinstance(ip, str) or not ip:
            ip = client.ip if client.browser else None
        derived = {**agents.derive(ua), **geo.derive(ip)}
        for key, value in derived.items():
            props.setdefault(key, value)
        if props or event.get("properties") is not None:
            event["properties"] = props


def _value(draw: Any) -> Any:
    return draw(st.one_of(st.sampled_from(AGENTS), st.sampled_from(ADDRESSES), st.none(),
                          st.booleans(), st.integers(-2, 2), st.text(max_size=8)))


@st.composite
def _props(draw: Any) -> Any:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return draw(st.sampled_from(["text", 5, [1, 2]]))
    props: dict[str, Any] = {"a": draw(st.integers(0, 3))}
    if draw(st.integers(0, 3)):
        props["$raw_user_agent"] = draw(st.sampled_from(AGENTS))
    for key in draw(st.lists(st.sampled_from(
            ["$raw_user_agent", "$user_agent", "$useragent", "$ip", "$geoip_disable",
             *DERIVED]), max_size=3)):
        props[key] = (draw(st.booleans()) if key == "$geoip_disable" and draw(st.booleans())
                      else _value(draw))
    if draw(st.integers(0, 4)) == 0:
        props["context"] = draw(st.one_of(
            st.text(max_size=3),
            st.fixed_dictionaries({}, optional={"ip": st.sampled_from(ADDRESSES),
                                                "userAgent": st.sampled_from(AGENTS),
                                                "locale": st.just("en")})))
    return props


@st.composite
def _events(draw: Any) -> list[Any]:
    # Runs of one visitor's events (the memo's common case), broken by other visitors.
    out: list[Any] = []
    for _ in range(draw(st.integers(0, 6))):
        template = draw(_props())
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.integers(0, 9)) == 0:
                out.append(draw(st.sampled_from(["not an event", 3, None])))
                continue
            props = copy.deepcopy(template) if draw(st.booleans()) else draw(_props())
            if isinstance(props, dict) and draw(st.booleans()):  # the same agent, another
                props[draw(st.sampled_from(["$ip", "$raw_user_agent"]))] = draw(  # address
                    st.sampled_from(AGENTS[:2] + ADDRESSES[:3]))  # (or the reverse)
            event: dict[str, Any] = {"type": "x"}
            if props is not None or draw(st.booleans()):
                event["properties"] = props
            out.append(event)
    return out


SHARED = Enricher()
REFERENCE = (UserAgents(), GeoIp())


@settings(max_examples=50, deadline=None)
@given(batches=st.lists(st.tuples(_events(), st.sampled_from([*AGENTS, None]),
                                  st.sampled_from([*ADDRESSES, None]), st.booleans()),
                        min_size=1, max_size=3))
def test_apply_answers_as_the_reference(batches: list[Any]) -> None:
    for events, ua, ip, browser in batches:
        client = Client(ua, ip, browser)
        want = copy.deepcopy(events)
        reference_apply(want, client, *REFERENCE)
        got = copy.deepcopy(events)
        SHARED.apply(got, client)
        assert got == want


def test_a_sent_context_is_replaced_never_changed() -> None:
    context = {"ip": "8.8.8.8", "userAgent": USER_AGENTS[0][0]}
    events = [{"type": "x", "properties": {"context": context}}]
    Enricher().apply(events, Client(None, None, False))
    assert context == {"ip": "8.8.8.8", "userAgent": USER_AGENTS[0][0]}
    assert events[0]["properties"]["context"] == {"userAgent": USER_AGENTS[0][0]}
    assert events[0]["properties"]["$geoip_country_code"] == "US"


@settings(max_examples=50, deadline=None)
@given(text=st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from([*BOT_WORDS, "bot", "Bot", "BOT_", "bota", "/", " ", "x", "_",
                              "Mozilla/5.0", "\n", "é", "\u212a", "\u017f", "\u0130"]),
             max_size=6).map("".join)))
def test_is_bot_answers_as_the_regex(text: str) -> None:
    assert is_bot(text) == (BOT_PATTERN.search(text) is not None)


@settings(max_examples=50, deadline=None)
@given(text=st.one_of(st.ip_addresses(v=4).map(str), st.text(max_size=20),
                      st.lists(st.text("0123456789+_ \u0661\x00", max_size=4),
                               min_size=4, max_size=4).map(".".join)))
def test_ipv4_int_is_as_strict_as_ipaddress(text: str) -> None:
    try:
        want: int | None = int(ipaddress.IPv4Address(text))
    except ValueError:
        want = None
    assert ipv4_int(text) == want
