"""Paths in ClickHouse SQL, walked exactly as the embedded engine walks them.

Each unit's events (users or sessions; for pages only pageviews naming a page: a first
statement lists the distinct raw (path, url) pairs, `pageviews.page_path` names each in
Python as the embedded engine does, and `transform` maps pairs to pages) become one array
sorted by (ts, seq), the store's
tie rule. In array arithmetic: the positions where a path must break (the first event, or
a gap over the window), the path's anchor (the first start point, the last end point, or
the first event), the run of events around it no break interrupts (`arrayFirstIndex` /
`arrayLastIndex`), repeats dropped from that run when asked (`arrayFilter` against the
element before), and the first (or, back from an end point, the last) `steps` names of it
(`arraySlice`). One `ARRAY JOIN` turns each path into its transitions (step, name, next
name or NULL), and only their counts leave ClickHouse; grouping beyond the top K and the
totals are the neutral layer's (`queries.paths_results.build`).

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

import numpy as np

from rta.core.clickhouse.filter_sql import Params, member_sql, node_sql
from rta.core.clickhouse.view import View
from rta.core.queries import pageviews as pv
from rta.core.queries.paths_results import PathCounts, Transition
from rta.core.queries.paths_specs import PathsQuery


def _raw_sql(params: Params) -> tuple[str, str]:
    """A pageview's raw path and URL: the first string alias of each ('' when none), as the
    embedded engine coalesces them (`pageviews.PATH_KEYS`, `URL_KEYS`)."""
    out = []
    for keys in (pv.PATH_KEYS, pv.URL_KEYS):
        parts = [f"mapContains(props_s, {k}), props_s[{k}]"
                 for k in (params.add(key, "String") for key in keys)]
        out.append(f"multiIf({', '.join(parts)}, '')")
    return out[0], out[1]


def page_labels(view: View, q: PathsQuery) -> tuple[list[str], list[str]]:
    """The distinct raw (path, url) pairs of the range's pageviews, as `_combo` keys, and
    their pages by `pageviews.page_path` (the Python the embedded engine runs too); pairs
    naming no page are left out."""
    params = Params()
    path, url = _raw_sql(params)
    types = params.add(list(pv.PAGEVIEW_TYPES), "Array(String)")
    where = [f"type IN {types}"]
    if q.start is not None:
        where.append(f"ts >= {params.add(int(q.start), 'Int64')}")
    if q.end is not None:
        where.append(f"ts < {params.add(int(q.end), 'Int64')}")
    sql = f"SELECT DISTINCT {path}, {url} FROM {view.events} WHERE " + " AND ".join(where)
    keys, pages = [], []
    for raw_path, raw_url in view.rows(sql, params):
        page = pv.page_path(str(raw_path) or None, str(raw_url) or None)
        if page is not None:
            keys.append(_key(str(raw_path), str(raw_url)))
            pages.append(page)
    return keys, pages


def _key(path: str, url: str) -> str:
    return f"{len(path.encode())}:{path}{url}"


def _name_sql(q: PathsQuery, params: Params,
              pages: tuple[list[str], list[str]] | None) -> tuple[str, str | None]:
    """The node name of an event, and the condition an event must meet to have one."""
    if q.path_type == "events" or pages is None:
        return "toString(type)", None
    if not pages[0]:
        return "''", "0"  # no pageview names a page
    path, url = _raw_sql(params)
    combo = f"concat(toString(length({path})), ':', {path}, {url})"
    keys, labels = params.add(pages[0], "Array(String)"), params.add(pages[1], "Array(String)")
    types = params.add(list(pv.PAGEVIEW_TYPES), "Array(String)")
    name = f"transform({combo}, {keys}, {labels}, '')"
    # (a pair stored between the two statements names no page: it counts from the next query)
    return name, f"type IN {types} AND {name} != ''"


def build_sql(view: View, q: PathsQuery, members: np.ndarray | None, params: Params,
              pages: tuple[list[str], list[str]] | None = None) -> str:
    """The walk's transitions; `pages` (for pathType pages) from `page_labels`."""
    entity = "session" if q.unit == "sessions" else "user"
    name, has_name = _name_sql(q, params, pages)
    where = [f"{entity} IS NOT NULL"]
    if has_name is not None:
        where.append(has_name)
    if q.start is not None:
        where.append(f"ts >= {params.add(int(q.start), 'Int64')}")
    if q.end is not None:
        where.append(f"ts < {params.add(int(q.end), 'Int64')}")
    if q.where is not None:
        where.append(f"ifNull({node_sql(q.where, params)}, 0)")
    if members is not None:
        where.append(member_sql(members, params))
    gather = (f"SELECT assumeNotNull({entity}) AS e, arraySort(groupArray(tuple(ts, seq, "
              f"{name}))) AS ev FROM {view.events} WHERE "
              + " AND ".join(f"({c})" for c in where) + " GROUP BY e")
    window = params.add(int(q.window_ms), "Int64")
    steps = params.add(int(q.steps), "Int64")
    point = q.start_point if q.start_point is not None else q.end_point
    if point is None:
        anchor = "toUInt64(1)"
    else:
        p = params.add(point, "String")
        anchor = (f"if(has(nm, {p}), length(nm) + 1 - indexOf(arrayReverse(nm), {p}), 0)"
                  if q.backward else f"indexOf(nm, {p})")
    cols = ["ev.1 AS t", "ev.3 AS nm", "length(nm) AS n",
            f"arrayMap(i -> i = 1 OR t[i] - t[i - 1] > {window}, arrayEnumerate(t)) AS brk",
            f"{anchor} AS s"]
    if q.backward:  # the run ends at the anchor and begins at the last break before it
        cols += ["arrayLastIndex((b, i) -> b AND i <= s, brk, arrayEnumerate(brk)) AS b0",
                 "arraySlice(nm, b0, s - b0 + 1) AS seg"]
    else:  # the run begins at the anchor and ends before the first break after it
        cols += ["arrayFirstIndex((b, i) -> b AND i > s, brk, arrayEnumerate(brk)) AS b1",
                 "arraySlice(nm, s, if(b1 = 0, n + 1, b1) - s) AS seg"]
    if q.collapse_repeats:
        cols.append("arrayFilter((x, i) -> i = 1 OR x != seg[i - 1], seg, "
                    "arrayEnumerate(seg)) AS run")
    else:
        cols.append("seg AS run")
    if q.backward:
        cols.append(f"arrayReverse(arraySlice(run, greatest(1, toInt64(length(run)) - {steps}"
                    " + 1))) AS p")
    else:
        cols.append(f"arraySlice(run, 1, {steps}) AS p")
    walks = f"SELECT {', '.join(cols)} FROM ({gather})"
    return (f"SELECT k, p[k] AS name, if(k < length(p), toNullable(p[k + 1]), NULL) AS nxt, "
            f"count() FROM ({walks}) ARRAY JOIN arrayEnumerate(p) AS k WHERE s > 0 "
            f"GROUP BY k, name, nxt")


def counts(view: View, q: PathsQuery, members: np.ndarray | None) -> PathCounts:
    """Walk transitions of every unit's path (`members`: the saved segment's user ids)."""
    params = Params()
    pages = page_labels(view, q) if q.path_type == "pages" else None
    rows = view.rows(build_sql(view, q, members, params, pages), params)
    out: list[Transition] = [(int(k), str(a), None if b is None else str(b), int(c))
                             for k, a, b, c in rows]
    return PathCounts(tuple(out))
