"""A/B partials in ClickHouse SQL: exposures, conversions and metric moments per variant.

Attribution is per-user work (a user's first exposure, whether they saw more than one
variant, which of their metric events follow the exposure), so it runs as GROUP BYs over
users inside ClickHouse and only one row per variant value comes back; the statistics on
top are the shared pure maths of `rta.core.queries.abtest`. Semantics mirror the embedded
engine (docs/statistics.md, "A/B tests"):

- a variant value is the assignment event's `variantProperty` in whichever kind it has
  (text, number — integers and floats that are equal are one variant —, boolean), and the
  kinds stay apart ('1' is not 1); `labels` lists every value seen on assignment events in
  range (users or not), text first, then numbers, then booleans;
- `variants` keeps the values Python's `==` finds in the list (1 also admits True), decided
  here per kind so the comparison itself runs in SQL;
- users with two or more distinct (kept) values are excluded; the others' exposure is their
  earliest assignment; a metric event converts at or after it (same millisecond counts) and
  before endTime; the metric is the sum of the numeric property over those events, 0 if none;
- the variance is the two-pass sample variance (mean first, then squared deviations), as
  numpy computes it, rather than the one-pass sum of squares that loses digits.

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rta.core.clickhouse.filter_sql import Params, numeric_expr, where_sql
from rta.core.clickhouse.view import View
from rta.core.queries.behaviour_results import AbExposures, VariantMoments
from rta.core.queries.behaviour_specs import AbTestQuery

_INT64_MIN = -(2**63)  # the embedded store's "no integer" sentinel: not a value there either


def exposures(view: View, q: AbTestQuery, members: np.ndarray | None) -> AbExposures:
    """Per-variant partials, restricted to the users `members` (user ids) when given."""
    params = Params()
    member_sql = "1"
    if members is not None:
        member_sql = (f"ifNull(user IN "
                      f"{params.add([str(u) for u in members], 'Array(String)')}, 0)")
    vk = params.add(q.variant_property, "String")
    has_i = f"(mapContains(props_i, {vk}) AND props_i[{vk}] != {_INT64_MIN})"
    kind = (f"multiIf(mapContains(props_s, {vk}), 1, {has_i} OR mapContains(props_f, {vk}), "
            f"2, mapContains(props_b, {vk}), 3, 0)")
    assign_flt = q.assign_flt
    times = _range(q.start, q.end, params)
    assign = where_sql(assign_flt, params, times=False)
    assigned = f"""
        SELECT user, ts, k,
               if(k = 1, props_s[{vk}], '') AS s,
               if(k = 2, if({has_i}, toFloat64(props_i[{vk}]), props_f[{vk}]) + 0., 0.) AS f,
               if(k = 3, props_b[{vk}], false) AS b
        FROM (SELECT *, {kind} AS k FROM {view.events}
              WHERE ({assign}) AND {times} AND {member_sql})
        WHERE k > 0"""
    exposed = f"""
        SELECT user, min(ts) AS t, uniqExact(k, s, f, b) AS nv, any((k, s, f, b)) AS v
        FROM assigned
        WHERE user IS NOT NULL AND {_wanted_sql(q.variants, params)}
        GROUP BY user"""
    metric = where_sql(q.metric_flt, params, times=False)
    end = "1" if q.end is None else f"ts < {params.add(int(q.end), 'Int64')}"
    value = "0." if not q.metric_property else \
        f"ifNull({numeric_expr(params.add(q.metric_property, 'String'))}, 0.)"
    converted = f"""
        SELECT m.user AS user, toUInt8(1) AS hit, sum(m.val) AS value
        FROM (SELECT user, ts, {value} AS val FROM {view.events}
              WHERE ({metric}) AND {end} AND {member_sql} AND user IS NOT NULL) AS m
        INNER JOIN (SELECT user, t FROM exposed WHERE nv = 1) AS x ON m.user = x.user
        WHERE m.ts >= x.t
        GROUP BY m.user"""
    per_variant = """
        SELECT v, count() AS n, sum(hit) AS conv, groupArray(value) AS xs,
               arraySum(xs) AS total, total / n AS mean
        FROM (SELECT x.v AS v, c.hit AS hit, c.value AS value
              FROM exposed AS x LEFT JOIN converted AS c ON x.user = c.user
              WHERE x.nv = 1)
        GROUP BY v"""
    sql = f"""
        WITH assigned AS ({assigned}), exposed AS ({exposed}), converted AS ({converted})
        SELECT 0 AS tag, k, s, f, b, toUInt64(0), toUInt64(0), 0., 0., 0.
        FROM assigned GROUP BY k, s, f, b
        UNION ALL
        SELECT 1, v.1, v.2, v.3, v.4, n, conv, mean,
               if(n > 1, arraySum(arrayMap(x -> (x - mean) * (x - mean), xs)) / (n - 1), 0.),
               total
        FROM ({per_variant})
        UNION ALL
        SELECT 2, 0, '', 0., false, countIf(nv > 1), toUInt64(0), 0., 0., 0. FROM exposed"""
    rows = view.rows(sql, params)
    keys = sorted((int(r[1]), str(r[2]), float(r[3]), bool(r[4])) for r in rows if r[0] == 0)
    labels = [_label(key) for key in keys]
    index = {key: i for i, key in enumerate(keys)}
    moments: dict[int, VariantMoments] = {}
    excluded = 0
    for tag, k, s, f, b, n, conv, mean, var, total in rows:
        if tag == 2:
            excluded = int(n)
        elif tag == 1:
            moments[index[(int(k), str(s), float(f), bool(b))]] = VariantMoments(
                int(n), int(conv), float(mean), float(var), float(total))
    present = sorted(moments)
    return AbExposures(labels, present, {i: moments[i] for i in present},
                       sum(m.exposures for m in moments.values()), excluded)


def _range(start: int | None, end: int | None, params: Params) -> str:
    parts = []
    if start is not None:
        parts.append(f"ts >= {params.add(int(start), 'Int64')}")
    if end is not None:
        parts.append(f"ts < {params.add(int(end), 'Int64')}")
    return " AND ".join(parts) if parts else "1"


def _label(key: tuple[int, str, float, bool]) -> Any:
    """A variant's JSON value, as the embedded engine's `value_labels` gives it."""
    kind, s, f, b = key
    if kind == 1:
        return s
    if kind == 2:
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    return b


def _wanted_sql(wanted: list[Any] | None, params: Params) -> str:
    """The values `label in wanted` keeps (Python equality: 1 == 1.0 == True), per kind."""
    if wanted is None:
        return "1"
    strs = [w for w in wanted if isinstance(w, str)]
    nums: list[float] = []
    bools: set[bool] = set()
    for w in wanted:
        if isinstance(w, bool) or not isinstance(w, int | float):
            continue
        try:
            fw = float(w)
        except OverflowError:  # an integer no float equals
            continue
        if isinstance(w, int) and (math.isinf(fw) or int(fw) != w):
            continue
        nums.append(fw)
        if fw in (0.0, 1.0):
            bools.add(fw == 1.0)
    alternatives = []
    if strs:
        alternatives.append(f"(k = 1 AND s IN {params.add(strs, 'Array(String)')})")
    if nums:
        alternatives.append(f"(k = 2 AND f IN {params.add(nums, 'Array(Float64)')})")
    if bools:
        alternatives.append(f"(k = 3 AND b IN {params.add(sorted(bools), 'Array(Bool)')})")
    return "(" + " OR ".join(alternatives) + ")" if alternatives else "0"
