"""Funnels: how many users (or sessions) go through a sequence of steps within a window.

Semantics (docs/statistics.md has the long form):

- An **attempt** starts at any step-1 event with startTime <= ts <= endTime. Later steps may
  fall after endTime as long as they are inside the attempt's conversion window:
  ts <= entry ts + timeLimit (inclusive; default 14 days).
- Events of one user are ordered by (timestamp, arrival); two events in the same millisecond
  are ordered by when the server received them. "After" means later in that order, so one
  event never completes two steps, and a step in the same millisecond as the previous one
  counts only if it arrived later.
- `order`: `ordered` (default) — each step after the previous one, other events allowed in
  between (the earliest match is taken, which is optimal); `strict` — each step is the very
  next event of that user (any type) after the previous step; `any` — step 1 opens the
  attempt, steps 2..N may happen in any order after it; reaching step k means steps 1..k all
  happened in the window.
- An attempt's depth is the number of steps completed. A user's result is their deepest
  attempt (the earliest one among equals): "converts if any attempt completes". That attempt
  also supplies the breakdown value (the property on its step-1 event) and the times to
  convert (time from step k-1's completion to step k's).
- **Exclusions** `{"eventType", "filters", "fromStep", "toStep"}` (step indexes, 0-based, or
  step names): an attempt is void when a matching event occurs after its `fromStep` event and
  before its `toStep` event (before the end of the window if it never reached `toStep`).
  A user whose every attempt is void is dropped from the funnel.
- `countBy`: `users` (default) or `sessions` (each session is its own funnel; events without
  a session are ignored).
- Step counts: entities whose best depth >= k. conversionRate = count / previous count,
  dropoffRate = 100 - conversionRate (percentages 0-100, 2 decimals); step 1 shows 100 / 0;
  after an empty step both rates are 0 (nobody to convert or drop off).

Vectorised, two kernels with identical results. `ordered` funnels of users without
exclusions read each step's events from the per-type user indexes (`rta.core.embedded.user_index`:
sealed segments' events already ordered by (user, ts, arrival), cached) and walk one chain
per step-2 event instead of one per attempt (`_compute_indexed`). Everything else gathers the
steps' events, sorts them once by (entity, ts) and advances every attempt one step per
iteration with `searchsorted` (`_compute_rows`). Python loops run once per step, never per
event.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.embedded.segments import (
    first_per_group,
    gather,
    member_lookup,
    order_by,
    pct,
    resolve_segment,
    value_labels,
)
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.embedded.user_index import SHIFT, EventIndex, TypeIndex, count_before
from rta.core.errors import field_error
from rta.core.queries.behaviour_results import (
    FunnelBreakdown,
    FunnelResult,
    FunnelStep,
    FunnelSummary,
)
from rta.core.queries.behaviour_specs import (  # noqa: F401  (re-exported for callers)
    DEFAULT_BREAKDOWN_LIMIT,
    DEFAULT_WINDOW,
    MAX_STEPS,
    MIN_STEPS,
    ORDERS,
    UNITS,
    Exclusion,
    FunnelQuery,
    Step,
    parse_funnel,
)
from rta.core.queries.filters import EventFilter
from rta.core.queries.timeparse import iso

if TYPE_CHECKING:
    from rta.core.engine import Engine

# -- the kernel --------------------------------------------------------------------------------


@dataclass
class Attempts:
    """One row per surviving attempt (the best one per entity): entity, depth, step times."""

    entity: np.ndarray
    depth: np.ndarray
    times: np.ndarray  # (steps, n) completion timestamps; valid where depth > step
    entry_row: np.ndarray  # where the step-1 event is (row of the kernel's own order)


Values = dict[str, np.ndarray]  # typed property values per attempt (see value_labels)


def compute(snap: Snapshot, q: FunnelQuery) -> tuple[Attempts, Values | None]:
    """Best attempt per entity, and the breakdown property's values on their step-1 events.

    `ordered` funnels of users without exclusions (the common case) run over the cached
    per-type user indexes; everything else gathers and sorts the rows it needs.
    """
    types = [stored_type(snap, s.flt, s.event_type) for s in q.steps]
    if q.order == "ordered" and q.unit == "users" and not q.exclusions and all(types):
        ix = EventIndex(snap)
        if ix.ok:
            return _compute_indexed(snap, ix, q, [t for t in types if t])
    return _compute_rows(snap, q)


def stored_type(snap: Snapshot, flt: EventFilter, named: str) -> str | None:
    """The one event type whose per-type index holds every event `flt` can match: the type
    named, or for a page step (`page_steps`, several types) the only one of them this
    snapshot stores; None when several are stored (the events must be gathered)."""
    if flt.types is None or flt.types == (named,):
        return named
    stored = [t for t in flt.types if snap.dicts.types.lookup(t) >= 0]
    return stored[0] if len(stored) == 1 else named if not stored else None


def _compute_indexed(snap: Snapshot, ix: EventIndex, q: FunnelQuery,
                     types: list[str]) -> tuple[Attempts, Values | None]:
    """`ordered` funnel over per-step (user, ts, arrival)-ordered events, without sorting.

    In `ordered` mode an attempt's steps 2..N depend only on its step-2 event: the first
    step-2 event after the attempt. So attempts are grouped by that event (a group = the
    step-1 events of one user between two consecutive step-2 events), each group's chain is
    walked once with the deadline of its latest attempt (the deepest of the group), and the
    earliest attempt reaching that depth is found by one `searchsorted` on (user, time):
    the first one no earlier than (time of its last step - window). Work is proportional to
    the number of groups (at most the step-2 events), not to the step-1 events.
    """
    nsteps = len(q.steps)
    member = member_lookup(q.segment_users, snap)
    base = EventFilter(where=q.where) if q.where is not None else None
    steps = [_step_events(ix, t, s, base, member) for t, s in zip(types, q.steps, strict=True)]
    s1 = steps[0]
    if not ix.within(q.start, q.end):
        t1 = ix.ts_of(s1.key)
        keep = np.ones(len(s1), dtype=bool)
        if q.start is not None:
            keep &= t1 >= q.start
        if q.end is not None:
            keep &= t1 < q.end
        s1 = s1.select(keep)
    u1 = ix.users_of(s1.key)
    att = first_per_group(u1)  # each entrant's earliest attempt: their best at depth 1
    users = u1[att]
    depth = np.ones(len(users), dtype=np.int64)
    times = np.zeros((nsteps, len(users)), dtype=np.int64)
    g, lo, hi = _groups(ix, s1, u1, steps[1])
    if len(g):
        gu = u1[lo]
        deadline = ix.ts_of(s1.key[hi - 1]) + q.window
        gd = np.ones(len(g), dtype=np.int64)
        gt = np.zeros((nsteps, len(g)), dtype=np.int64)
        cur_key = steps[1].key[g]
        cur_gid = steps[1].gid[g]
        gt[1] = ix.ts_of(cur_key)
        live = np.flatnonzero(gt[1] <= deadline)
        gd[live] = 2
        for k in range(2, nsteps):
            sk = steps[k]
            if not len(live) or not len(sk):
                break
            nxt = count_before(sk, cur_key[live], cur_gid[live], inclusive=True)
            nc = np.minimum(nxt, len(sk) - 1)
            key = sk.key[nc]
            t = ix.ts_of(key)
            ok = (nxt < len(sk)) & (ix.users_of(key) == gu[live]) & (t <= deadline[live])
            live = live[ok]
            gd[live] = k + 1
            gt[k, live] = t[ok]
            cur_key[live] = key[ok]
            cur_gid[live] = sk.gid[nc[ok]]
        deep = np.flatnonzero(gd >= 2)
        if len(deep):
            du, dd = gu[deep], gd[deep]
            starts = first_per_group(du)
            run = np.cumsum(np.concatenate(([1], (du[1:] != du[:-1]).astype(np.int64)))) - 1
            top = np.maximum.reduceat(dd, starts)
            best = np.flatnonzero(dd == top[run])
            chosen = deep[best[first_per_group(du[best])]]  # deepest, then earliest group
            cu = gu[chosen]
            last_t = gt[gd[chosen] - 1, chosen]
            earliest = np.searchsorted(s1.key, ix.key_of(cu, last_t - q.window), "left")
            at = np.searchsorted(users, cu)
            depth[at] = gd[chosen]
            att[at] = np.maximum(earliest, lo[chosen])
            times[1:, at] = gt[1:, chosen]
    times[0] = ix.ts_of(s1.key[att])
    entry = s1.gid[att]
    values = ix.values(entry, q.breakdown) if q.breakdown is not None else None
    return Attempts(users, depth, times, entry), values


def _step_events(ix: EventIndex, etype: str, step: Step, base: EventFilter | None,
                 member: np.ndarray | None) -> TypeIndex:
    events = ix.events(etype)
    mask = ix.mask(step.flt, events)
    if base is not None:
        extra = ix.mask(base, events)
        if extra is not None:
            mask = extra if mask is None else mask & extra
    if member is not None:
        extra = member[ix.users_of(events.key)]
        mask = extra if mask is None else mask & extra
    return events.select(mask)


def _groups(ix: EventIndex, s1: TypeIndex, u1: np.ndarray,
            s2: TypeIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attempts grouped by their step-2 event: (step-2 index, first and end step-1 index).

    Computed from whichever side is smaller (both are sorted, so this is a merge by
    binary search); groups come out in (user, time) order.
    """
    n1, n2 = len(s1), len(s2)
    empty = np.zeros(0, np.int64)
    if not n1 or not n2:
        return empty, empty, empty
    if n2 <= n1:
        hi = count_before(s1, s2.key, s2.gid)  # step-1 events before each step-2 event
        u2 = ix.users_of(s2.key)
        lo = np.empty_like(hi)
        lo[1:] = hi[:-1]
        fresh = np.flatnonzero(np.concatenate(([True], u2[1:] != u2[:-1])))
        lo[fresh] = np.searchsorted(s1.key, u2[fresh] << SHIFT, "left")  # user's first
        g = np.flatnonzero(hi > lo)
        return g, lo[g], hi[g]
    nxt = count_before(s2, s1.key, s1.gid, inclusive=True)  # first step-2 after each
    cut = np.concatenate(([True], (nxt[1:] != nxt[:-1]) | (u1[1:] != u1[:-1])))
    lo = np.flatnonzero(cut)
    hi = np.append(lo[1:], n1)
    g = nxt[lo]
    ok = g < n2
    ok[ok] = ix.users_of(s2.key[g[ok]]) == u1[lo[ok]]
    return g[ok], lo[ok], hi[ok]


