"""Events by weekday x hour of day (the dashboards' heatmap), one numpy pass per block.

Thread rule: any thread, over one snapshot the caller holds (blocks are immutable).
"""

from __future__ import annotations

import numpy as np

from rta.core.embedded.store.snapshot import Snapshot
from rta.core.queries.filters import EventFilter
from rta.core.queries.timeparse import DAY, HOUR

CELLS = 168


def _hour_cell_counts(ts: np.ndarray, offset: int) -> np.ndarray:
    """Events per cell for time-sorted `ts`: binary search on the local hour boundaries
    instead of bucketing every event (a day of events spans ~25 hours)."""
    first = (int(ts[0]) + offset) // HOUR
    last = (int(ts[-1]) + offset) // HOUR
    hours = np.arange(first, last + 2, dtype=np.int64)  # local hour indexes, one past the end
    edges = np.searchsorted(ts, hours * HOUR - offset, "left")
    per_hour = np.diff(edges).astype(np.float64)
    h = hours[:-1]
    cell = ((h // 24 + 3) % 7) * 24 + h % 24  # 1970-01-01 was a Thursday (Mon = 0)
    return np.bincount(cell, weights=per_hour, minlength=CELLS)


def heatmap(snap: Snapshot, flt: EventFilter, measure: str, metric: str | None,
            offset: int) -> np.ndarray:
    """See `Backend.heatmap`."""
    counts = np.zeros(CELLS, dtype=np.float64)
    sums = np.zeros(CELLS, dtype=np.float64)
    mins = np.full(CELLS, np.inf)
    maxs = np.full(CELLS, -np.inf)
    pairs: list[np.ndarray] = []
    for block, sl, mask in flt.select(snap):
        ts = block.ts[sl]
        if mask is None and metric is None and measure != "unique_users" and len(ts):
            counts += _hour_cell_counts(ts, offset)
            continue
        if mask is not None:
            ts = ts[mask]
        local = ts + offset
        days = np.floor_divide(local, DAY)
        hour = np.floor_divide(local - days * DAY, HOUR)
        cell = ((days + 3) % 7) * 24 + hour  # 1970-01-01 was a Thursday (Mon = 0)
        if measure == "unique_users":
            users = block.user[sl] if mask is None else block.user[sl][mask]
            ok = users >= 0
            pairs.append(cell[ok] * (1 << 32) + users[ok].astype(np.int64))
            continue
        if metric is None:
            counts += np.bincount(cell, minlength=CELLS)
            continue
        vals = block.numeric(metric)[sl]
        if mask is not None:
            vals = vals[mask]
        ok = ~np.isnan(vals)
        c, v = cell[ok], vals[ok]
        counts += np.bincount(c, minlength=CELLS)
        sums += np.bincount(c, weights=v, minlength=CELLS)
        if measure in ("min", "max") and len(c):
            np.minimum.at(mins, c, v)
            np.maximum.at(maxs, c, v)
    if measure == "unique_users":
        uniq = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
        return np.bincount(uniq >> 32, minlength=CELLS).astype(np.float64)
    if measure == "sum":
        return sums
    if measure == "avg":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    if measure == "min":
        return np.where(np.isfinite(mins), mins, np.nan)
    if measure == "max":
        return np.where(np.isfinite(maxs), maxs, np.nan)
    return counts
