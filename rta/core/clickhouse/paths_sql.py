"""Paths in ClickHouse SQL, walked exactly as the embedded engine walks them.

Each unit's events (users or sessions; for pages only pageviews naming a page by the one
rule in `paths_specs.PAGE_PROPERTIES`) become one array sorted by (ts, seq), the store's
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
from rta.core.queries.paths_results import PathCounts, Transition
from rta.core.queries.paths_specs import PAGE_PROPERTIES, PathsQuery


def _name_sql(q: PathsQuery, params: Params) -> tuple[str, str | None]:
    """The node name of an event, and the condition an event must meet to have one."""
    if q.path_type == "events":
        return "toString(type)", None
    cases, conds = [], []
    for etype, prop in PAGE_PROPERTIES.items():
        t, p = params.add(etype, "String"), params.add(prop, "String")
        cond = f"(type = {t} AND mapContains(props_s, {p}))"
        conds.append(cond)
        cases += [cond, f"props_s[{p}]"]
    return f"multiIf({', '.join(cases)}, '')", " OR ".join(conds)


def build_sql(view: View, q: PathsQuery, members: np.ndarray | None, params: Params) -> str:
    entity = "session" if q.unit == "sessions" else "user"
    name, has_name = _name_sql(q, params)
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
    rows = view.rows(build_sql(view, q, members, params), params)
    out: list[Transition] = [(int(k), str(a), None if b is None else str(b), int(c))
                             for k, a, b, c in rows]
    return PathCounts(tuple(out))
