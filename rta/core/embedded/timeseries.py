"""Time series: epoch-aligned, zero-filled buckets of any aggregation, optionally grouped.

Per-block partial aggregation over contiguous runs: rows are time-sorted, so each bucket is
one run of a part's selected rows, a binary search per edge away (only the edges inside the
block's span). Counts need no per-row work; sums keep bincount's row order; extremes reduce
per run; distinct users scatter each run into its bucket's bitmap row; exact percentiles
select (np.partition) per bucket over the gathered runs, and the whole range's from the
window between the per-bucket order statistics. Grouped series fold per-row keys instead.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rta.core.embedded.counts import BITMAP_LIMIT, DistinctCounter, GroupKeys, Part, rank, select
from rta.core.embedded.hll import HyperLogLog
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.queries.buckets import (  # noqa: F401  (re-exported for the kernels' callers)
    AGGREGATIONS,
    AUTO_TARGET,
    MAX_BUCKETS,
    METRIC_AGGREGATIONS,
    NICE_INTERVALS,
    QUANTILES,
    Buckets,
    auto_interval,
    make_buckets,
)
from rta.core.queries.filters import EventFilter

SHORT_RUN = 64  # rows per bucket run below which one vectorised scatter beats a loop


class Accumulator:
    """One aggregation over `size` keys, fed block by block, merged in place."""

    def __init__(self, aggregation: str, size: int, n_users: int) -> None:
        self.aggregation = aggregation
        self.size = size
        self.counts = np.zeros(size, dtype=np.int64)
        self.sums: np.ndarray | None = None
        self.extreme: np.ndarray | None = None
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.distinct: DistinctCounter | None = None
        if aggregation in ("sum", "avg"):
            self.sums = np.zeros(size, dtype=np.float64)
        elif aggregation == "min":
            self.extreme = np.full(size, np.inf)
        elif aggregation == "max":
            self.extreme = np.full(size, -np.inf)
        elif aggregation == "unique_users":
            self.distinct = DistinctCounter(size, n_users)

    def add(self, keys: np.ndarray, values: np.ndarray | None = None,
            users: np.ndarray | None = None) -> None:
        """Fold rows in: `keys` in [0, size); `values` (metric, no NaN) or `users` as needed."""
        if not len(keys):
            return
        if self.distinct is not None:
            assert users is not None
            has_user = users >= 0
            self.counts += np.bincount(keys[has_user], minlength=self.size)
            self.distinct.add(keys, users)
            return
        self.counts += np.bincount(keys, minlength=self.size)
        if self.aggregation == "count":
            return
        assert values is not None
        if self.sums is not None:
            self.sums += np.bincount(keys, weights=values, minlength=self.size)
        elif self.extreme is not None:
            ufunc = np.minimum if self.aggregation == "min" else np.maximum
            ufunc.at(self.extreme, keys, values)
        else:
            self.keys.append(keys)
            self.values.append(values)

    def add_counts(self, counts: np.ndarray) -> None:
        self.counts += counts

    def add_runs(self, values: np.ndarray, pos: np.ndarray) -> None:
        """Fold in values whose key k is the contiguous run values[pos[k]:pos[k + 1]]
        (no NaN): counts from the run lengths, sums in the same row order as `add`, and
        extremes per run (order-free), so results match `add` exactly."""
        counts = np.diff(pos)
        self.counts += counts
        lo, hi = int(pos[0]), int(pos[-1])
        if self.aggregation == "count" or hi == lo:
            return
        if self.sums is not None:
            keys = np.repeat(np.arange(self.size, dtype=np.int64), counts)
            self.sums += np.bincount(keys, weights=values[lo:hi], minlength=self.size)
        elif self.extreme is not None:
            has = np.flatnonzero(counts)
            ufunc = np.minimum if self.aggregation == "min" else np.maximum
            per_run = ufunc.reduceat(values[lo:hi], pos[has] - lo)
            self.extreme[has] = ufunc(self.extreme[has], per_run)
        else:
            raise ValueError(f"add_runs does not gather {self.aggregation!r}")

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(value per key as float64 with NaN for "no value", contributing events per key)."""
        agg = self.aggregation
        empty = self.counts == 0
        if agg == "count":
            return self.counts.astype(np.float64), self.counts
        if agg == "unique_users":
            assert self.distinct is not None
            return self.distinct.counts().astype(np.float64), self.counts
        if agg == "sum":
            assert self.sums is not None
            return self.sums, self.counts
        if agg == "avg":
            assert self.sums is not None
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(empty, np.nan, self.sums / np.maximum(self.counts, 1)), \
                    self.counts
        if self.extreme is not None:
            return np.where(empty, np.nan, self.extreme), self.counts
        return self._quantiles(QUANTILES[agg]), self.counts

    def whole_quantile(self, q: float) -> float:
        """The quantile over every value added, ignoring keys (one O(n) selection)."""
        if not self.values:
            return float("nan")
        values = np.concatenate(self.values) if len(self.values) > 1 else self.values[0]
        self.values = [values]
        self.keys = [np.concatenate(self.keys)] if len(self.keys) > 1 else self.keys
        return _select_quantile(values, q)

    def _quantiles(self, q: float) -> np.ndarray:
        """Exact quantile per key with linear interpolation (SQL quantile_cont).

        Few keys: group rows by key (a radix sort of small ints) and select the two order
        statistics of each group with np.partition, O(n). Many keys: sort by value, then a
        stable sort by key. No per-row Python either way.
        """
        out = np.full(self.size, np.nan)
        if not self.keys:
            return out
        keys = np.concatenate(self.keys)
        values = np.concatenate(self.values)
        counts = self.counts
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        has = np.flatnonzero(counts > 0)
        if self.size == 1:
            grouped = values
        else:
            small = keys.astype(np.uint16) if self.size <= 1 << 16 else keys
            grouped = values[np.argsort(small, kind="stable")]
        if len(has) <= 256:
            for k in has.tolist():
                out[k] = _select_quantile(grouped[offsets[k]:offsets[k] + counts[k]], q)
            return out
        if self.size <= 1 << 16:
            by_value = np.argsort(values)
            order = by_value[np.argsort(keys[by_value].astype(np.uint16), kind="stable")]
        else:
            order = np.lexsort((values, keys))
        ordered = values[order]
        n = counts[has]
        at = q * (n - 1)
        los = np.floor(at).astype(np.int64)
        his = np.minimum(los + 1, n - 1)
        base = offsets[has]
        v_lo = ordered[base + los]
        v_hi = ordered[base + his]
        out[has] = v_lo + (v_hi - v_lo) * (at - los)
        return out