def _compute_rows(snap: Snapshot, q: FunnelQuery) -> tuple[Attempts, Values | None]:
    """The general kernel (every order, unit and exclusion): gather, sort, walk attempts."""
    nsteps = len(q.steps)
    hi = None if q.end is None else q.end + q.window  # steps may land up to end-1+window
    member = member_lookup(q.segment_users, snap)
    base = EventFilter(where=q.where) if q.where is not None else None
    filters = [s.flt for s in q.steps] + [x.flt for x in q.exclusions]
    rows = gather(snap, filters, q.start, hi, member=member, base=base,
                  props=[q.breakdown] if q.breakdown else (),
                  all_events=q.order == "strict")
    entity = rows.session if q.unit == "sessions" else rows.user
    keep = np.flatnonzero(entity >= 0)
    order = keep[order_by(entity[keep], rows.ts[keep])]
    ts = rows.ts[order]
    ent = entity[order]
    masks = [m[order] for m in rows.masks]
    n = len(ts)
    in_range = np.ones(n, dtype=bool)
    if q.start is not None:
        in_range &= ts >= q.start
    if q.end is not None:
        in_range &= ts < q.end
    cand = np.flatnonzero(masks[0] & in_range)
    t0 = ts[cand]
    who = ent[cand]
    deadline = t0 + q.window
    depth = np.ones(len(cand), dtype=np.int64)
    pos = np.zeros((nsteps, len(cand)), dtype=np.int64)
    times = np.zeros((nsteps, len(cand)), dtype=np.int64)
    pos[0] = cand
    times[0] = t0
    alive = np.ones(len(cand), dtype=bool)
    cur = cand
    for k in range(1, nsteps):
        if q.order == "strict":
            nxt = np.minimum(cur + 1, max(n - 1, 0))
            ok = alive & (cur + 1 < n) & masks[k][nxt]
        else:
            pk = np.flatnonzero(masks[k])
            if not len(pk):
                alive = np.zeros(len(cand), dtype=bool)
                continue
            after = cur if q.order == "ordered" else cand
            idx = np.searchsorted(pk, after, "right")
            ok = alive & (idx < len(pk))
            nxt = pk[np.minimum(idx, len(pk) - 1)]
        ok &= (ent[nxt] == who) & (ts[nxt] <= deadline)
        alive = ok
        depth += ok
        pos[k] = np.where(ok, nxt, -1)
        if q.order == "any":
            times[k] = np.where(ok, np.maximum(times[k - 1], ts[nxt]), 0)
        else:
            times[k] = np.where(ok, ts[nxt], 0)
            cur = np.where(ok, nxt, cur)
    void = np.zeros(len(cand), dtype=bool)
    for j, x in enumerate(q.exclusions):
        xp = np.flatnonzero(masks[nsteps + j])
        if not len(xp):
            continue
        reached = depth > x.from_step
        frm = pos[x.from_step]
        idx = np.searchsorted(xp, frm, "right")
        e = xp[np.minimum(idx, len(xp) - 1)]
        hit = reached & (idx < len(xp)) & (ent[e] == who) & (ts[e] <= deadline)
        to_pos = pos[x.to_step]
        hit &= (depth <= x.to_step) | (e < to_pos)
        void |= hit
    sel = np.flatnonzero(~void)
    # best attempt per entity: deepest, then earliest (candidates are sorted by entity, row)
    best_order = np.lexsort((cand[sel], -depth[sel], who[sel]))
    best = sel[best_order][first_per_group(who[sel][best_order])]
    attempts = Attempts(who[best], depth[best], times[:, best], cand[best])
    values = None
    if q.breakdown is not None:
        entry = order[cand[best]]
        values = {k: v[entry] for k, v in rows.props[q.breakdown].items()}
    return attempts, values


