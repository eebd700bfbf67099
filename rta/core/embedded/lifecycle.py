"""Lifecycle over the embedded store: per period, new, returning, resurrecting and dormant
users of one event (PostHog's definitions; docs/statistics.md, "Lifecycle").

Every matching event of all stored history is read in (user, ts) order (the per-type user
index): a user's first event gives the period they are new in, and the distinct (user,
period) pairs of the grid and the period before it give the rest by comparing each pair with
its neighbours — previous period active (returning) or not (resurrecting), next period
inactive (dormant in it). All vectorised over the pairs.

Thread rule: any thread, over one snapshot the caller holds for the whole query.
"""

from __future__ import annotations

import numpy as np

from rta.core.embedded.segments import first_per_group
from rta.core.embedded.stickiness import active_pairs, user_times
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.queries.stickiness_results import LifecycleResult, lifecycle_result
from rta.core.queries.stickiness_specs import LifecycleQuery


def result(snap: Snapshot, q: LifecycleQuery,
           members: np.ndarray | None = None) -> LifecycleResult:
    grid = q.grid
    n = grid.count
    users, ts = user_times(snap, q.flt, None, grid.end_time, members)  # all history
    rel = grid.index(ts, before=1)  # 0: the period before the grid; 1..n: the grid
    firsts = first_per_group(users)
    first_rel = np.full(int(users[-1]) + 1 if len(users) else 0, -1, dtype=np.int64)
    first_rel[users[firsts]] = rel[firsts]
    inside = rel >= 0
    du, dr = active_pairs(users[inside], rel[inside], n + 2)
    same_prev = np.zeros(len(du), dtype=bool)
    same_prev[1:] = (du[1:] == du[:-1]) & (dr[1:] == dr[:-1] + 1)
    same_next = np.zeros(len(du), dtype=bool)
    same_next[:-1] = same_prev[1:]
    counts = np.zeros((n, 4), dtype=np.int64)
    shown = dr >= 1
    new = shown & (first_rel[du] == dr)
    returning = shown & ~new & same_prev
    resurrecting = shown & ~new & ~same_prev
    dormant = (dr < n) & ~same_next  # inactive in the next period, which is in the grid
    for s, which, at in ((0, new, dr), (1, returning, dr), (2, resurrecting, dr),
                         (3, dormant, dr + 1)):
        counts[:, s] = np.bincount(at[which] - 1, minlength=n)[:n]
    return lifecycle_result(q, counts)
