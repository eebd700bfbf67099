"""Visits over the embedded store: vectorised derivation, headline sums, breakdowns.

Rules (docs/web.md, "Visits"): the events the filter selects inside the range, with a
userId, and without `$bot = true` unless bots are asked for, are ordered by (visitor,
session id, timestamp, arrival). A visit is a run of one visitor's events with the same
sent session id (`sessionId`, else PostHog's `$session_id`); among events without one, a gap
of more than the timeout starts a new visit. Only visits with a pageview count. Per visit:
entry and exit page (first and last pageview), pageviews, duration (last event - first
event), bounce (exactly one pageview and no interaction: no event other than pageviews and
`pageviews.NON_INTERACTION_TYPES`).

The derivation is one stable sort (`np.lexsort` on the gathered rows, which are in snapshot
order, so ties keep arrival order) and run boundaries; dimension labels are computed once
per distinct combination of raw dictionary codes (`web_labels.label`), never per event. The
derived `VisitTable` is remembered for the last few (snapshot, spec) pairs, so a dashboard's
headline and its dozen breakdowns share one derivation.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable); the small table cache locks itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from rta.core.embedded import filter_eval
from rta.core.embedded.store.block import Block
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.events import BOOL, STR
from rta.core.queries import pageviews as pv
from rta.core.queries.web_labels import FIELDS, RAW_FIELDS, label
from rta.core.queries.web_results import DimensionRow, DimensionRows, VisitTotals, rank_rows
from rta.core.queries.web_specs import VisitSpec

PAGEVIEW, OTHER, INTERACTION = 1, 2, 3
_CACHE_SIZE = 4


@dataclass
class VisitTable:
    """Visits of one (snapshot, spec): per visit arrays, and per pageview (in visit order)
    its visit; raw page fields are read from the blocks on demand."""

    user: np.ndarray  # per visit (with a pageview): visitor code, sorted ascending
    pageviews: np.ndarray  # int64
    bounce: np.ndarray  # bool
    duration: np.ndarray  # int64 ms
    pv_visit: np.ndarray  # per pageview in (visit, ts, arrival) order: its visit
    pv_source: np.ndarray  # per pageview: its index in gathering order (into `parts`)
    entry: np.ndarray  # per visit: index into the pageview arrays of its first pageview
    exit: np.ndarray  # per visit: ... of its last pageview
    parts: list[tuple[Block, np.ndarray]]  # (block, pageview rows) in gathering order
    _fields: dict[str, np.ndarray] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def visits(self) -> int:
        return len(self.user)

    def totals(self) -> VisitTotals:
        if not self.visits:
            return VisitTotals()
        return VisitTotals(_distinct_sorted(self.user), self.visits,
                           int(self.pageviews.sum()), int(self.bounce.sum()),
                           int(self.duration.sum()))

    def raw(self, name: str) -> np.ndarray:
        """Per pageview (in gathering order): the code of the first string property among
        the field's aliases, -1 where none."""
        with self._lock:
            found = self._fields.get(name)
            if found is None:
                keys = RAW_FIELDS[name]
                chunks = [_coalesce(block, rows, keys) for block, rows in self.parts]
                found = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
                self._fields[name] = found
            return found


def _distinct_sorted(values: np.ndarray) -> int:
    if not len(values):
        return 0
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1


def _coalesce(block: Block, rows: np.ndarray, keys: tuple[str, ...]) -> np.ndarray:
    out = np.full(len(rows), -1, dtype=np.int64)
    missing = np.ones(len(rows), dtype=bool)
    for key in keys:
        col = block.column(STR, key)
        if col is None:
            continue
        codes = col.take(rows)
        hit = missing & (codes >= 0)
        out[hit] = codes[hit]
        missing &= ~hit
        if not missing.any():
            break
    return out


def _kinds(snap: Snapshot) -> np.ndarray:
    """Per event-type code: PAGEVIEW, OTHER (not an interaction) or INTERACTION."""
    types = snap.dicts.types
    lut = np.full(len(types) + 1, INTERACTION, dtype=np.int8)
    for name in pv.NON_INTERACTION_TYPES:
        code = types.lookup(name)
        if 0 <= code < len(lut):
            lut[code] = OTHER
    for name in pv.PAGEVIEW_TYPES:
        code = types.lookup(name)
        if 0 <= code < len(lut):
            lut[code] = PAGEVIEW
    return lut


