"""Generated website traffic for the web analytics tests, and a naive reference.

Visitors send pageviews in every SDK's shape (rta, PostHog, Segment, the first-party
script) and other events with gaps just under, at and over the visit timeout, tied
timestamps, sent session ids or none, bots, malformed URLs and odd UTM values; the log is
cut into batches that arrive out of order. `reference` answers the web queries by walking
each visitor's events one by one in plain Python.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import strategies as st

from rta.core.queries import pageviews as pv
from rta.core.queries.web_labels import FIELDS, RAW_FIELDS, label
from rta.core.queries.web_results import DimensionRow, DimensionRows, VisitTotals, rank_rows
from rta.core.queries.web_specs import WebSettings

T0 = 1_700_000_000_000
MIN = 60_000
TIMEOUT = 30 * MIN
NOW = T0 + 20 * 24 * 3_600_000
GAPS = (0, 0, 1, 1000, 5 * MIN, TIMEOUT - 1, TIMEOUT, TIMEOUT + 1, 2 * TIMEOUT, 26 * 3_600_000)
TYPES = ("$pageview", "pageview", "page", "$pageview", "click", "$autocapture", "$pageleave",
         "$identify", "signup")
URLS = ("https://site.com/", "https://www.site.com/pricing?utm_source=Newsletter&"
        "utm_medium=email&utm_campaign=spring%20sale", "https://site.com/docs?gclid=abc",
        "https://site.com/a?utm_source=%ZZ&utm_medium=c%20pc&utm_campaign=%F0%9F%98%80",
        "https://site.com/blog?fbclid=x&utm_source=facebook", "http://[bad", "not a url",
        "/relative?utm_source=twitter", "https://other.org/p#frag", "")
PATHS = ("/", "/pricing", "/docs?x=1", "/produits/é", "", "https://site.com/full")
REFERRERS = ("$direct", "https://www.google.com/search?q=1", "https://site.com/prev",
             "https://news.ycombinator.com/item", "garbage", "https://sub.site.com/x",
             "https://t.co/abc", "android-app://com.x", "")
BROWSERS = ("Chrome", "Firefox", "Safari", "")
COUNTRIES = ("DE", "US", "FR")


def _page_props(draw: st.DrawFn) -> dict[str, Any]:
    style = draw(st.sampled_from(("rta", "posthog", "segment", "script", "none")))
    url = draw(st.sampled_from(URLS))
    ref = draw(st.sampled_from(REFERRERS))
    if style == "rta":
        props: dict[str, Any] = {"page": draw(st.one_of(st.sampled_from(PATHS),
                                                        st.integers(0, 3)))}
        if draw(st.booleans()):
            props["referrer"] = ref
    elif style == "posthog":
        props = {"$current_url": url, "$referrer": ref}
        if draw(st.booleans()):
            props["$pathname"] = draw(st.sampled_from(PATHS))
        if draw(st.booleans()):
            props["$host"] = draw(st.sampled_from(("site.com", "www.site.com", "other.org")))
    elif style == "segment":
        props = {"url": url, "title": "T", "referrer": ref}
        if draw(st.booleans()):
            props["path"] = draw(st.sampled_from(PATHS))
    elif style == "script":
        props = {"$current_url": url, "$pathname": draw(st.sampled_from(PATHS)),
                 "$host": "site.com", "$referrer": ref, "title": "x"}
    else:
        props = {}
    if draw(st.integers(0, 2)):
        props["$browser"] = draw(st.sampled_from(BROWSERS))
    if draw(st.integers(0, 2)):
        props["$geoip_country_code"] = draw(st.sampled_from(COUNTRIES))
    if draw(st.integers(0, 3)) == 0:
        props["$device_type"] = draw(st.sampled_from(("Desktop", "Mobile")))
    return props


@st.composite
def web_log(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Batches in arrival order (later batches may hold earlier timestamps)."""
    events: list[dict[str, Any]] = []
    n_visitors = draw(st.integers(1, 6))
    for v in range(n_visitors):
        user = draw(st.sampled_from((f"v{v}", f"v{v}", None)))
        t = T0 + draw(st.integers(0, 48)) * 3_600_000
        for _ in range(draw(st.integers(1, 9))):
            t += draw(st.sampled_from(GAPS))
            etype = draw(st.sampled_from(TYPES))
            props = _page_props(draw) if etype in pv.PAGEVIEW_TYPES else {}
            ev: dict[str, Any] = {"type": etype, "timestamp": t}
            if user is not None:
                ev["userId"] = user
            sid = draw(st.integers(0, 5))
            if sid == 1:
                ev["sessionId"] = f"s{draw(st.integers(0, 1))}"
            elif sid == 2:
                props["$session_id"] = f"ph{draw(st.integers(0, 1))}"
            bot = draw(st.integers(0, 9))
            if bot == 0:
                props["$bot"] = True
            elif bot == 1:
                props["$bot"] = False
            if props:
                ev["properties"] = props
            events.append(ev)
    order = draw(st.permutations(range(len(events))))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(events) - 1)), max_size=3)))
    shuffled = [events[i] for i in order]
    out, last = [], 0
    for c in [*cuts, len(shuffled)]:
        if c > last:
            out.append(shuffled[last:c])
            last = c
    return out


