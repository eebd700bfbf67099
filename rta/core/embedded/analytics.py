"""The embedded engine's analytics answers: kernel outputs turned into typed partials.

`EmbeddedBackend` calls these; they run the numpy kernels (`timeseries`, `counts`, `hll`)
over one snapshot and label group keys with the snapshot's dictionaries.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rta.core.embedded import counts as counts_mod
from rta.core.embedded import timeseries as ts_mod
from rta.core.embedded.store.snapshot import Snapshot
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
from rta.core.queries.buckets import Buckets
from rta.core.queries.filters import EventFilter


def series(snap: Snapshot, flt: EventFilter, buckets: Buckets, aggregation: str,
           metric: str | None, group_by: str | None, limit: int) -> SeriesData:
    res = ts_mod.timeseries(flt, snap, buckets, aggregation, metric, group_by, limit)
    integral = aggregation in ("count", "unique_users")
    stamps = buckets.timestamps()
    groups = tuple(GroupSeries(s.key, Total(_total(s.total_value, integral), s.total_count),
                               _rows(stamps, s.value, s.count, integral))
                   for s in res.series) if group_by else ()
    return SeriesData(_rows(stamps, res.value, res.count, integral),
                      Total(_total(res.total_value, integral), res.total_count),
                      groups, res.groups if group_by else 0)


def _total(value: float, integral: bool) -> float | int | None:
    if integral:
        return int(value) if math.isfinite(value) else 0
    return value if math.isfinite(value) else None


def _rows(stamps: list[int], values: np.ndarray, count: np.ndarray,
          integral: bool) -> SeriesRows:
    vals: list[Any]
    if integral:
        vals = values.astype(np.int64).tolist()
    else:
        vals = [v if v == v and v not in (math.inf, -math.inf) else None
                for v in values.tolist()]
    return SeriesRows(stamps, vals, count.tolist())


def count_groups(snap: Snapshot, flt: EventFilter, group_by: str, limit: int) -> GroupedCount:
    gc = counts_mod.group_counts(flt, snap, group_by)
    chosen = counts_mod.rank(gc.keys, gc.counts.astype(np.float64), gc.counts > 0, limit)
    shown = int(gc.counts[chosen].sum()) if chosen else 0
    groups = tuple(CountGroup(gc.keys.label(g), int(gc.counts[g]),
                              counts_mod.share(int(gc.counts[g]), gc.total)) for g in chosen)
    return GroupedCount(gc.total, groups, int(np.count_nonzero(gc.counts)),
                        gc.total - gc.missing - shown, gc.missing)


def unique_series(snap: Snapshot, flt: EventFilter, buckets: Buckets) -> tuple[int, UniqueRows]:
    res = ts_mod.timeseries(flt, snap, buckets, "unique_users", matched=True)
    # `events` counts every matching event, anonymous ones too, as without `interval`
    assert res.matched is not None
    return int(res.total_value), UniqueRows(buckets.timestamps(),
                                            res.value.astype(np.int64).tolist(),
                                            res.matched.tolist())


def unique_approx(snap: Snapshot, flt: EventFilter, buckets: Buckets | None,
                  precision: int) -> tuple[list[float], float, int]:
    per, overall, events = ts_mod.unique_series_approx(flt, snap, buckets, precision)
    return per.tolist(), overall, events


def top(snap: Snapshot, flt: EventFilter, prop: str, n: int, by_users: bool) -> TopData:
    res = counts_mod.top_values(flt, snap, prop, n, by_users=by_users)
    values = tuple(TopValue(res.keys.label(g), int(res.counts[g]), int(u),
                            counts_mod.share(int(res.counts[g]), res.with_value))
                   for g, u in zip(res.chosen, res.users.tolist(), strict=True))
    return TopData(res.total, res.with_value, res.distinct, values)