def _summary(names: list[str], types: list[str], depth: np.ndarray,
             times: np.ndarray) -> FunnelSummary:
    nsteps = len(names)
    counts = [int((depth > k).sum()) for k in range(nsteps)]
    steps = []
    for k in range(nsteps):
        prev = counts[k - 1] if k else counts[0]
        conv = pct(counts[k], prev) if k else (100.0 if counts[0] else 0.0)
        avg = median = p90 = None
        if k:
            reached = depth > k
            if reached.any():
                d = (times[k][reached] - times[k - 1][reached]).astype(np.float64)
                avg = round(float(d.mean()), 1)
                median = round(float(np.median(d)), 1)
                p90 = round(float(np.percentile(d, 90)), 1)
        steps.append(FunnelStep(names[k], types[k], counts[k], conv,
                                round(100.0 - conv, 2) if prev else 0.0, prev - counts[k],
                                pct(counts[k], counts[0]), avg, median, p90))
    return FunnelSummary(tuple(steps), counts[0], counts[-1], pct(counts[-1], counts[0]))


def parse(body: Any, now: int | None = None, engine: Engine | None = None,
          snap: Snapshot | None = None) -> FunnelQuery:
    """The funnel spec with its saved segment resolved over `snap` (for dashboards, until
    they run the typed query through `rta.core.queries.behaviour.execute`)."""
    q = parse_funnel(body, now)
    if engine is None:
        if q.segment is not None:
            raise field_error("segment", "saved segments are not available here")
        return q
    return replace(q, segment_users=resolve_segment(engine, q.segment, snap))