def _select_quantile(values: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile of a non-empty array by selection instead of sorting:
    the upper neighbour is the minimum of the part np.partition leaves above the lower one."""
    pos = q * (len(values) - 1)
    lo = int(np.floor(pos))
    part = np.partition(values, lo)
    low = float(part[lo])
    if lo + 1 >= len(values) or pos == lo:
        return low
    high = float(part[lo + 1:].min())
    return low + (high - low) * (pos - lo)


@dataclass
class Series:
    key: object
    value: np.ndarray  # per bucket
    count: np.ndarray
    total_value: float
    total_count: int


@dataclass
class SeriesResult:
    buckets: Buckets
    value: np.ndarray  # per bucket, NaN = no value
    count: np.ndarray
    total_value: float
    total_count: int
    series: list[Series] = field(default_factory=list)
    groups: int = 0  # distinct groups seen (series are the top `limit` of them)
    # every selected event per bucket, when asked for (`timeseries(matched=True)`): for
    # unique_users `count` holds only the events with a user
    matched: np.ndarray | None = None


def _metric_rows(part: Part, metric: str | None, aggregation: str
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """(ts, values, users, row filter) for a part: metric rows without a value drop out."""
    block = part.block
    ts = part.take(block.ts)
    keep = np.ones(len(ts), dtype=bool)
    values = users = None
    if aggregation in METRIC_AGGREGATIONS or (aggregation == "count" and metric):
        assert metric is not None
        v = part.numeric(metric)
        if v is None:
            keep[:] = False
            values = np.zeros(len(ts))
        else:
            keep = ~np.isnan(v)
            values = v
    elif aggregation == "unique_users":
        users = part.take(block.user)
    return ts, values, users, keep


def _event_counts(parts: list[Part], buckets: Buckets) -> np.ndarray:
    """Selected events per bucket with no per-row work: binary search on the sorted
    timestamps, then on the selected row positions when a mask applies."""
    edges = buckets.edges()
    counts = np.zeros(buckets.count, dtype=np.int64)
    for part in parts:
        counts += np.diff(_bucket_bounds(part, edges))
    return counts


def timeseries(flt: EventFilter, snap: Snapshot, buckets: Buckets, aggregation: str,
               metric: str | None = None, group_by: str | None = None,
               limit: int = 10, matched: bool = False) -> SeriesResult:
    """`aggregation` of `metric` per bucket over the filter's rows (the filter's time range
    should be the buckets' range), plus one series per top-`limit` value of `group_by`.
    `matched` also counts every selected event per bucket (`SeriesResult.matched`), from
    the same selection."""
    parts = list(select(flt, snap))
    result = _series(parts, snap, buckets, aggregation, metric, group_by, limit)
    if matched:
        result.matched = _event_counts(parts, buckets)
    return result


def _series(parts: list[Part], snap: Snapshot, buckets: Buckets, aggregation: str,
            metric: str | None, group_by: str | None, limit: int) -> SeriesResult:
    n_users = len(snap.dicts.users)
    nb = buckets.count
    overall = Accumulator(aggregation, nb, n_users)
    # Distinct users do not add up across buckets: the whole range needs its own bitmap.
    # Quantiles of the whole range come from the values the buckets already gathered.
    total = Accumulator(aggregation, 1, n_users) if aggregation == "unique_users" else None
    if aggregation == "count" and not metric:
        overall.add_counts(_event_counts(parts, buckets))
    elif aggregation in QUANTILES:
        assert metric is not None
        value, count, total_value = _quantile_series(parts, metric, buckets,
                                                     QUANTILES[aggregation])
        return _finish(SeriesResult(buckets, value, count, total_value, int(count.sum())),
                       parts, snap, buckets, aggregation, metric, group_by, limit, n_users)
    elif metric and aggregation in ("count", "sum", "avg", "min", "max"):
        edges = buckets.edges()
        for part in parts:
            got = _present_runs(part, metric, edges)
            if got is not None:
                overall.add_runs(*got)
    elif aggregation == "unique_users" and nb * (n_users + 1) <= BITMAP_LIMIT:
        value, count, total_users = _unique_series(parts, buckets, n_users)
        return _finish(SeriesResult(buckets, value, count, float(total_users),
                                    int(count.sum())),
                       parts, snap, buckets, aggregation, metric, group_by, limit, n_users)
    else:
        for part in parts:
            ts, values, users, keep = _metric_rows(part, metric, aggregation)
            if not keep.all():
                ts = ts[keep]
                values = values[keep] if values is not None else None
            b = buckets.index(ts)
            overall.add(b, values, users)
            if total is not None:
                total.add(np.zeros(len(b), dtype=np.int64), values, users)
    value, count = overall.result()
    if total is not None:
        tv, tc = total.result()
        total_value, total_count = float(tv[0]), int(tc[0])
    elif aggregation in QUANTILES:
        total_count = int(count.sum())
        total_value = overall.whole_quantile(QUANTILES[aggregation])
    else:
        total_count = int(count.sum())
        total_value = _combine(aggregation, value, count, overall)
    return _finish(SeriesResult(buckets, value, count, total_value, total_count),
                   parts, snap, buckets, aggregation, metric, group_by, limit, n_users)


def _finish(result: SeriesResult, parts: list[Part], snap: Snapshot, buckets: Buckets,
            aggregation: str, metric: str | None, group_by: str | None, limit: int,
            n_users: int) -> SeriesResult:
    if group_by is not None:
        _grouped(result, parts, snap, buckets, aggregation, metric, group_by, limit, n_users)
    return result


def _bucket_bounds(part: Part, edges: np.ndarray) -> np.ndarray:
    """Positions of the bucket edges among the part's selected rows.

    Rows are time-sorted, so bucket b is the contiguous range [pos[b], pos[b+1]) of the
    selection: one binary search per edge, no per-row bucket index. Rows outside the edges
    fall outside every range.
    """
    ts = part.block.ts[part.sl]
    n = len(ts)
    pos = np.zeros(len(edges), dtype=np.int64)
    if not n:
        return pos
    # Only edges inside the block's time span need a search (a block spans few buckets).
    a = int(np.searchsorted(edges, ts[0], "right"))
    b = int(np.searchsorted(edges, ts[-1], "right"))
    inner = np.searchsorted(ts, edges[a:b], "left")
    if part.mask is not None:
        rows = part.rows()
        inner = np.searchsorted(rows, inner + part.sl.start, "left")
        n = len(rows)
    pos[a:b] = inner
    pos[b:] = n
    return pos


def _drop_positions(pos: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """`pos` shifted for the removal of the (sorted) row positions in `dropped`."""
    return pos - np.searchsorted(dropped, pos, "left") if len(dropped) else pos


def _present_runs(part: Part, metric: str, edges: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, pos): the part's values of `metric` with the absent ones (NaN) removed, and
    the bucket edges' positions among them; None when the block lacks the metric."""
    values = part.numeric(metric)
    if values is None:
        return None
    pos = _bucket_bounds(part, edges)
    lo, hi = int(pos[0]), int(pos[-1])
    absent = np.isnan(values[lo:hi])
    nan = np.flatnonzero(absent)
    if len(nan):
        # (compress = nonzero + take: 4-5x faster than boolean indexing or np.delete when
        # absent values are scattered, as optional properties are)
        values = np.compress(~absent, values[lo:hi])
        pos = _drop_positions(pos - lo, nan)
    return values, pos


def _unique_series(parts: list[Part], buckets: Buckets, n_users: int
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Distinct users per bucket, events with a user per bucket, distinct users overall.

    One bitmap row of n_users + 1 flags per bucket; each bucket's contiguous run of user
    codes is scattered straight into its row (no int64 keys, no masks): the "no user" code
    -1 lands in the spare last slot. The whole range is the OR of the rows.
    """
    nb = buckets.count
    edges = buckets.edges()
    width = n_users + 1
    bitmap = np.zeros((nb, width), dtype=bool)
    flat = bitmap.reshape(-1)
    counts = np.zeros(nb, dtype=np.int64)
    for part in parts:
        users = part.take(part.block.user)
        pos = _bucket_bounds(part, edges)
        counts += np.diff(_drop_positions(pos, np.flatnonzero(users < 0)))
        hit = np.flatnonzero(pos[1:] > pos[:-1])
        if len(hit) * SHORT_RUN > pos[-1] - pos[0]:  # many short runs: one scatter
            lo, hi = int(pos[0]), int(pos[-1])
            run = users[lo:hi].astype(np.int64)
            b = np.repeat(np.arange(nb, dtype=np.int64), np.diff(pos))
            run[run < 0] = n_users
            flat[b * width + run] = True
            continue
        for k in hit.tolist():
            bitmap[k][users[pos[k]:pos[k + 1]]] = True
    rows = bitmap[:, :n_users]
    per_bucket = np.count_nonzero(rows, axis=1)
    total = int(np.count_nonzero(rows.any(axis=0))) if nb > 1 else int(per_bucket[0])
    return per_bucket.astype(np.float64), counts, total


def _quantile_series(parts: list[Part], metric: str, buckets: Buckets, q: float
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact quantile (linear interpolation, SQL quantile_cont) per bucket and overall.

    Each part's present values split into contiguous per-bucket runs (rows are time-sorted),
    so every bucket is one selection (np.partition) over the concatenation of its runs; no
    sort, no per-row keys. The whole range's quantile searches only the window between the
    smallest and largest per-bucket order statistics (exact, with a full selection as the
    fallback).
    """
    nb = buckets.count
    edges = buckets.edges()
    runs: list[list[np.ndarray]] = [[] for _ in range(nb)]
    for part in parts:
        got = _present_runs(part, metric, edges)
        if got is None:
            continue
        values, pos = got
        for k in np.flatnonzero(pos[1:] > pos[:-1]).tolist():
            runs[k].append(values[pos[k]:pos[k + 1]])
    out = np.full(nb, np.nan)
    counts = np.zeros(nb, dtype=np.int64)
    groups: list[np.ndarray] = []
    lows: list[float] = []
    highs: list[float] = []
    for k in range(nb):
        if not runs[k]:
            continue
        group = np.concatenate(runs[k])  # a private copy: partitioned in place below
        runs[k] = []
        counts[k] = len(group)
        out[k], low, high = _partition_quantile(group, q)
        groups.append(group)
        lows.append(low)
        highs.append(high)
    if not groups:
        return out, counts, float("nan")
    if len(groups) == 1:
        return out, counts, float(out[counts > 0][0])
    return out, counts, _windowed_quantile(groups, q, min(lows), max(highs))


def _partition_quantile(values: np.ndarray, q: float) -> tuple[float, float, float]:
    """(quantile, lower, upper order statistic) of a non-empty array, partitioning it in
    place; same arithmetic as `_select_quantile`."""
    pos = q * (len(values) - 1)
    lo = int(np.floor(pos))
    values.partition(lo)
    low = float(values[lo])
    high = float(values[lo + 1:].min()) if lo + 1 < len(values) else low
    if lo + 1 >= len(values) or pos == lo:
        return low, low, high
    return low + (high - low) * (pos - lo), low, high


def _windowed_quantile(groups: list[np.ndarray], q: float, low: float, high: float) -> float:
    """The quantile over all `groups` (no NaN) from the values in [low, high] only, when
    the order statistics it needs are among them; otherwise one full selection."""
    n = sum(len(g) for g in groups)
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    need = lo + 1 if lo + 1 < n and pos != lo else lo
    below = 0
    window: list[np.ndarray] = []
    for g in groups:
        below += int(np.count_nonzero(g < low))
        window.append(g[(g >= low) & (g <= high)])
    inside = np.concatenate(window)
    if below <= lo and need < below + len(inside):
        inside.partition(lo - below)
        v_lo = float(inside[lo - below])
        if need == lo:
            return v_lo
        v_hi = float(inside[lo - below + 1:].min())
        return v_lo + (v_hi - v_lo) * (pos - lo)
    return _select_quantile(np.concatenate(groups), q)


def _combine(aggregation: str, value: np.ndarray, count: np.ndarray,
             acc: Accumulator) -> float:
    """The whole-range value from mergeable per-bucket partials."""
    if aggregation == "count":
        return float(count.sum())
    if aggregation == "sum":
        return float(value.sum())
    if aggregation == "avg":
        assert acc.sums is not None
        return float(acc.sums.sum() / count.sum()) if count.sum() else float("nan")
    present = value[count > 0]
    if not len(present):
        return float("nan")
    return float(present.min() if aggregation == "min" else present.max())


def _grouped(result: SeriesResult, parts: list[Part], snap: Snapshot, buckets: Buckets,
             aggregation: str, metric: str | None, group_by: str, limit: int,
             n_users: int) -> None:
    """Two passes: totals per group pick the top `limit` series, then their buckets."""
    keys = GroupKeys(group_by, snap, parts)
    per_group = Accumulator(aggregation, keys.size, n_users)
    cached: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
    for part in parts:
        ts, values, users, keep = _metric_rows(part, metric, aggregation)
        gid = keys.ids(part)
        keep &= gid >= 0
        if not keep.all():
            ts, gid = ts[keep], gid[keep]
            values = values[keep] if values is not None else None
            users = users[keep] if users is not None else None
        per_group.add(gid, values, users)
        cached.append((ts, gid, values, users))
    gvalue, gcount = per_group.result()
    additive = aggregation in ("count", "sum", "unique_users")
    score = np.nan_to_num(gvalue, nan=-np.inf) if additive else gcount.astype(np.float64)
    chosen = rank(keys, score, gcount > 0, limit)
    result.groups = int(np.count_nonzero(gcount > 0))
    if not chosen:
        return
    lut = np.full(keys.size, -1, dtype=np.int64)
    lut[np.asarray(chosen, dtype=np.int64)] = np.arange(len(chosen))
    nb = buckets.count
    acc = Accumulator(aggregation, len(chosen) * nb, n_users)
    for ts, gid, values, users in cached:
        sidx = lut[gid]
        sel = sidx >= 0
        acc.add(sidx[sel] * nb + buckets.index(ts[sel]),
                values[sel] if values is not None else None,
                users[sel] if users is not None else None)
    svalue, scount = acc.result()
    svalue = svalue.reshape(len(chosen), nb)
    scount = scount.reshape(len(chosen), nb)
    for i, group in enumerate(chosen):
        result.series.append(Series(keys.label(group), svalue[i], scount[i],
                                    float(gvalue[group]), int(gcount[group])))


def unique_series_approx(flt: EventFilter, snap: Snapshot, buckets: Buckets | None,
                         precision: int) -> tuple[np.ndarray, float, int]:
    """HyperLogLog distinct users per bucket (or one total when `buckets` is None):
    (estimates, whole-range estimate, events matched, anonymous ones included)."""
    nb = buckets.count if buckets is not None else 1
    per_bucket = HyperLogLog(nb, precision)
    whole = HyperLogLog(1, precision)
    events = 0
    for part in select(flt, snap):
        users = part.take(part.block.user)
        events += len(users)
        ok = users >= 0
        users = users[ok]
        whole.add(users)
        if buckets is not None:
            per_bucket.add(users, buckets.index(part.take(part.block.ts)[ok]))
    overall = float(whole.estimates()[0])
    return (per_bucket.estimates() if buckets is not None else np.array([overall])), \
        overall, events
