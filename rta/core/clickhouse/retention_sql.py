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
from rta.core.clickhouse.view import View
from rta.core.queries.behaviour_results import CohortResult
from rta.core.queries.behaviour_specs import CohortQuery
from rta.core.queries.retention_grid import cohort_result


def result(view: View, q: CohortQuery, members: np.ndarray | None) -> CohortResult:
    """The retention grid, restricted to the users `members` (user ids) when given."""
    ncoh, width, length, start = q.cohorts, q.periods + 1, q.length, q.start
    horizon = max(min(q.now + 1, start + (ncoh + q.periods) * length), start + 1)
    params = Params()
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
    # first the (user, grid period) pairs, by plain aggregates (events before the grid, which
    # only a first-time entry reads, in period -1); then each user's periods as arrays
    per_period = f"""
        SELECT user, if(ts < {p_start}, -1, intDiv(ts - {p_start}, {p_len})) AS p,
               countIf({entry_cond}) AS ne, minIf(ts, {entry_cond}) AS e,
               countIf({ret_cond}) AS nr, maxIf(ts, {ret_cond}) AS r
        FROM {view.events}
        WHERE user IS NOT NULL AND (({entry_cond}) OR ({ret_cond}))
        GROUP BY user, p"""
    if q.rtype == "first_time":  # the first-ever entry, when it lies in the grid
        first = "minIf(e, ne > 0)"
        memberships = f"""
            if({first} >= {p_start} AND countIf(ne > 0) > 0,
               ([intDiv({first} - {p_start}, {p_len})], [{first}]), ([], []))"""
    else:
        memberships = "(groupArrayIf(p, ne > 0), groupArrayIf(e, ne > 0))"
    per_user = f"""
        SELECT user, {memberships} AS mem,
               (groupArrayIf(p, nr > 0), groupArrayIf(r, nr > 0)) AS ret
        FROM ({per_period})
        GROUP BY user
        HAVING notEmpty(mem.1)"""
    # one row per membership: its cohort and the periods n it returned in
    p_periods = params.add(q.periods, "Int64")
    per_membership = f"""
        SELECT user, c,
               arrayMap(p -> p - c, arrayFilter((p, rt) -> p - c >= 0
                                                AND p - c <= {p_periods} AND rt >= t,
                                                ret.1, ret.2)) AS ns
        FROM ({per_user})
        ARRAY JOIN mem.1 AS c, mem.2 AS t"""
    p_width = params.add(width, "Int64")
    if q.criterion == "on":
        hits = f"arrayMap(n -> c * {p_width} + n, ns)"
    else:  # counted once, at its latest period; the suffix sums below do the rest
        hits = f"if(empty(ns), [], [c * {p_width} + arrayMax(ns)])"
    sql = f"""
        SELECT uniqExact(user), sumMap([c], [toUInt64(1)]),
               sumMap({hits}, arrayMap(x -> toUInt64(1), {hits}))
        FROM ({per_membership})"""
    (users, size_map, grid_map), = view.rows(sql, params)
    sizes = _dense(size_map, ncoh)
    grid = _dense(grid_map, ncoh * width).reshape(ncoh, width)
    if q.criterion != "on":
        grid = np.cumsum(grid[:, ::-1], axis=1)[:, ::-1]
    return cohort_result(q, int(users), sizes, grid)


def _dense(pairs: Any, n: int) -> np.ndarray:
    """A sumMap's (keys, values) as a dense vector of length n."""
    out = np.zeros(n, dtype=np.int64)
    keys, values = pairs
    if len(keys):
        out[np.asarray(keys, dtype=np.int64)] = np.asarray(values, dtype=np.int64)
    return out