def run(engine: Engine, body: Any, now: int | None = None,
        snap: Snapshot | None = None) -> dict[str, Any]:
    """POST /queries/funnel: the seed's response shape plus times, breakdown, echo of options."""
    snap = snap or engine.snapshot()
    return answer(snap, parse(body, now, engine, snap))


_WINDOW_DICTS: weakref.WeakKeyDictionary[Dictionaries, Dictionaries] = \
    weakref.WeakKeyDictionary()
_WINDOW_DICTS_LOCK = threading.Lock()


def windowed_snapshot(snap: Snapshot, lo: int, hi: int) -> Snapshot:
    """`snap` without the blocks that hold no event in [lo, hi], for a funnel over that range.

    A funnel's steps all lie in [start, end - 1 + timeLimit] and each comes after the
    previous one, so events outside never change its answer, whatever the order or unit;
    dropping their blocks keeps arrival order among the rest. It matters for the indexed
    kernel (`rta.core.embedded.user_index`), whose per-type indexes and filter masks span
    every block of the snapshot: a funnel over the last 24h of 30 days of data paid for all
    30. The pruned snapshot shares the store's dictionaries through a second `Dictionaries`
    holding the same `Dictionary` objects, so its index cache (keyed by that object) lives
    beside the store's full-history one instead of evicting it on every call.
    """
    keep = [b for b in snap.blocks if b.n and b.max_ts >= lo and b.min_ts <= hi]
    if len(keep) == sum(1 for b in snap.blocks if b.n):
        return snap
    with _WINDOW_DICTS_LOCK:
        view = _WINDOW_DICTS.get(snap.dicts)
        if view is None:
            view = Dictionaries.__new__(Dictionaries)
            for name in Dictionaries.NAMES:
                setattr(view, name, getattr(snap.dicts, name))
            _WINDOW_DICTS[snap.dicts] = view
    return Snapshot(keep, view, snap.version)


