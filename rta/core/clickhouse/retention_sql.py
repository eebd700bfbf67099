"""Cohort retention in ClickHouse SQL, with the embedded engine's answers.

Retention is per-user work, so it is one GROUP BY user over the entry and retention events
(on a cluster each shard runs it whole for its users, and only the grid travels): per user,
the memberships (a cohort and its first entry time: the first-ever entry for `first_time`,
the first entry of every period for `recurring`, as `minMap`) and the latest retention event
of every grid period (`maxMap`). A membership returned in period n when the period i + n
holds a retention event at or after its entry time; the latest event of a period is the one
that best meets that, so one per period is enough. Array functions then give each
membership's periods, and one final aggregation sums the sizes and the grid (`sumMap`), so a
few hundred numbers come back, never users.

Semantics are those of docs/statistics.md ("Cohort retention"): the grid, the horizon
(retention events up to now, and up to N periods after the last cohort), `on` and
`on_or_after`, nulls for periods not started, and the weighted average row.

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rta.core.clickhouse.filter_sql import Params, where_sql
from rta.core.clickhouse.funnel_sql import _label
from rta.core.clickhouse.view import View
from rta.core.queries.behaviour_results import CohortResult
from rta.core.queries.behaviour_specs import CohortQuery
from rta.core.queries.retention_grid import Group, cohort_result, with_breakdown


def result(view: View, q: CohortQuery, members: np.ndarray | None) -> CohortResult:
    """The retention grid, restricted to the users `members` (user ids) when given, and
    split by `q.breakdown` when asked (a second statement grouped by its value)."""
    params = Params()
    sql = _sql(view, q, members, params, None)
    (users, size_map, grid_map), = view.rows(sql, params)
    whole = cohort_result(q, *_counts(q, users, size_map, grid_map))
    if q.breakdown is None:
        return whole
    params = Params()
    sql = _sql(view, q, members, params, params.add(q.breakdown, "String"))
    groups: list[Group] = []
    for kind, text, number, users, size_map, grid_map in view.rows(sql, params):
        groups.append((int(kind), _label(int(kind), str(text), float(number)),
                       *_counts(q, users, size_map, grid_map)))
    return with_breakdown(q, whole, groups)


def _counts(q: CohortQuery, users: Any, size_map: Any, grid_map: Any
            ) -> tuple[int, np.ndarray, np.ndarray]:
    ncoh, width = q.cohorts, q.periods + 1
    sizes = _dense(size_map, ncoh)
    grid = _dense(grid_map, ncoh * width).reshape(ncoh, width)
    if q.criterion != "on":
        grid = np.cumsum(grid[:, ::-1], axis=1)[:, ::-1]
    return int(users), sizes, grid


def _sql(view: View, q: CohortQuery, members: np.ndarray | None, params: Params,
         key: str | None) -> str:
    """The grid statement; with a breakdown `key`, one row per value (kind, text, number)
    of the property on each membership's entry event (its first in (ts, arrival) order)."""
    ncoh, length, start = q.cohorts, q.length, q.start
    horizon = max(min(q.now + 1, start + (ncoh + q.periods) * length), start + 1)
    member_sql = None if members is None else params.add([str(u) for u in members],
                                                         "Array(String)")
    p_start = params.add(start, "Int64")
    p_end = params.add(q.end, "Int64")
    p_horizon = params.add(horizon, "Int64")
    p_len = params.add(length, "Int64")
    entry = where_sql(q.entry_flt, params, times=False)
    ret = where_sql(q.ret_flt, params, times=False)
    if member_sql is not None:
        entry = f"({entry}) AND ifNull(user IN {member_sql}, 0)"
        ret = f"({ret}) AND ifNull(user IN {member_sql}, 0)"
    if q.rtype == "first_time":
        entry_cond = f"({entry}) AND ts < {p_end}"
    else:
        entry_cond = f"({entry}) AND ts >= {p_start} AND ts < {p_end}"
    ret_cond = f"({ret}) AND ts >= {p_start} AND ts < {p_horizon}"
    if key is None:
        return _one_pass_sql(q, view, params, entry_cond, ret_cond, p_start, p_len)
    value = ""
    if key is not None:
        bv = (f"(multiIf(mapContains(props_s, {key}), 1, mapContains(props_i, {key}) OR "
              f"mapContains(props_f, {key}), 2, mapContains(props_b, {key}), 3, 0), "
              f"if(mapContains(props_s, {key}), props_s[{key}], ''), "
              f"multiIf(mapContains(props_i, {key}), toFloat64(props_i[{key}]), "
              f"mapContains(props_f, {key}), props_f[{key}], mapContains(props_b, {key}), "
              f"toFloat64(props_b[{key}]), 0.) + 0.)")  # (+ 0. makes -0.0 the 0.0 group)
        value = (f", argMinIf(seq, (ts, seq), {entry_cond}) AS es, "
                 f"argMinIf({bv}, (ts, seq), {entry_cond}) AS bv")
    # first the (user, grid period) pairs, by plain aggregates (events before the grid, which
    # only a first-time entry reads, in period -1); then each user's periods as arrays
    per_period = f"""
        SELECT user, if(ts < {p_start}, -1, intDiv(ts - {p_start}, {p_len})) AS p,
               countIf({entry_cond}) AS ne, minIf(ts, {entry_cond}) AS e,
               countIf({ret_cond}) AS nr, maxIf(ts, {ret_cond}) AS r{value}
        FROM {view.events}
        WHERE user IS NOT NULL AND (({entry_cond}) OR ({ret_cond}))
        GROUP BY user, p"""
    if q.rtype == "first_time":  # the first-ever entry, when it lies in the grid
        first = "minIf(e, ne > 0)"
        if key is None:
            memberships = f"""
                if({first} >= {p_start} AND countIf(ne > 0) > 0,
                   ([intDiv({first} - {p_start}, {p_len})], [{first}]), ([], []))"""
        else:
            memberships = f"""
                if({first} >= {p_start} AND countIf(ne > 0) > 0,
                   ([intDiv({first} - {p_start}, {p_len})], [{first}],
                    [argMinIf(bv, (e, es), ne > 0)]), ([], [], []))"""
    elif key is None:
        memberships = "(groupArrayIf(p, ne > 0), groupArrayIf(e, ne > 0))"
    else:
        memberships = ("(groupArrayIf(p, ne > 0), groupArrayIf(e, ne > 0), "
                       "groupArrayIf(bv, ne > 0))")
    per_user = f"""
        SELECT user, {memberships} AS mem,
               (groupArrayIf(p, nr > 0), groupArrayIf(r, nr > 0)) AS ret
        FROM ({per_period})
        GROUP BY user
        HAVING notEmpty(mem.1)"""
    # one row per membership: its cohort and the periods n it returned in
    p_periods = params.add(q.periods, "Int64")
    per_membership = f"""
        SELECT user, c{", b" if key is not None else ""},
               arrayMap(p -> p - c, arrayFilter((p, rt) -> p - c >= 0
                                                AND p - c <= {p_periods} AND rt >= t,
                                                ret.1, ret.2)) AS ns
        FROM ({per_user})
        ARRAY JOIN mem.1 AS c, mem.2 AS t{", mem.3 AS b" if key is not None else ""}"""
    return _grid_sql(q, params, per_membership, key)


