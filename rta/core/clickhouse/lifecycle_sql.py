"""Lifecycle in ClickHouse SQL: new, returning, resurrecting and dormant users per period.

Per user: the first period they ever did the event (all stored history, as the embedded
engine reads it) and the set of periods they were active in, from the period before the grid
to its end; array functions turn that set into (period, status) pairs, and one aggregation
counts them. Semantics: docs/statistics.md, "Lifecycle".

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

import numpy as np

from rta.core.clickhouse.filter_sql import Params, where_in_segment
from rta.core.clickhouse.period_sql import period_sql
from rta.core.clickhouse.view import View
from rta.core.queries.stickiness_results import LifecycleResult, lifecycle_result
from rta.core.queries.stickiness_specs import LifecycleQuery


def result(view: View, q: LifecycleQuery, members: np.ndarray | None = None) -> LifecycleResult:
    grid = q.grid
    params = Params()
    cond = where_in_segment(q.flt, params, members, times=False)
    p_end = params.add(grid.end_time, "Int64")
    p_first = params.add(grid.first, "Int64")
    p_last = params.add(grid.last, "Int64")
    per_user = f"""
        SELECT user, min(p) AS first_p, groupUniqArrayIf(p, p >= {p_first} - 1) AS ps
        FROM (SELECT user, {period_sql(grid.interval)} AS p FROM {view.events}
              WHERE ({cond}) AND ts < {p_end} AND user IS NOT NULL)
        GROUP BY user
        HAVING notEmpty(ps)"""
    # status codes: 0 new, 1 returning, 2 resurrecting, 3 dormant (in the period after)
    statuses = f"""
        arrayConcat(
            arrayMap(x -> (x, if(x = first_p, 0, if(has(ps, x - 1), 1, 2))),
                     arrayFilter(x -> x >= {p_first}, ps)),
            arrayMap(x -> (x + 1, 3),
                     arrayFilter(x -> x < {p_last} AND NOT has(ps, x + 1), ps)))"""
    sql = f"""
        SELECT s.1 AS p, s.2 AS status, count()
        FROM ({per_user})
        ARRAY JOIN {statuses} AS s
        GROUP BY p, status"""
    counts = np.zeros((grid.count, 4), dtype=np.int64)
    for p, status, n in view.rows(sql, params):
        counts[int(p) - grid.first, int(status)] = int(n)
    return lifecycle_result(q, counts)