def derive(snap: Snapshot, spec: VisitSpec) -> VisitTable:
    """The spec's visits (see the module docstring for the rules)."""
    lut = _kinds(snap)
    users, sids, stamps, kinds, parts = [], [], [], [], []
    for block, sl, mask in filter_eval.select(spec.flt, snap):
        rows = np.arange(sl.start, sl.stop) if mask is None else \
            np.flatnonzero(mask) + sl.start
        user = block.user.take(rows)
        keep = user >= 0
        if not spec.bots:
            bot = block.column(BOOL, pv.BOT_KEY)
            if bot is not None:
                keep &= bot.take(rows) != 1
        if not keep.all():
            rows, user = rows[keep], user[keep]
        if not len(rows):
            continue
        sid = block.session.take(rows).astype(np.int64) * 2
        prop = block.column(STR, pv.SESSION_KEY)
        if prop is not None:
            sent = prop.take(rows).astype(np.int64)
            fill = (sid < 0) & (sent >= 0)
            sid[fill] = sent[fill] * 2 + 1
        sid[sid < 0] = -1
        kind = lut[np.minimum(block.type.take(rows), len(lut) - 1)]
        users.append(user)
        sids.append(sid)
        stamps.append(block.ts.take(rows))
        kinds.append(kind)
        parts.append((block, rows[kind == PAGEVIEW]))
    if not users:
        return _empty(parts)
    user = np.concatenate(users)
    sid = np.concatenate(sids)
    ts = np.concatenate(stamps)
    kind = np.concatenate(kinds)
    return _visits(user, sid, ts, kind, spec.settings.timeout_ms, parts)


def _empty(parts: list[tuple[Block, np.ndarray]]) -> VisitTable:
    z = np.zeros(0, np.int64)
    return VisitTable(z, z, z.astype(bool), z, z, z, z, z, parts)