def _one_pass_sql(q: CohortQuery, view: View, params: Params, entry_cond: str, ret_cond: str,
                  p_start: str, p_len: str) -> str:
    """The grid without a breakdown in one GROUP BY user (half the time of grouping by user
    and period first): each user's memberships (the first-ever entry, or the first entry of
    every period as `minMap`) and every retention event time; a membership's periods are
    the distinct periods of those at or after its entry."""
    if q.rtype == "first_time":
        memberships = (f"if(countIf({entry_cond}) > 0 AND minIf(ts, {entry_cond}) >= {p_start}, "
                       f"([intDiv(minIf(ts, {entry_cond}) - {p_start}, {p_len})], "
                       f"[minIf(ts, {entry_cond})]), ([], []))")
    else:
        memberships = f"minMapIf([intDiv(ts - {p_start}, {p_len})], [ts], {entry_cond})"
    per_user = f"""
        SELECT user, {memberships} AS mem, groupArrayIf(ts, {ret_cond}) AS rts
        FROM {view.events}
        WHERE user IS NOT NULL AND (({entry_cond}) OR ({ret_cond}))
        GROUP BY user
        HAVING notEmpty(mem.1)"""
    p_periods = params.add(q.periods, "Int64")
    per_membership = f"""
        SELECT user, c,
               arrayDistinct(arrayMap(p -> p - c, arrayFilter(
                   (p, rt) -> p - c >= 0 AND p - c <= {p_periods} AND rt >= t,
                   arrayMap(rt -> intDiv(rt - {p_start}, {p_len}), rts), rts))) AS ns
        FROM ({per_user})
        ARRAY JOIN mem.1 AS c, mem.2 AS t"""
    return _grid_sql(q, params, per_membership, None)


def _grid_sql(q: CohortQuery, params: Params, per_membership: str, key: str | None) -> str:
    """The final aggregation over memberships (user, c[, b], ns): users, cohort sizes and the
    grid as sumMaps."""
    p_width = params.add(q.periods + 1, "Int64")
    if q.criterion == "on":
        hits = f"arrayMap(n -> c * {p_width} + n, ns)"
    else:  # counted once, at its latest period; the suffix sums below do the rest
        hits = f"if(empty(ns), [], [c * {p_width} + arrayMax(ns)])"
    head, tail = ("", "") if key is None else ("b.1, b.2, b.3, ", " GROUP BY b.1, b.2, b.3")
    return f"""
        SELECT {head}uniqExact(user), sumMap([c], [toUInt64(1)]),
               sumMap({hits}, arrayMap(x -> toUInt64(1), {hits}))
        FROM ({per_membership}){tail}"""


def _dense(pairs: Any, n: int) -> np.ndarray:
    """A sumMap's (keys, values) as a dense vector of length n."""
    out = np.zeros(n, dtype=np.int64)
    keys, values = pairs
    if len(keys):
        out[np.asarray(keys, dtype=np.int64)] = np.asarray(values, dtype=np.int64)
    return out
