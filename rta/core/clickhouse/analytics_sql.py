"""Analytics (aggregate series, grouped counts, unique users, top values) in ClickHouse SQL.

The answers must equal the embedded engine's field for field, so its rules are restated
here in SQL rather than left to ClickHouse's defaults:
- group keys keep value kinds apart ('1' and 1 are two groups, 1 and 1.0 one, -0.0 is 0),
  and a key is a tuple (kind, number, text) whose order is the embedded tie order (numbers,
  then text in code point order, then false before true), so `ORDER BY score DESC, key`
  picks the same top groups;
- percentiles interpolate linearly between order statistics (numpy's default, SQL
  quantile_cont) with the embedded arithmetic, not ClickHouse's quantile sketches;
- a metric counts only events where it is a number (integer or float kind);
  `unique_users` counts only events with a user; empty buckets are 0 for count, sum and
  unique_users and None for the rest.
Whole-range values that do not add up across buckets (distinct users, percentiles) come
from the same statement's `GROUPING SETS ((bucket), ())`, so one scan answers both.

Approximate unique users run the embedded HyperLogLog estimator (same registers, rho, alpha,
linear counting for small sets) in SQL, but hash the user id text (sipHash64) instead of the
embedded dense user codes, which ClickHouse does not have: estimates are within the stated
standard error of the exact count, not equal to the embedded estimate bit for bit.

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rta.core.clickhouse.filter_sql import Params
from rta.core.clickhouse.view import ALL_KINDS, View
from rta.core.queries.analytics_results import (
    CountGroup,
    GroupedCount,
    GroupSeries,
    SeriesData,
    SeriesRows,
    TopData,
    TopValue,
    Total,
    UniqueRows,
)
from rta.core.queries.buckets import METRIC_AGGREGATIONS, QUANTILES, Buckets
from rta.core.queries.filters import EventFilter

TOP_FIELDS = {"type": "type", "eventType": "type", "userId": "user", "sessionId": "session"}
PROPERTY_PREFIX = "properties."
# Group key kinds, in the embedded tie order; MISSING marks events without the field.
NUMBER, TEXT, BOOLEAN, MISSING = 0, 1, 2, 3
GroupKey = tuple[int, float, str]
_USE_NULLS = " SETTINGS group_by_use_nulls = 1"


# -- shared SQL pieces -----------------------------------------------------------------------

def _has_number(key: str, kinds: frozenset[str] = ALL_KINDS) -> str:
    """Whether the event holds `key` as a number (only the Map columns of `kinds` read)."""
    maps = [f"mapContains({col}, {key})" for kind, col in (("i", "props_i"), ("f", "props_f"))
            if kind in kinds]
    return f"({' OR '.join(maps)})" if maps else "false"


def _number(key: str, kinds: frozenset[str] = ALL_KINDS) -> str:
    """The property's numeric value (integer kind first, as the embedded engine reads it);
    only meaningful where `_has_number` holds."""
    if "f" not in kinds:
        return f"toFloat64(props_i[{key}])"
    if "i" not in kinds:
        return f"props_f[{key}]"
    return f"if(mapContains(props_i, {key}), toFloat64(props_i[{key}]), props_f[{key}])"


def property_name(field: str) -> str:
    """The property key a group-by or metric field names (`properties.x` or `x`)."""
    return field[len(PROPERTY_PREFIX):] if field.startswith(PROPERTY_PREFIX) else field


def group_columns(field: str, params: Params, kinds: frozenset[str] = ALL_KINDS) -> str:
    """`gk, gn, gs`: the group key of `field` (a property, type, userId or sessionId);
    `kinds`: the value kinds the property may hold (see `View.kinds_of`)."""
    top = TOP_FIELDS.get(field)
    if top is not None:
        return (f"if({top} IS NULL, {MISSING}, {TEXT}) AS gk, 0. AS gn, "
                f"toString(ifNull({top}, '')) AS gs")
    key = params.add(property_name(field), "String")
    number = bool(kinds & {"i", "f"})
    # (a value is one kind per event; where kinds could overlap numbers win, as embedded;
    # only the kinds the key holds are read, a text-only key reads one Map column of four)
    branches = [(_has_number(key, kinds), NUMBER, f"{_number(key, kinds)} + 0.")] if number \
        else []
    if "b" in kinds:
        branches.append((f"mapContains(props_b, {key})", BOOLEAN, f"toFloat64(props_b[{key}])"))
    if "s" in kinds:
        branches.append((f"mapContains(props_s, {key})", TEXT, "0."))
    if not branches:
        return f"toUInt8({MISSING}) AS gk, 0. AS gn, '' AS gs"
    kind_sql = "".join(f"{cond}, {code}, " for cond, code, _ in branches)
    number_sql = "".join(f"{cond}, {value}, " for cond, _, value in branches)
    text_value = f"props_s[{key}]" if "s" in kinds else "''"
    return (f"toUInt8(multiIf({kind_sql}{MISSING})) AS gk, "
            f"toFloat64(multiIf({number_sql}0.)) AS gn, "
            f"if(gk = {TEXT}, {text_value}, '') AS gs")


def _users_of(view: View, flt: EventFilter, field: str, keys: list[GroupKey]
              ) -> dict[GroupKey, int]:
    """Distinct users of each chosen value of `field`, grouped by the stored column of each
    value kind rather than by the computed key (an event holds a property in one kind only):
    half the time of grouping every event by its key triple."""
    params = Params()
    where = view.where(flt, params)
    top = TOP_FIELDS.get(field)
    parts: list[str] = []

    def select(kind: int, value: str, cond: str, wanted: list[Any], ch_type: str) -> None:
        number, text = ("v", "''") if ch_type == "Float64" else ("0.", "v")
        parts.append(f"SELECT toUInt8({kind}) AS gk, {number} AS gn, {text} AS gs, "
                     f"uniqExact(user) AS u FROM (SELECT {value} AS v, user "
                     f"FROM {view.events} WHERE ({where}) AND {cond} AND "
                     f"v IN {params.add(wanted, f'Array({ch_type})')}) GROUP BY v")

    texts = [gs for gk, _, gs in keys if gk == TEXT]
    if top is not None:
        select(TEXT, f"toString({top})", f"{top} IS NOT NULL", texts, "String")
    else:
        key = params.add(property_name(field), "String")
        kinds = view.kinds_of(property_name(field))
        numbers = [gn for gk, gn, _ in keys if gk == NUMBER]
        flags = [gn for gk, gn, _ in keys if gk == BOOLEAN]
        if texts:
            select(TEXT, f"props_s[{key}]", f"mapContains(props_s, {key})", texts, "String")
        if numbers:
            select(NUMBER, f"{_number(key, kinds)} + 0.", _has_number(key, kinds), numbers,
                   "Float64")
        if flags:
            select(BOOLEAN, f"toFloat64(props_b[{key}])", f"mapContains(props_b, {key})",
                   flags, "Float64")
    out: dict[GroupKey, int] = {}
    for gk, gn, gs, u in view.rows(" UNION ALL ".join(parts), params):
        out[(int(gk), float(gn), str(gs))] = int(u)
    return out


def _group_kinds(view: View, field: str) -> frozenset[str]:
    return ALL_KINDS if field in TOP_FIELDS else view.kinds_of(property_name(field))


def number_label(value: float) -> int | float:
    """A numeric group key as JSON shows it: integral values as ints."""
    if value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def label(gk: int, gn: float, gs: str) -> Any:
    if gk == NUMBER:
        return number_label(float(gn))
    if gk == BOOLEAN:
        return bool(gn)
    return gs


def _quantile(q: str) -> str:
    """Linear interpolation between the order statistics around q * (n - 1), with the
    embedded arithmetic (NaN without values)."""
    return (f"if(length(arraySort(groupArray(v)) AS _s) = 0, nan, "
            f"if((({q} * (length(_s) - 1)) AS _pos) = floor(_pos), _s[toUInt64(_pos) + 1], "
            f"(_s[toUInt64(floor(_pos)) + 1] AS _lo) + "
            f"(_s[toUInt64(floor(_pos)) + 2] - _lo) * (_pos - floor(_pos))))")


def _value(aggregation: str, params: Params) -> str:
    """The aggregate over the base rows' `v` (metric) or `user`."""
    if aggregation == "count":
        return "toFloat64(count())"
    if aggregation == "unique_users":
        return "toFloat64(uniqExact(user))"
    if aggregation == "sum":
        return "sum(v)"
    if aggregation == "avg":
        return "sum(v) / count()"
    if aggregation in ("min", "max"):
        return f"{aggregation}(v)"
    return _quantile(params.add(QUANTILES[aggregation], "Float64"))


