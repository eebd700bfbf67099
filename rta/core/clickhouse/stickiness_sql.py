"""Stickiness in ClickHouse SQL: users per number of active periods.

One GROUP BY (user, period) over the event's rows in the grid, one per user counting its
periods, and one histogram: a handful of numbers come back, never users (on a cluster each
shard counts its own users whole). Semantics: docs/statistics.md, "Stickiness".

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

import numpy as np

from rta.core.clickhouse.filter_sql import Params, where_in_segment
from rta.core.clickhouse.period_sql import period_sql
from rta.core.clickhouse.view import View
from rta.core.queries.stickiness_results import StickinessResult, stickiness_result
from rta.core.queries.stickiness_specs import StickinessQuery


def result(view: View, q: StickinessQuery, members: np.ndarray | None = None) -> StickinessResult:
    grid = q.grid
    params = Params()
    cond = where_in_segment(q.flt, params, members, times=False)
    p_start = params.add(grid.start_time, "Int64")
    p_end = params.add(grid.end_time, "Int64")
    sql = f"""
        SELECT n, count() FROM (
            SELECT user, count() AS n FROM (
                SELECT user, {period_sql(grid.interval)} AS p FROM {view.events}
                WHERE ({cond}) AND ts >= {p_start} AND ts < {p_end} AND user IS NOT NULL
                GROUP BY user, p)
            GROUP BY user)
        GROUP BY n"""
    hist = np.zeros(grid.count + 1, dtype=np.int64)
    for n, users in view.rows(sql, params):
        hist[int(n)] = int(users)
    return stickiness_result(q, hist)
