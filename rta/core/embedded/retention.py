"""Cohort retention: of the users who entered in a period, how many came back N periods later.

Semantics (docs/statistics.md has the long form):

- Periods are a grid of `periodLength` ms starting at startTime (default: `periods` periods
  before the start of the current period, aligned to multiples of periodLength since the
  epoch, i.e. UTC days for daily periods). Cohort i covers [start + i*L, start + (i+1)*L);
  cohorts run up to endTime (default now).
- `retentionType`: `first_time` (default) — a user belongs to the cohort of their first-ever
  entry event (events before startTime count as "ever"; users whose first entry is outside
  [startTime, endTime] belong to no cohort); `recurring` — a user belongs to the cohort of
  every period in which they performed the entry event.
- The membership's entry time is its (first) entry event in that period. Return period N of a
  membership in cohort i is grid period i + N; a retention event counts when it is at or after
  the entry time (only matters in period 0).
- `criterion`: `on` (default) — counted in period N if they returned during period N;
  `on_or_after` — counted in period N if they returned in period N or any later period
  (up to `periods`).
- Output periods 0..periods. Periods that have not started yet (after `now`) are null; the
  weighted average row for period N is sum(counts) / sum(sizes) over cohorts where period N
  has started.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.embedded.funnel import stored_type
from rta.core.embedded.segments import (
    first_per_group,
    gather,
    last_per_group,
    member_lookup,
    order_by,
    resolve_segment,
    value_labels,
)
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.embedded.user_index import EventIndex, TypeIndex
from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR
from rta.core.queries.behaviour_results import CohortResult
from rta.core.queries.behaviour_specs import (  # noqa: F401  (re-exported for callers)
    CRITERIA,
    MAX_COHORTS,
    MAX_PERIODS,
    CohortQuery,
    parse_cohort,
)
from rta.core.queries.filters import EventFilter
from rta.core.queries.retention_grid import Group, cohort_result, with_breakdown
from rta.core.queries.timeparse import now_ms

if TYPE_CHECKING:
    from rta.core.engine import Engine



def run(engine: Engine, body: Any, now: int | None = None,
        snap: Snapshot | None = None) -> dict[str, Any]:
    """POST /queries/cohort as a dict call (the saved segment resolved over `snap`)."""
    q = parse_cohort(body, now_ms() if now is None else now)
    snap = snap or engine.snapshot()
    return result(snap, q, resolve_segment(engine, q.segment, snap)).to_json()


def result(snap: Snapshot, q: CohortQuery, seg: np.ndarray | None) -> CohortResult:
    """The retention grid over `snap`, restricted to the users `seg` (codes) when given,
    and split by `q.breakdown` (its value at each membership's entry event) when asked."""
    periods, length, start, end, ncoh = q.periods, q.length, q.start, q.end, q.cohorts
    member = member_lookup(seg, snap)
    props = (q.breakdown,) if q.breakdown is not None else ()

    horizon = max(min(q.now + 1, start + (ncoh + periods) * length), start + 1)
    ix = EventIndex(snap)
    values: dict[str, np.ndarray] | None
    entry = None if q.entry is None else stored_type(snap, q.entry_flt, q.entry)
    ret = None if q.ret is None else stored_type(snap, q.ret_flt, q.ret)
    if ix.ok and entry is not None and ret is not None:  # (page steps: one type stored)
        u, t, gid, ru, rt = _indexed(ix, entry, q.entry_flt, ret, q.ret_flt, member,
                                     q.rtype, start, end, length, ncoh, horizon)
        values = ix.values(gid, q.breakdown) if q.breakdown is not None else None
    else:
        u, t, values, ru, rt = _gathered(snap, q.entry_flt, q.ret_flt, member, q.rtype,
                                         start, end, length, ncoh, periods, horizon, props)
    nusers = len(snap.dicts.users)
    whole = cohort_result(q, *_grid(q, nusers, u, t, ru, rt))
    if values is None:
        return whole
    ids, labels = value_labels(values, snap)
    kinds = _kinds(values)
    groups: list[Group] = []
    for g in np.unique(ids).tolist():
        sel = ids == g
        kind = 0 if g < 0 else int(kinds[np.flatnonzero(sel)[0]])
        groups.append((kind, None if g < 0 else labels[g],
                       *_grid(q, nusers, u[sel], t[sel], ru, rt)))
    return with_breakdown(q, whole, groups)


def _kinds(values: dict[str, np.ndarray]) -> np.ndarray:
    """Per row, the kind `value_labels` groups it by: 1 text, 2 number, 3 boolean, 0 none."""
    kind = np.zeros(len(values[STR]), dtype=np.int8)
    kind[values[BOOL] >= 0] = 3
    kind[(values[INT] != INT64_MIN) | ~np.isnan(values[FLOAT])] = 2
    kind[values[STR] >= 0] = 1
    return kind


def _grid(q: CohortQuery, nusers: int, u: np.ndarray, t: np.ndarray, ru: np.ndarray,
          rt: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(users, cohort sizes, grid) of the memberships (u, t), sorted by (user, cohort), and
    the retention events (ru, rt), one per (user, grid period)."""
    periods, length, rtype, start, ncoh = q.periods, q.length, q.rtype, q.start, q.cohorts
    cohort = (t - start) // length
    mkey = u.astype(np.int64) * ncoh + cohort
    sizes = np.bincount(cohort, minlength=ncoh)[:ncoh] if len(cohort) else np.zeros(ncoh, int)
    rp = (rt - start) // length

    width = periods + 1
    hit_m: list[np.ndarray] = []
    hit_n: list[np.ndarray] = []
    if rtype == "first_time":  # one membership per user: a dense lookup, no search
        slot = np.full(nusers + 1, -1, dtype=np.int64)
        slot[u] = np.arange(len(u))
        mi = slot[ru]
        has = mi >= 0
        mi_c = np.where(has, mi, 0)
        nn = rp - (cohort[mi_c] if len(cohort) else 0)
        ok = has & (nn >= 0) & (nn < width)
        ok &= rt >= (t[mi_c] if len(t) else 0)
        hit_m.append(mi[ok])
        hit_n.append(nn[ok])
    for n in range(width if rtype == "recurring" else 0):
        c = rp - n
        ok = (c >= 0) & (c < ncoh)
        if not ok.any():
            continue
        key = ru[ok].astype(np.int64) * ncoh + c[ok]
        idx = np.searchsorted(mkey, key)
        idx_c = np.minimum(idx, max(len(mkey) - 1, 0))
        found = (idx < len(mkey)) & (mkey[idx_c] == key) if len(mkey) else np.zeros(
            len(key), bool)
        found &= rt[ok] >= t[idx_c] if len(mkey) else found
        hit_m.append(idx_c[found])
        hit_n.append(np.full(int(found.sum()), n, dtype=np.int64))
    hm = np.concatenate(hit_m) if hit_m else np.zeros(0, np.int64)
    hn = np.concatenate(hit_n) if hit_n else np.zeros(0, np.int64)
    if q.criterion == "on":
        pairs = hm * width + hn  # unique: one retention row per (user, grid period)
        flat = cohort[pairs // width] * width + pairs % width
        grid = np.bincount(flat, minlength=ncoh * width).reshape(ncoh, width)
    else:
        best = np.full(len(mkey), -1, dtype=np.int64)
        np.maximum.at(best, hm, hn)
        grid = np.zeros((ncoh, width), dtype=np.int64)
        has = best >= 0
        np.add.at(grid, (cohort[has], best[has]), 1)
        grid = np.cumsum(grid[:, ::-1], axis=1)[:, ::-1]

    users = len(u) if rtype == "first_time" else len(np.unique(u))
    return users, sizes, grid


def _indexed(ix: EventIndex, entry: str, entry_flt: EventFilter, ret: str,
             ret_flt: EventFilter, member: np.ndarray | None, rtype: str, start: int,
             end: int, length: int, ncoh: int, horizon: int,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Memberships (user, entry ts, entry event's gid) sorted by (user, cohort), and the
    latest retention event per (user, grid period), read off the per-type user indexes: they
    are already ordered by (user, ts, arrival), so every "first/last per group" is a scan,
    not a sort."""
    ev = _events(ix, entry, entry_flt, member)
    if rtype == "first_time":
        first = first_per_group(ix.users_of(ev.key))
        key = ev.key[first]
        t = ix.ts_of(key)
        keep = (t >= start) & (t < end)  # the first-ever entry, if it lies in the range
        u, t, gid = ix.users_of(key[keep]), t[keep], ev.gid[first][keep]
    else:
        t = ix.ts_of(ev.key)
        rows = np.flatnonzero((t >= start) & (t < end))
        u, t, gid = ix.users_of(ev.key[rows]), t[rows], ev.gid[rows]
        k0 = u * ncoh + (t - start) // length  # sorted: users, then time
        first = first_per_group(k0)
        u, t, gid = u[first], t[first], gid[first]
    r = _events(ix, ret, ret_flt, member)
    rt = ix.ts_of(r.key)
    rows = np.flatnonzero((rt >= start) & (rt < horizon))
    ru, rt = ix.users_of(r.key[rows]), rt[rows]
    width = (horizon - start) // length + 2  # grid periods up to the horizon
    last = last_per_group(ru * width + (rt - start) // length)  # sorted: users, then time
    return u, t, gid, ru[last], rt[last]


def _events(ix: EventIndex, etype: str, flt: EventFilter,
            member: np.ndarray | None) -> TypeIndex:
    ev = ix.events(etype)
    mask = ix.mask(flt, ev)
    if member is not None:
        extra = member[ix.users_of(ev.key)]
        mask = extra if mask is None else mask & extra
    return ev.select(mask)


def _gathered(snap: Snapshot, entry_flt: EventFilter, ret_flt: EventFilter,
              member: np.ndarray | None, rtype: str, start: int, end: int, length: int,
              ncoh: int, periods: int, horizon: int, props: tuple[str, ...] = (),
              ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray] | None, np.ndarray,
                         np.ndarray]:
    """Like `_indexed`, by gathering and sorting rows (when keys cannot be indexed, or the
    entry or return is any event matching filters), with the values of `props[0]` at each
    membership's entry event instead of its gid."""
    # memberships: (user, cohort, entry ts), sorted by key = user * ncoh + cohort
    if rtype == "first_time":
        rows = gather(snap, [entry_flt], None, end, member=member, props=props)
        ok = np.flatnonzero(rows.user >= 0)
        order = ok[order_by(rows.user[ok], rows.ts[ok])]
        first = order[first_per_group(rows.user[order])]
        at = first[rows.ts[first] >= start]
    else:
        rows = gather(snap, [entry_flt], start, end, member=member, props=props)
        ok = np.flatnonzero(rows.user >= 0)
        k0 = rows.user[ok].astype(np.int64) * ncoh + (rows.ts[ok] - start) // length
        order = order_by(k0, rows.ts[ok])
        at = ok[order][first_per_group(k0[order])]
    u, t = rows.user[at], rows.ts[at]
    values = {k: v[at] for k, v in rows.props[props[0]].items()} if props else None
    # retention events, one per (user, grid period): the latest, which best satisfies
    # "at or after the entry time" in period 0
    r = gather(snap, [ret_flt], start, horizon, member=member)
    keep = r.user >= 0
    ru, rt = r.user[keep], r.ts[keep]
    rp = (rt - start) // length
    rkey = ru.astype(np.int64) * (ncoh + periods + 1) + rp
    order = order_by(rkey, rt)
    last = order[last_per_group(rkey[order])]
    return u, t, values, ru[last], rt[last]