def _base(view: View, flt: EventFilter, params: Params, buckets: Buckets, aggregation: str,
          metric: str | None, group_by: str | None) -> str:
    """The rows an aggregation reads: bucket `b`, metric `v`, `user` (unique users), group
    key columns."""
    start = params.add(int(buckets.start), "Int64")
    interval = params.add(int(buckets.interval), "Int64")
    conds = [view.where(flt, params), f"ts >= {start}",
             f"ts < {params.add(int(buckets.end), 'Int64')}"]
    # (`user` only where counted: a statement that never reads it skips the person join)
    cols = [f"intDiv(ts - {start}, {interval}) AS b"]
    if aggregation == "unique_users":
        cols.append("user")
    if aggregation in METRIC_AGGREGATIONS or (aggregation == "count" and metric):
        assert metric is not None
        kinds = view.kinds_of(metric)
        key = params.add(metric, "String")
        conds.append(_has_number(key, kinds))
        cols.append(f"{_number(key, kinds)} AS v")
    elif aggregation == "unique_users":
        conds.append("user IS NOT NULL")
    if group_by is not None:
        cols.append(group_columns(group_by, params, _group_kinds(view, group_by)))
    return (f"SELECT {', '.join(cols)} FROM {view.events} "
            f"WHERE {' AND '.join(f'({c})' for c in conds)}")