def _visits(user: np.ndarray, sid: np.ndarray, ts: np.ndarray, kind: np.ndarray,
            timeout: int, parts: list[tuple[Block, np.ndarray]]) -> VisitTable:
    n = len(ts)
    # gathering order numbers the pageviews for `parts` (taken before sorting)
    is_pv_in = kind == PAGEVIEW
    pv_number = np.cumsum(is_pv_in) - 1
    order = np.lexsort((ts, sid, user))  # stable: ties keep snapshot (arrival) order
    u, s, t, k = user[order], sid[order], ts[order], kind[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    if n > 1:
        new[1:] = (u[1:] != u[:-1]) | (s[1:] != s[:-1]) | (
            (s[1:] < 0) & (np.diff(t) > timeout))
    starts = np.flatnonzero(new)
    visit = np.cumsum(new) - 1
    ends = np.append(starts[1:], n) - 1
    is_pv = k == PAGEVIEW
    pageviews = np.add.reduceat(is_pv.astype(np.int64), starts)
    acts = np.add.reduceat((k == INTERACTION).astype(np.int64), starts)
    duration = t[ends] - t[starts]
    counted = pageviews > 0
    # renumber the counted visits 0..m-1
    new_id = np.cumsum(counted) - 1
    pv_pos = np.flatnonzero(is_pv)
    pv_visit = new_id[visit[pv_pos]]
    pv_source = pv_number[order[pv_pos]]
    m = int(counted.sum())
    if len(pv_pos):
        first = np.empty(len(pv_pos), dtype=bool)
        first[0] = True
        first[1:] = pv_visit[1:] != pv_visit[:-1]
        entry = np.flatnonzero(first)
        exit_ = np.append(entry[1:], len(pv_pos)) - 1
    else:
        entry = exit_ = np.zeros(0, np.int64)
    assert len(entry) == m
    return VisitTable(u[starts][counted], pageviews[counted],
                      ((pageviews == 1) & (acts == 0))[counted], duration[counted],
                      pv_visit, pv_source, entry, exit_, parts)


# -- the cache: one derivation per (snapshot, spec) for a dashboard's many widgets ------------

_tables: OrderedDict[tuple[object, ...], VisitTable] = OrderedDict()
_tables_lock = threading.Lock()


def table(snap: Snapshot, spec: VisitSpec) -> VisitTable:
    """`derive`, remembered for the last few (snapshot version, spec) pairs."""
    key = (id(snap.dicts), snap.version, spec.key, spec.bots, spec.settings.timeout_ms)
    with _tables_lock:
        found = _tables.get(key)
        if found is not None:
            _tables.move_to_end(key)
            return found
    built = derive(snap, spec)
    with _tables_lock:
        _tables[key] = built
        while len(_tables) > _CACHE_SIZE:
            _tables.popitem(last=False)
    return built


def forget() -> None:
    """Drop the remembered tables (benchmarks measure the derivation itself)."""
    with _tables_lock:
        _tables.clear()


def totals(snap: Snapshot, spec: VisitSpec) -> VisitTotals:
    return table(snap, spec).totals()


# -- breakdowns ------------------------------------------------------------------------------

def _labels(snap: Snapshot, vt: VisitTable, dimension: str, pick: np.ndarray,
            own_hosts: tuple[str, ...]) -> tuple[np.ndarray, list[str | None]]:
    """Per chosen pageview (`pick`: indices into the visit-ordered pageview arrays): a label
    id (into the returned distinct labels, which may include None)."""
    names = FIELDS[dimension]
    source = vt.pv_source[pick]
    cols = [vt.raw(name)[source] for name in names]
    # factorise the code combinations pairwise (codes < 2**31, so two fit in an int64)
    combo, inverse = np.unique(cols[0], return_inverse=True)
    reps = [combo]
    for col in cols[1:]:
        key = inverse.astype(np.int64) << 32 | (col + 1)
        ukey, inverse = np.unique(key, return_inverse=True)
        reps = [r[(ukey >> 32).astype(np.int64)] for r in reps]
        reps.append((ukey & 0xFFFFFFFF).astype(np.int64) - 1)
    values = snap.dicts.values
    decoded = [values.decode(r) for r in reps]
    distinct: dict[str | None, int] = {}
    label_ids = np.empty(len(reps[0]), dtype=np.int64)
    for i, raw in enumerate(zip(*decoded, strict=True)):
        text = label(dimension, raw, own_hosts)
        label_ids[i] = distinct.setdefault(text, len(distinct))
    return label_ids[inverse.reshape(-1)], list(distinct)


def _pairs(group: np.ndarray, other: np.ndarray, n_groups: int) -> np.ndarray:
    """Distinct `other` values per group."""
    if not len(group):
        return np.zeros(n_groups, np.int64)
    key = group.astype(np.int64) << 32 | other.astype(np.int64)
    return np.bincount((np.unique(key) >> 32).astype(np.int64), minlength=n_groups)


def breakdown(snap: Snapshot, spec: VisitSpec, dimension: str, limit: int) -> DimensionRows:
    vt = table(snap, spec)
    if not vt.visits:
        return DimensionRows((), 0, 0)
    visitors_total = _distinct_sorted(vt.user)
    own = spec.settings.own_hosts
    if dimension == "pages":
        ids, names = _labels(snap, vt, dimension, np.arange(len(vt.pv_visit)), own)
        g = len(names)
        visit_of = vt.pv_visit
        visitors = _pairs(ids, vt.user[visit_of], g)
        visits = _pairs(ids, visit_of, g)
        pageviews = np.bincount(ids, minlength=g)
        bounced = vt.bounce[visit_of]
        bounces = _pairs(ids[bounced], visit_of[bounced], g)
    else:
        pick = vt.exit if dimension == "exit-pages" else vt.entry
        ids, names = _labels(snap, vt, dimension, pick, own)
        g = len(names)
        visitors = _pairs(ids, vt.user, g)
        visits = np.bincount(ids, minlength=g)
        pageviews = np.bincount(ids, weights=vt.pageviews, minlength=g).astype(np.int64)
        bounces = np.bincount(ids, weights=vt.bounce, minlength=g).astype(np.int64)
    rows = [DimensionRow(names[i], int(visitors[i]), int(visits[i]), int(pageviews[i]),
                         int(bounces[i])) for i in range(g) if visits[i]]
    return DimensionRows(rank_rows(rows, limit), len(rows), visitors_total)