def answer(snap: Snapshot, q: FunnelQuery) -> dict[str, Any]:
    """The funnel's API response (`result(...).to_json()`)."""
    return result(snap, q).to_json()


def result(snap: Snapshot, q: FunnelQuery) -> FunnelResult:
    """Answer a funnel whose `segment_users` are resolved, over `snap`."""
    if q.start is not None or q.end is not None:
        snap = windowed_snapshot(snap, q.start if q.start is not None else -(2**62),
                                 q.end - 1 + q.window if q.end is not None else 2**62)
    attempts, values = compute(snap, q)
    names = [s.name for s in q.steps]
    types = [s.event_type for s in q.steps]
    summary = _summary(names, types, attempts.depth, attempts.times)
    common = (summary, q.order, q.unit, q.window, q.start,
              None if q.end is None else q.end - 1,
              None if q.start is None else iso(q.start))
    if q.breakdown is None:
        return FunnelResult(*common)
    assert values is not None
    ids, labels = value_labels(values, snap)
    groups = []
    for gid in np.unique(ids).tolist():
        sel = ids == gid
        groups.append(FunnelBreakdown(None if gid < 0 else labels[gid],
                                      _summary(names, types, attempts.depth[sel],
                                               attempts.times[:, sel])))
    groups.sort(key=lambda g: (-g.summary.total_entered, str(g.value)))
    return FunnelResult(*common, q.breakdown, len(groups) > q.breakdown_limit,
                        tuple(groups[:q.breakdown_limit]))