def _rows(stamps: list[int], values: np.ndarray, counts: np.ndarray,
          integral: bool) -> SeriesRows:
    vals: list[Any]
    if integral:
        vals = values.astype(np.int64).tolist()
    else:
        vals = [v if math.isfinite(v) else None for v in values.tolist()]
    return SeriesRows(stamps, vals, counts.tolist())


def _total(value: float, integral: bool) -> float | int | None:
    if integral:
        return int(value) if math.isfinite(value) else 0
    return value if math.isfinite(value) else None


def _empty_values(aggregation: str, size: int) -> np.ndarray:
    """Per-bucket values before any row lands: 0 for additive aggregations, else NaN."""
    if aggregation in ("count", "sum", "unique_users"):
        return np.zeros(size, dtype=np.float64)
    return np.full(size, np.nan)


# -- series ----------------------------------------------------------------------------------

def series(view: View, flt: EventFilter, buckets: Buckets, aggregation: str,
           metric: str | None, group_by: str | None, limit: int) -> SeriesData:
    """`aggregation` per bucket and over the range, plus the top `limit` groups' series."""
    integral = aggregation in ("count", "unique_users")
    nb = buckets.count
    stamps = buckets.timestamps()
    params = Params()
    base = _base(view, flt, params, buckets, aggregation, metric, None)
    values = _empty_values(aggregation, nb)
    counts = np.zeros(nb, dtype=np.int64)
    total_value, total_count = float(_empty_values(aggregation, 1)[0]), 0
    if aggregation in _MERGEABLE:  # (the range's value from the buckets', as embedded does:
        sums = np.zeros(nb, dtype=np.float64)  # a third faster than GROUPING SETS)
        sum_sql = "sum(v)" if aggregation == "avg" else "0."
        for b, value, count, total in view.rows(
                f"SELECT b, {_value(aggregation, params)}, count(), {sum_sql} FROM ({base}) "
                f"GROUP BY b", params):
            values[int(b)], counts[int(b)], sums[int(b)] = float(value), int(count), total
        total_value, total_count = _combine(aggregation, values, counts, sums)
    else:
        for b, value, count in view.rows(
                f"SELECT b, {_value(aggregation, params)}, count() FROM ({base}) "
                f"GROUP BY GROUPING SETS ((b), ()){_USE_NULLS}", params):
            if b is None:
                total_value, total_count = float(value), int(count)
            else:
                values[int(b)], counts[int(b)] = float(value), int(count)
    if not total_count:
        total_value = float(_empty_values(aggregation, 1)[0])
    rows = _rows(stamps, values, counts, integral)
    total = Total(_total(total_value, integral), total_count)
    if group_by is None:
        return SeriesData(rows, total)
    groups, chosen = _grouped(view, flt, buckets, aggregation, metric, group_by, limit)
    return SeriesData(rows, total, chosen, groups)


