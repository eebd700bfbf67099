"""Matching events' raw timestamps (and a numeric property): for callers that bucket rows
their own way, such as alert rules priming their rings and backtests.

Thread rule: any thread, over one snapshot the caller holds (blocks are immutable).
"""

from __future__ import annotations

import numpy as np

from rta.core.embedded.store.snapshot import Snapshot
from rta.core.queries.filters import EventFilter


def timestamps(snap: Snapshot, flt: EventFilter, metric: str | None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """See `Backend.timestamps`."""
    parts_t: list[np.ndarray] = []
    parts_v: list[np.ndarray] = []
    for block, sl, mask in flt.select(snap):
        ts = block.ts[sl]
        parts_t.append(ts if mask is None else ts[mask])
        if metric is not None:
            v = block.numeric(metric)[sl]
            parts_v.append(v if mask is None else v[mask])
    ts_all = np.concatenate(parts_t) if parts_t else np.zeros(0, np.int64)
    if metric is None:
        return ts_all, None
    return ts_all, np.concatenate(parts_v) if parts_v else np.zeros(0, np.float64)
