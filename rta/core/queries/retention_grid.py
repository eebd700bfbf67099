"""A retention grid (cohort sizes, returning users per cohort and period) as the API's
answer: periods not started by `now` are None, the average row weights cohorts by size.

Backends count the grid their own way; what the counts mean in the answer is written once,
here, so both answer alike.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rta.core.queries.behaviour_results import (
    CohortAverage,
    CohortBreakdown,
    CohortResult,
    CohortRow,
)
from rta.core.queries.behaviour_specs import CohortQuery
from rta.core.queries.intervals import wilson_pct
from rta.core.queries.segment_spec import pct
from rta.core.queries.timeparse import iso


def cohort_result(q: CohortQuery, users: int, sizes: np.ndarray,
                  grid: np.ndarray) -> CohortResult:
    """`grid[i, n]`: users of cohort i counted in period n (cumulated for `on_or_after`)."""
    width = q.periods + 1
    cohorts: list[CohortRow] = []
    for i in range(q.cohorts):
        cstart = q.start + i * q.length
        counts: list[int | None] = []
        percentages: list[float | None] = []
        for n in range(width):
            if cstart + n * q.length > q.now:
                counts.append(None)
                percentages.append(None)
            else:
                counts.append(int(grid[i, n]))
                percentages.append(pct(int(grid[i, n]), int(sizes[i])))
        cohorts.append(CohortRow(i, cstart, iso(cstart), int(sizes[i]), counts, percentages))
    avg_counts: list[int | None] = []
    avg_pct: list[float | None] = []
    avg_ci: list[list[float] | None] = []
    for n in range(width):
        seen = [c for c in cohorts if c.counts[n] is not None]
        if not seen:
            avg_counts.append(None)
            avg_pct.append(None)
            avg_ci.append(None)
            continue
        num = sum(c.counts[n] or 0 for c in seen)
        den = sum(c.size for c in seen)
        avg_counts.append(num)
        avg_pct.append(pct(num, den))
        avg_ci.append(wilson_pct(num, den))
    return CohortResult(
        q.name, q.entry, q.ret, q.rtype, q.criterion, q.periods, q.length, q.start, q.end - 1,
        users, tuple(cohorts), CohortAverage(int(sizes.sum()), avg_counts, avg_pct, avg_ci))


# (kind, value, users, sizes, grid): one breakdown group's counts; kind orders values whose
# text is equal (1 text, 2 number, 3 boolean, 0 not set)
Group = tuple[int, Any, int, np.ndarray, np.ndarray]


def with_breakdown(q: CohortQuery, whole: CohortResult, groups: list[Group]) -> CohortResult:
    """`whole` with its breakdown: groups by cohort size (their users in every cohort),
    then value text, at most `breakdownLimit`."""
    made = []
    for kind, value, users, sizes, grid in groups:
        part = cohort_result(q, users, sizes, grid)
        made.append((kind, CohortBreakdown(value, users, part.cohorts, part.average)))
    made.sort(key=lambda g: (-g[1].average.size, str(g[1].value), g[0]))
    return dataclasses.replace(whole, breakdown_property=q.breakdown,
                               breakdown_truncated=len(made) > q.breakdown_limit,
                               breakdown=tuple(g for _, g in made[:q.breakdown_limit]))