_MERGEABLE = ("count", "sum", "avg", "min", "max")


def _combine(aggregation: str, values: np.ndarray, counts: np.ndarray, sums: np.ndarray
             ) -> tuple[float, int]:
    """The whole range's value and events from per-bucket partials (the embedded
    `timeseries._combine` arithmetic: numpy sums of the buckets')."""
    total = int(counts.sum())
    if aggregation == "count":
        return float(total), total
    if aggregation == "sum":
        return float(values.sum()), total
    if aggregation == "avg":
        return (float(sums.sum() / total) if total else float("nan")), total
    present = values[counts > 0]
    if not len(present):
        return float("nan"), total
    return float(present.min() if aggregation == "min" else present.max()), total


def _grouped(view: View, flt: EventFilter, buckets: Buckets, aggregation: str,
             metric: str | None, group_by: str, limit: int
             ) -> tuple[int, tuple[GroupSeries, ...]]:
    """Two passes, as the embedded engine: the groups' totals pick the top `limit` (additive
    aggregations by value, the others by contributing events; ties by key), then their
    buckets."""
    integral = aggregation in ("count", "unique_users")
    params = Params()
    base = _base(view, flt, params, buckets, aggregation, metric, group_by)
    score = "val" if aggregation in ("count", "sum", "unique_users") else "c"
    top = view.rows(
        f"SELECT gk, gn, gs, {_value(aggregation, params)} AS val, count() AS c, "
        f"count() OVER () AS groups FROM ({base}) WHERE gk != {MISSING} "
        f"GROUP BY gk, gn, gs ORDER BY {score} DESC, gk, gn, gs "
        f"LIMIT {int(limit)}", params)
    if not top:
        return 0, ()
    keys: list[GroupKey] = [(int(gk), float(gn), str(gs)) for gk, gn, gs, *_ in top]
    index = {k: i for i, k in enumerate(keys)}
    nb = buckets.count
    values = np.stack([_empty_values(aggregation, nb) for _ in keys])
    counts = np.zeros((len(keys), nb), dtype=np.int64)
    params = Params()
    base = _base(view, flt, params, buckets, aggregation, metric, group_by)
    chosen = params.add(keys, "Array(Tuple(UInt8, Float64, String))")
    for gk, gn, gs, b, value, count in view.rows(
            f"SELECT gk, gn, gs, b, {_value(aggregation, params)}, count() FROM ({base}) "
            f"WHERE (gk, gn, gs) IN {chosen} GROUP BY gk, gn, gs, b", params):
        i = index[(int(gk), float(gn), str(gs))]
        values[i, int(b)], counts[i, int(b)] = float(value), int(count)
    stamps = buckets.timestamps()
    out = tuple(GroupSeries(label(*k), Total(_total(float(row[3]), integral), int(row[4])),
                            _rows(stamps, values[i], counts[i], integral))
                for i, (k, row) in enumerate(zip(keys, top, strict=True)))
    return int(top[0][5]), out


# -- counts per group, top values -----------------------------------------------------------

