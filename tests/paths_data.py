"""Paths test data: hypothesis logs dense in paths' edge cases, request bodies, and a naive
per-unit Python reference of the whole answer (docs/statistics.md, "Paths").

Logs are few users and sessions doing a handful of event types on a 30 s grid, so gaps of
exactly the window (60 s with `windowMinutes: 1`), timestamp ties (ordered by arrival),
repeats and events arriving out of order are common.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import strategies as st

from rta.core.queries.pageviews import page_path
from rta.core.queries.paths_specs import OTHER, parse_paths

T0 = 1_700_000_000_000
STEP_MS = 30_000
NOW = T0 + 10 * 3_600_000
TYPES = ("a", "b", "c", "pageview", "$pageview", "page")
PAGES = ("/", "/x", "/y", "")
# every SDK's page aliases, in the documented order (docs/web.md), by hand
PATH_ALIASES = ("$pathname", "path", "page", "context.page.path")
URL_ALIASES = ("$current_url", "url", "href", "context.page.url")
SENT_PATHS = (*PAGES, "/x?ref=1", "https://a.io/y#top", 7)
SENT_URLS = ("https://a.io/x?utm_source=z", "http://b.io/", "not a url", 7)
USERS = ("u0", "u1", "u2", "u3", "ü")
Log = list[list[dict[str, Any]]]


@st.composite
def path_event(draw: st.DrawFn) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": draw(st.sampled_from(TYPES)),
                          "timestamp": T0 + draw(st.integers(0, 24)) * STEP_MS
                          * draw(st.sampled_from((1, 1, 1, 4)))}
    user = draw(st.sampled_from((*USERS, None)))
    if user is not None:
        ev["userId"] = user
    if draw(st.integers(0, 2)):
        ev["sessionId"] = f"s{draw(st.integers(0, 3))}"
    props: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        key = draw(st.sampled_from(("page", "page", "$pathname", *PATH_ALIASES)))
        props[key] = draw(st.sampled_from(SENT_PATHS))
        if draw(st.integers(0, 3)) == 0:
            props[draw(st.sampled_from(PATH_ALIASES))] = draw(st.sampled_from(SENT_PATHS))
    if draw(st.integers(0, 3)) == 0:
        props[draw(st.sampled_from(URL_ALIASES))] = draw(st.sampled_from(SENT_URLS))
    if draw(st.booleans()):
        props["plan"] = draw(st.sampled_from(("free", "pro")))
    if props:
        ev["properties"] = props
    return ev


def path_logs(max_batches: int = 4) -> st.SearchStrategy[Log]:
    """Batches in arrival order (later batches may hold earlier timestamps)."""
    return st.lists(st.lists(path_event(), min_size=1, max_size=25), min_size=1,
                    max_size=max_batches)


@st.composite
def path_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    pages = draw(st.integers(0, 3)) == 0
    if pages:
        body["pathType"] = "pages"
    point = draw(st.sampled_from(PAGES if pages else (*TYPES, "never")))
    which = draw(st.sampled_from(("startPoint", "endPoint", None)))
    if which is not None:
        body[which] = point or "/"
    for key, strategy in (("steps", st.integers(1, 6)), ("windowMinutes", st.sampled_from(
            (1, 2, 30))), ("topK", st.integers(1, 4)), ("collapseRepeats", st.booleans()),
            ("unit", st.sampled_from(("users", "sessions")))):
        if draw(st.booleans()):
            body[key] = draw(strategy)
    if draw(st.integers(0, 3)) == 0:
        body["where"] = {"plan": "pro"}
    if draw(st.integers(0, 3)) == 0:
        body["startTime"] = T0 + draw(st.integers(0, 30)) * STEP_MS
    if draw(st.integers(0, 3)) == 0:
        body["endTime"] = T0 + draw(st.integers(31, 100)) * STEP_MS
    return body


def _name(ev: dict[str, Any], pages: bool) -> str | None:
    if not pages:
        return str(ev["type"])
    if ev["type"] not in ("pageview", "page", "$pageview"):
        return None
    props = ev.get("properties") or {}

    def first(keys: tuple[str, ...]) -> str | None:  # the first *string* alias sent
        return next((props[k] for k in keys if isinstance(props.get(k), str)), None)

    return page_path(first(PATH_ALIASES), first(URL_ALIASES))


def reference_paths(log: Log, body: dict[str, Any]) -> list[list[str]]:
    """Every unit's path (its node names), one unit at a time, in plain Python."""
    q = parse_paths(body, NOW)
    units: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    arrival = 0
    for batch in log:
        for ev in batch:
            arrival += 1
            key = ev.get("sessionId") if q.unit == "sessions" else ev.get("userId")
            name = _name(ev, q.path_type == "pages")
            ts = ev["timestamp"]
            if key is None or name is None:
                continue
            if (q.start is not None and ts < q.start) or (q.end is not None and ts >= q.end):
                continue
            if q.where is not None and (ev.get("properties") or {}).get("plan") != "pro":
                continue
            units[key].append((ts, arrival, name))
    out = []
    for events in units.values():
        events.sort()
        names = [e[2] for e in events]
        point = q.start_point if q.start_point is not None else q.end_point
        if point is None:
            anchor = 0
        elif point not in names:
            continue
        elif q.backward:
            anchor = len(names) - 1 - names[::-1].index(point)
        else:
            anchor = names.index(point)
        lo = hi = anchor
        while lo > 0 and events[lo][0] - events[lo - 1][0] <= q.window_ms:
            lo -= 1
        while hi + 1 < len(events) and events[hi + 1][0] - events[hi][0] <= q.window_ms:
            hi += 1
        run = names[anchor:hi + 1] if not q.backward else names[lo:anchor + 1][::-1]
        if q.collapse_repeats:
            run = [x for i, x in enumerate(run) if i == 0 or x != run[i - 1]]
        out.append(run[:q.steps])
    return out