# -- the naive reference ----------------------------------------------------------------------

def _first_string(props: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = props.get(key)
        if isinstance(value, str):
            return value
    return None


def _visits(log: list[list[dict[str, Any]]], start: int, end: int, bots: bool,
            settings: WebSettings) -> list[list[dict[str, Any]]]:
    """Every counted visit as its events in (ts, arrival) order."""
    streams: dict[tuple[str, str | None], list[tuple[int, int, dict[str, Any]]]] = \
        defaultdict(list)
    arrival = 0
    for batch in log:
        for ev in batch:
            arrival += 1
            props = ev.get("properties", {})
            user = ev.get("userId")
            if user is None or not start <= ev["timestamp"] < end:
                continue
            if not bots and props.get("$bot") is True:
                continue
            sid = ev.get("sessionId")
            key = ("c" + sid) if sid else None
            if key is None and isinstance(props.get("$session_id"), str):
                key = "p" + props["$session_id"]
            streams[(user, key)].append((ev["timestamp"], arrival, ev))
    visits: list[list[dict[str, Any]]] = []
    for (_user, key), items in sorted(streams.items(), key=lambda kv: str(kv[0])):
        items.sort(key=lambda x: (x[0], x[1]))
        current: list[dict[str, Any]] = []
        last_ts: int | None = None
        for ts, _, ev in items:
            if current and key is None and last_ts is not None and \
                    ts - last_ts > settings.timeout_ms:
                visits.append(current)
                current = []
            current.append(ev)
            last_ts = ts
        visits.append(current)
    return [v for v in visits if any(e["type"] in pv.PAGEVIEW_TYPES for e in v)]


def _is_pv(ev: dict[str, Any]) -> bool:
    return ev["type"] in pv.PAGEVIEW_TYPES


def _bounce(visit: list[dict[str, Any]]) -> bool:
    views = sum(_is_pv(e) for e in visit)
    acts = sum(not _is_pv(e) and e["type"] not in pv.NON_INTERACTION_TYPES for e in visit)
    return views == 1 and acts == 0


def reference_totals(log: list[list[dict[str, Any]]], start: int, end: int,
                     bots: bool = False, settings: WebSettings = WebSettings()) -> VisitTotals:
    visits = _visits(log, start, end, bots, settings)
    return VisitTotals(len({v[0]["userId"] for v in visits}), len(visits),
                       sum(sum(_is_pv(e) for e in v) for v in visits),
                       sum(_bounce(v) for v in visits),
                       sum(v[-1]["timestamp"] - v[0]["timestamp"] for v in visits))


def _label(dimension: str, ev: dict[str, Any], settings: WebSettings) -> str | None:
    props = ev.get("properties", {})
    raw = [_first_string(props, RAW_FIELDS[name]) for name in FIELDS[dimension]]
    return label(dimension, [r or None for r in raw], settings.own_hosts)


def reference_breakdown(log: list[list[dict[str, Any]]], start: int, end: int,
                        dimension: str, limit: int, bots: bool = False,
                        settings: WebSettings = WebSettings()) -> DimensionRows:
    visits = _visits(log, start, end, bots, settings)
    acc: dict[str | None, dict[str, Any]] = defaultdict(
        lambda: {"users": set(), "visits": set(), "pageviews": 0, "bounces": set()})
    for i, visit in enumerate(visits):
        views = [e for e in visit if _is_pv(e)]
        if dimension == "pages":
            for e in views:
                a = acc[_label(dimension, e, settings)]
                a["users"].add(e["userId"])
                a["visits"].add(i)
                a["pageviews"] += 1
                if _bounce(visit):
                    a["bounces"].add(i)
            continue
        e = views[-1] if dimension == "exit-pages" else views[0]
        a = acc[_label(dimension, e, settings)]
        a["users"].add(e["userId"])
        a["visits"].add(i)
        a["pageviews"] += len(views)
        if _bounce(visit):
            a["bounces"].add(i)
    rows = [DimensionRow(k, len(a["users"]), len(a["visits"]), a["pageviews"],
                         len(a["bounces"])) for k, a in acc.items()]
    total = len({v[0]["userId"] for v in visits})
    return DimensionRows(rank_rows(rows, limit), len(rows), total)