def count_groups(view: View, flt: EventFilter, group_by: str, limit: int) -> GroupedCount:
    """Events per value of `group_by`: the top `limit` by count (ties by key), how many
    values, the events without one and the rest."""
    params = Params()
    top_column = TOP_FIELDS.get(group_by)
    if top_column is not None:  # (group by the column itself: 4x faster than by the key
        grouped = (  # triple, and the few groups get their key after)
            f"SELECT if(raw IS NULL, {MISSING}, {TEXT}) AS gk, 0. AS gn, "
            f"toString(ifNull(raw, '')) AS gs, c FROM (SELECT {top_column} AS raw, "
            f"count() AS c FROM {view.events} WHERE {view.where(flt, params)} GROUP BY raw)")
    else:
        grouped = (f"SELECT gk, gn, gs, count() AS c FROM (SELECT "
                   f"{group_columns(group_by, params, _group_kinds(view, group_by))} "
                   f"FROM {view.events} WHERE "
                   f"{view.where(flt, params)}) GROUP BY gk, gn, gs")
    rows = view.rows(
        f"SELECT gk, gn, gs, c, sum(c) OVER () AS total, "
        f"sum(if(gk = {MISSING}, c, 0)) OVER () AS missing, "
        f"sum(gk != {MISSING}) OVER () AS present FROM ({grouped}) "
        f"ORDER BY gk = {MISSING} DESC, c DESC, gk, gn, gs LIMIT {int(limit) + 1}", params,
        # (events are ordered by type first: grouping by it in that order needs no hash
        # table, half the time)
        {"optimize_aggregation_in_order": 1} if top_column == "type" else None)
    if not rows:
        return GroupedCount(0, (), 0, 0, 0)
    total, missing, distinct = int(rows[0][4]), int(rows[0][5]), int(rows[0][6])
    shown = [r for r in rows if r[0] != MISSING][:limit]
    groups = tuple(CountGroup(label(gk, gn, gs), int(c), _share(int(c), total))
                   for gk, gn, gs, c, *_ in shown)
    rest = total - missing - sum(g.count for g in groups)
    return GroupedCount(total, groups, distinct, rest, missing)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def top(view: View, flt: EventFilter, prop: str, n: int, by_users: bool) -> TopData:
    """The `n` most frequent values of `prop` (by events, or by distinct users then events;
    ties by key) with their distinct users. Ranked by events, users are counted for the
    chosen values only (a second pass), as the embedded engine does: a distinct set per
    value of a high-cardinality property would cost far more than a second scan."""
    params = Params()
    users = "uniqExact(user)" if by_users else "toUInt64(0)"
    order = "u DESC, c DESC" if by_users else "c DESC"
    columns = (f"SELECT {group_columns(prop, params, _group_kinds(view, prop))}"
               f"{', user' if by_users else ''} ")
    where = view.where(flt, params)
    source = f"{columns} FROM {view.events} WHERE {where}"
    rows = view.rows(
        f"SELECT gk, gn, gs, count() AS c, {users} AS u, sum(c) OVER () AS total, "
        f"sum(if(gk = {MISSING}, 0, c)) OVER () AS with_value, "
        f"sum(gk != {MISSING}) OVER () AS present FROM ({source}) GROUP BY gk, gn, gs "
        f"ORDER BY gk = {MISSING} DESC, {order}, gk, gn, gs LIMIT {int(n) + 1}", params)
    if not rows:
        return TopData(0, 0, 0, ())
    total, with_value, distinct = int(rows[0][5]), int(rows[0][6]), int(rows[0][7])
    shown = [r for r in rows if r[0] != MISSING][:n]
    keys: list[GroupKey] = [(int(gk), float(gn), str(gs)) for gk, gn, gs, *_ in shown]
    per_key = {k: int(r[4]) for k, r in zip(keys, shown, strict=True)}
    if not by_users and keys:
        per_key.update(_users_of(view, flt, prop, keys))
    values = tuple(TopValue(label(*k), int(r[3]), per_key[k], _share(int(r[3]), with_value))
                   for k, r in zip(keys, shown, strict=True))
    return TopData(total, with_value, distinct, values)


# -- unique users ----------------------------------------------------------------------------