def reference_answer(log: Log, body: dict[str, Any]) -> dict[str, Any]:
    """The nodes, links and total of the answer, from `reference_paths` (ids and order as
    docs/api.md states them)."""
    q = parse_paths(body, NOW)
    paths = reference_paths(log, body)
    raw: dict[tuple[int, str], int] = defaultdict(int)
    for p in paths:
        for k, name in enumerate(p):
            raw[k + 1, name] += 1
    top: dict[int, set[str]] = defaultdict(set)
    for step in {s for s, _ in raw}:
        ranked = sorted((name for s, name in raw if s == step),
                        key=lambda name: (-raw[step, name], name))
        top[step] = set(ranked[:q.top_k])
    users: dict[tuple[int, str], int] = defaultdict(int)
    drops: dict[tuple[int, str], int] = defaultdict(int)
    links: dict[tuple[int, str, str], int] = defaultdict(int)
    for p in paths:
        g = [name if name in top[k + 1] else OTHER for k, name in enumerate(p)]
        for k, name in enumerate(g):
            users[k + 1, name] += 1
            if k + 1 == len(g):
                drops[k + 1, name] += 1
            else:
                links[k + 1, name, g[k + 1]] += 1

    def rank(name: str) -> tuple[bool, str]:
        return name == OTHER, name

    nodes = [{"id": f"{s}_{n}", "step": s, "name": n, "users": c,
              "dropoff": drops.get((s, n), 0)}
             for (s, n), c in sorted(users.items(), key=lambda kv: (kv[0][0], -kv[1],
                                                                      rank(kv[0][1])))]
    out_links = []
    for (s, a, b), c in sorted(links.items(), key=lambda kv: (kv[0][0], -kv[1],
                                                              rank(kv[0][1]), rank(kv[0][2]))):
        src, dst = f"{s}_{a}", f"{s + 1}_{b}"
        out_links.append({"source": dst, "target": src, "users": c} if q.backward
                         else {"source": src, "target": dst, "users": c})
    return {"totalPaths": len(paths), "nodes": nodes, "links": out_links}


def reference_transitions(log: Log, body: dict[str, Any]) -> list[tuple[int, str, str | None,
                                                                         int]]:
    counts: dict[tuple[int, str, str | None], int] = defaultdict(int)
    for p in reference_paths(log, body):
        for k, name in enumerate(p):
            counts[k + 1, name, p[k + 1] if k + 1 < len(p) else None] += 1
    return sorted(((k, a, b, c) for (k, a, b), c in counts.items()),
                  key=lambda r: (r[0], r[1], r[2] or "", r[3]))
