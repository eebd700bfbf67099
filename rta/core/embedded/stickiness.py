"""Stickiness over the embedded store: users by the number of periods they were active in.

Reads the event type's per-user index (`user_index.py`: events already in (user, ts) order),
so each user's periods are a run of non-decreasing numbers and distinct (user, period) pairs
are where the run changes: no sort, no Python loop per event or user. Without an index (keys
out of range) the rows are gathered and sorted instead. Semantics: docs/statistics.md.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

import numpy as np

from rta.core.embedded.segments import first_per_group, gather, member_lookup, order_by
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.embedded.user_index import TIME_MASK, EventIndex
from rta.core.queries.filters import EventFilter
from rta.core.queries.stickiness_results import StickinessResult, stickiness_result
from rta.core.queries.stickiness_specs import StickinessQuery


def user_times(snap: Snapshot, flt: EventFilter, start: int | None, end: int,
               members: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(user codes, timestamps) of the events matching `flt` in [start, end) that have a
    user (one of `members`, codes, when given), in (user, ts) order."""
    member = member_lookup(members, snap)
    ix = EventIndex(snap)
    if ix.ok and flt.types is not None and len(flt.types) == 1:
        ev = ix.events(flt.types[0])
        mask = ix.mask(flt, ev)
        if member is not None:
            mask = member[ix.users_of(ev.key)] & (True if mask is None else mask)
        key = ev.key if mask is None else ev.key[mask]
        rel = key & TIME_MASK
        keep = rel < end - ix.tmin
        if start is not None:
            keep &= rel >= start - ix.tmin
        if not keep.all():
            key, rel = key[keep], rel[keep]
        return ix.users_of(key), rel + ix.tmin
    rows = gather(snap, [flt], start, end, member=member)
    ok = np.flatnonzero(rows.user >= 0)
    order = ok[order_by(rows.user[ok], rows.ts[ok])]
    return rows.user[order].astype(np.int64), rows.ts[order]


def active_pairs(users: np.ndarray, period: np.ndarray, width: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, period) pairs of rows in (user, ts) order, in that order."""
    first = first_per_group(users * width + period)
    return users[first], period[first]


def result(snap: Snapshot, q: StickinessQuery,
           members: np.ndarray | None = None) -> StickinessResult:
    grid = q.grid
    users, ts = user_times(snap, q.flt, grid.start_time, grid.end_time, members)
    du, _ = active_pairs(users, grid.index(ts), grid.count)
    runs = first_per_group(du)
    per_user = np.diff(np.append(runs, len(du)))
    return stickiness_result(q, np.bincount(per_user, minlength=grid.count + 1))