def unique_series(view: View, flt: EventFilter, buckets: Buckets) -> tuple[int, UniqueRows]:
    """Exact distinct users per bucket and over the range; every matching event per bucket
    (anonymous ones too)."""
    params = Params()
    start = params.add(int(buckets.start), "Int64")
    interval = params.add(int(buckets.interval), "Int64")
    end = params.add(int(buckets.end), "Int64")
    nb = buckets.count
    users = np.zeros(nb, dtype=np.int64)
    events = np.zeros(nb, dtype=np.int64)
    total = 0
    # (distinct (bucket, user) pairs first: half the time of uniqExact over every event)
    pairs = (f"SELECT intDiv(ts - {start}, {interval}) AS b, user, count() AS c "
             f"FROM {view.events} WHERE ({view.where(flt, params)}) AND ts >= {start} "
             f"AND ts < {end} GROUP BY b, user")
    for b, u, c in view.rows(
            f"SELECT b, uniqExactIf(assumeNotNull(user), user IS NOT NULL), sum(c) "
            f"FROM ({pairs}) GROUP BY GROUPING SETS ((b), ()){_USE_NULLS}", params):
        if b is None:
            total = int(u)
        else:
            users[int(b)], events[int(b)] = int(u), int(c)
    return total, UniqueRows(buckets.timestamps(), users.tolist(), events.tolist())


def unique_approx(view: View, flt: EventFilter, buckets: Buckets | None,
                  precision: int) -> tuple[list[float], float, int]:
    """HyperLogLog distinct users per bucket (one estimate when `buckets` is None), over
    the range, and every matching event; the sketch's registers are built in SQL."""
    if not 4 <= precision <= 18:
        raise ValueError("precision must be between 4 and 18")
    p = int(precision)
    m = 1 << p
    params = Params()
    where = view.where(flt, params)
    nb = buckets.count if buckets is not None else 1
    if buckets is not None:
        start = params.add(int(buckets.start), "Int64")
        bucket = f"intDiv(ts - {start}, {params.add(int(buckets.interval), 'Int64')})"
        where = (f"({where}) AND ts >= {start} AND "
                 f"ts < {params.add(int(buckets.end), 'Int64')}")
    else:
        bucket = "toInt64(0)"
    # rho: leading zeros of the hash's bits after the index, plus one (capped), as embedded;
    # the bit length comes from smearing the top set bit down and counting the ones.
    smear = f"bitShiftLeft(h, {p})"
    for shift in (1, 2, 4, 8, 16, 32):
        smear = f"bitOr(({smear}) AS _w{shift}, bitShiftRight(_w{shift}, {shift}))"
    registers = (
        f"SELECT b, idx, max(rho) AS r FROM (SELECT {bucket} AS b, sipHash64(user) AS h, "
        f"bitShiftRight(h, {64 - p}) AS idx, "
        f"least(64 - bitCount({smear}) + 1, {64 - p + 1}) AS rho "
        f"FROM {view.events} WHERE ({where}) AND user IS NOT NULL) GROUP BY b, idx")
    sketch = {int(b): (int(nz), float(s)) for b, nz, s in view.rows(
        f"WITH regs AS ({registers}) "
        f"SELECT b, count(), sum(exp2(-toFloat64(r))) FROM regs GROUP BY b "
        f"UNION ALL SELECT -1, count(), sum(exp2(-toFloat64(r))) "
        f"FROM (SELECT idx, max(r) AS r FROM regs GROUP BY idx)", params) if nz}
    params_n = Params()
    (events,), = view.rows(f"SELECT count() FROM {view.events} "
                           f"WHERE {view.where(flt, params_n)}", params_n)
    nonzero = np.zeros(nb + 1, dtype=np.float64)
    sums = np.zeros(nb + 1, dtype=np.float64)
    for b, (nz, s) in sketch.items():  # (bucket -1, the whole range, is the last row)
        nonzero[b], sums[b] = nz, s
    estimates = _estimates(nonzero, sums, m)
    overall = float(estimates[-1])
    per = estimates[:-1].tolist() if buckets is not None else [overall]
    return per, overall, int(events)


def _estimates(nonzero: np.ndarray, sums: np.ndarray, m: int) -> np.ndarray:
    """The embedded estimator from each sketch's nonzero registers and their sum of
    2^-register (zero registers add 1 each): HLL, linear counting for small sets."""
    mf = float(m)
    zeros = mf - nonzero
    alpha = 0.7213 / (1 + 1.079 / mf)
    raw = alpha * mf * mf / (sums + zeros)
    with np.errstate(divide="ignore"):
        linear = mf * np.log(mf / np.maximum(zeros, 1))
    small = (raw <= 2.5 * mf) & (zeros > 0)
    out: np.ndarray = np.where(small, linear, raw)
    return out
