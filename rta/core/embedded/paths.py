"""Paths over the embedded store: every unit's walk, counted as transitions.

The events paths are made of (in the range, matching `where`, of a unit; for pages only
pageviews, named by their page path, `pageviews.page_path`) form one sequence ordered by
(unit, ts, arrival).
A path starts at the unit's first `startPoint` event (or its first event), or ends at its
last `endPoint` event, and walks forward (backward from an end point) one event at a time
while the next event belongs to the same unit and follows the previous one by at most the
window; it stops after `steps` nodes. With `collapseRepeats` an event named as the node
before it is passed over (its gap still counts) instead of becoming a node.

Two sequences answer alike: for users' event paths the cached every-type user index
(`EventIndex.all_events`, no sort per query; names are read only where a walk goes), and
for sessions, pages or stores the index cannot key, rows gathered and sorted per query. The
walk is vectorised over all paths at once: one numpy step per node, never per event; with
`collapseRepeats` each step jumps to the next name change or gap through the sorted
positions where one occurs.

Thread rule: any thread, over one snapshot the caller holds for the whole query.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from rta.core.embedded import filter_eval
from rta.core.embedded.funnel import windowed_snapshot
from rta.core.embedded.segments import first_per_group, last_per_group, member_lookup, order_by
from rta.core.embedded.store.block import Block
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.embedded.user_index import SHIFT, TIME_MASK, EventIndex, TypeIndex, count_before
from rta.core.embedded.visits import _coalesce as coalesce
from rta.core.queries import pageviews as pv
from rta.core.queries.filters import EventFilter
from rta.core.queries.paths_results import PathCounts, Transition
from rta.core.queries.paths_specs import PathsQuery


class EventSequence(ABC):
    """The events paths are made of, in (unit, ts, arrival) order, read by position."""

    n: int
    decode: Callable[[np.ndarray], list[str]]
    lookup: Callable[[str], int]  # a name's code, -1 when no event has it

    @abstractmethod
    def unit_at(self, pos: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def ts_at(self, pos: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def name_at(self, pos: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def starts(self, code: int, last: bool) -> np.ndarray:
        """Each unit's first (`last`: last) position named `code`."""

    def firsts(self) -> np.ndarray:
        """Each unit's first position."""
        return first_per_group(self.unit_at(np.arange(self.n, dtype=np.int64)))

    def breaks(self, pos: np.ndarray, window: int) -> np.ndarray:
        """Whether a path cannot reach `pos` from `pos - 1`: another unit, or a gap."""
        prev = np.maximum(pos - 1, 0)
        return (pos <= 0) | (self.unit_at(pos) != self.unit_at(prev)) | \
            (self.ts_at(pos) - self.ts_at(prev) > window)


class DenseSequence(EventSequence):
    """Gathered rows, sorted per query (sessions, pages, or when the index cannot key)."""

    def __init__(self, unit: np.ndarray, ts: np.ndarray, names: np.ndarray,
                 decode: Callable[[np.ndarray], list[str]],
                 lookup: Callable[[str], int]) -> None:
        order = order_by(unit, ts)
        self.unit, self.ts, self.names = unit[order], ts[order], names[order]
        self.n = len(order)
        self.decode = decode
        self.lookup = lookup

    def unit_at(self, pos: np.ndarray) -> np.ndarray:
        return self.unit[pos]

    def ts_at(self, pos: np.ndarray) -> np.ndarray:
        return self.ts[pos]

    def name_at(self, pos: np.ndarray) -> np.ndarray:
        return self.names[pos]

    def starts(self, code: int, last: bool) -> np.ndarray:
        at = np.flatnonzero(self.names == code)
        pick = last_per_group if last else first_per_group
        return at[pick(self.unit[at])]


class IndexedSequence(EventSequence):
    """Users' event paths over the cached every-type user index: names (event types) are
    read from the blocks only at the positions a walk visits."""

    def __init__(self, snap: Snapshot, ix: EventIndex, events: TypeIndex,
                 keep: Callable[[TypeIndex], np.ndarray | None]) -> None:
        self.snap, self.ix, self.events, self.keep = snap, ix, events, keep
        self.n = len(events)
        self.decode = lambda codes: list(snap.dicts.types.decode(codes))
        self.lookup = snap.dicts.types.lookup

    def unit_at(self, pos: np.ndarray) -> np.ndarray:
        return self.events.key[pos] >> SHIFT

    def ts_at(self, pos: np.ndarray) -> np.ndarray:
        return self.events.key[pos] & TIME_MASK

    def name_at(self, pos: np.ndarray) -> np.ndarray:
        return type_codes(self.ix, self.events.gid[pos])

    def starts(self, code: int, last: bool) -> np.ndarray:
        name = self.snap.dicts.types.decode(np.array([code]))[0]
        occ = self.ix.events(name)
        occ = occ.select(self.keep(occ))
        users = occ.key >> SHIFT
        at = (last_per_group if last else first_per_group)(users)
        return count_before(self.events, occ.key[at], occ.gid[at])


def type_codes(ix: EventIndex, gids: np.ndarray) -> np.ndarray:
    """The event type codes of events by their arrival rank (gid), block by block."""
    out = np.empty(len(gids), dtype=np.int32)
    if not len(gids):
        return out
    which = np.searchsorted(ix.bases, gids, "right") - 1
    order = np.argsort(which, kind="stable")
    sorted_which = which[order]
    cuts = np.flatnonzero(np.diff(sorted_which)) + 1
    for part in np.split(order, cuts):
        i = int(which[part[0]])
        out[part] = ix.blocks[i].type[gids[part] - ix.bases[i]]
    return out


# -- building the sequence -------------------------------------------------------------------

def _indexed(snap: Snapshot, q: PathsQuery, member: np.ndarray | None
             ) -> IndexedSequence | None:
    if q.unit != "users" or q.path_type != "events":
        return None
    ix = EventIndex(snap)
    if not ix.ok:
        return None
    in_range = not ix.within(q.start, q.end)
    base = EventFilter(where=q.where) if q.where is not None else None

    def keep(index: TypeIndex) -> np.ndarray | None:
        mask = ix.mask(base, index) if base is not None else None
        if member is not None:
            extra = member[index.key >> SHIFT]
            mask = extra if mask is None else mask & extra
        if in_range:
            ts = ix.ts_of(index.key)
            extra = np.ones(len(ts), dtype=bool)
            if q.start is not None:
                extra &= ts >= q.start
            if q.end is not None:
                extra &= ts < q.end
            mask = extra if mask is None else mask & extra
        return mask

    events = ix.all_events()
    return IndexedSequence(snap, ix, events.select(keep(events)), keep)


def _dense(snap: Snapshot, q: PathsQuery, member: np.ndarray | None) -> DenseSequence:
    base = EventFilter(where=q.where) if q.where is not None else None
    pages = q.path_type == "pages"
    page_types = np.array([c for c in snap.dicts.types.lookup_many(list(pv.PAGEVIEW_TYPES))
                           if c >= 0], dtype=np.int32)
    width = len(snap.dicts.values) + 1  # once: the dictionary may grow meanwhile
    units, stamps, names = [], [], []
    for block, sl in snap.ranges(q.start, q.end):
        unit = (block.session if q.unit == "sessions" else block.user)[sl]
        keep = unit >= 0
        if pages:
            keep &= np.isin(block.type[sl], page_types)
        if base is not None:
            m = filter_eval.mask(base, block, sl, snap, None)
            if m is not None:
                keep &= m
        if member is not None:
            keep &= member[block.user[sl]]
        rows = np.flatnonzero(keep)
        units.append(unit[rows].astype(np.int64))
        stamps.append(block.ts[sl][rows])
        names.append(_page_keys(block, sl.start + rows, width) if pages
                     else block.type[sl][rows].astype(np.int64))
    empty = np.zeros(0, np.int64)
    unit_all = np.concatenate(units) if units else empty
    ts_all = np.concatenate(stamps) if stamps else empty
    name_all = np.concatenate(names) if names else empty
    if not pages:
        types = snap.dicts.types
        return DenseSequence(unit_all, ts_all, name_all, lambda codes: list(types.decode(codes)),
                             types.lookup)
    ids, labels = _page_labels(snap, name_all, width)
    named = ids >= 0  # a pageview whose aliases give no page is not part of any path
    index = {text: i for i, text in enumerate(labels)}
    return DenseSequence(unit_all[named], ts_all[named], ids[named],
                         lambda codes: [labels[c] for c in codes.tolist()],
                         lambda text: index.get(text, -1))


def _page_keys(block: Block, rows: np.ndarray, width: int) -> np.ndarray:
    """Per pageview row: its raw (path, url) value codes (the first string alias of each,
    `pageviews.PATH_KEYS` / `URL_KEYS`; -1 for none) as one int64 key."""
    path = coalesce(block, rows, pv.PATH_KEYS)
    url = coalesce(block, rows, pv.URL_KEYS)
    return (path + 1) * width + (url + 1)


def _page_labels(snap: Snapshot, keys: np.ndarray,
                 width: int) -> tuple[np.ndarray, list[str]]:
    """Each key's page id (-1: no page) and the pages: `pageviews.page_path` of every
    distinct (path, url) once, the rule the web views use."""
    uniq, inverse = np.unique(keys, return_inverse=True)

    def texts(codes: np.ndarray) -> list[str | None]:
        out: list[str | None] = [None] * len(codes)
        known = np.flatnonzero(codes >= 0)
        for i, text in zip(known.tolist(), snap.dicts.values.decode(
                codes[known].astype(np.int32)), strict=True):
            out[i] = text
        return out

    paths, urls = texts(uniq // width - 1), texts(uniq % width - 1)
    index: dict[str, int] = {}
    ids = np.empty(len(uniq), dtype=np.int64)
    for i in range(len(uniq)):  # once per distinct (path, url), not per event
        page = pv.page_path(paths[i], urls[i])
        ids[i] = -1 if page is None else index.setdefault(page, len(index))
    return ids[inverse.reshape(-1)], list(index)


# -- the walk ----------------------------------------------------------------------------------

def walk(seq: EventSequence, starts: np.ndarray, q: PathsQuery) -> np.ndarray:
    """The name codes of each path's nodes, (paths, steps), -1 past a path's end."""
    out = np.full((len(starts), q.steps), -1, dtype=np.int64)
    if not len(starts):
        return out
    cur = starts.astype(np.int64)
    out[:, 0] = seq.name_at(cur)
    alive = np.arange(len(starts))
    window = q.window_ms
    marks = brk = None
    if q.collapse_repeats:  # positions where a name changes or a path must break
        every = np.arange(seq.n, dtype=np.int64)
        brk = seq.breaks(every, window)
        names = seq.name_at(every)
        change = np.ones(seq.n, dtype=bool)
        change[1:] = names[1:] != names[:-1]
        marks = np.flatnonzero(brk | change)
    for k in range(1, q.steps):
        if not len(alive):
            break
        at = cur[alive]
        if marks is not None and brk is not None:
            i = np.searchsorted(marks, at, "right")
            if q.backward:  # where the run holding `at` begins; step before it
                run = marks[i - 1]
                ok = ~brk[run]
                nxt = run - 1
            else:
                ok = i < len(marks)
                nxt = marks[np.minimum(i, len(marks) - 1)]
                ok &= ~brk[nxt]
        elif q.backward:
            ok = ~seq.breaks(at, window)
            nxt = at - 1
        else:
            nxt = at + 1
            ok = nxt < seq.n
            ok[ok] = ~seq.breaks(nxt[ok], window)
        alive = alive[ok]
        nxt = nxt[ok]
        cur[alive] = nxt
        out[alive, k] = seq.name_at(nxt)
    return out


def _transitions(paths: np.ndarray, decode: Callable[[np.ndarray], list[str]]
                 ) -> tuple[Transition, ...]:
    """(step, name, next name or None, paths) for every distinct walk transition."""
    out: list[Transition] = []
    nsteps = paths.shape[1]
    for k in range(nsteps):
        here = paths[:, k]
        sel = here >= 0
        if not sel.any():
            break
        nxt = paths[sel, k + 1] if k + 1 < nsteps else np.full(int(sel.sum()), -1)
        keys, counts = np.unique(((here[sel] + 1) << 32) | (nxt + 1), return_counts=True)
        a = (keys >> 32) - 1
        b = (keys & 0xFFFFFFFF) - 1
        codes = np.unique(np.concatenate([a, b[b >= 0]]))
        text = dict(zip(codes.tolist(), decode(codes), strict=True))
        out += [(k + 1, str(text[x]), None if y < 0 else str(text[y]), c)
                for x, y, c in zip(a.tolist(), b.tolist(), counts.tolist(), strict=True)]
    return tuple(out)


def counts(snap: Snapshot, q: PathsQuery, members: np.ndarray | None,
           indexed: bool = True) -> PathCounts:
    """Walk transitions of every unit's path (`members`: the saved segment's user codes).
    `indexed=False` forces the gathered sequence (tests compare the two)."""
    if q.start is not None or q.end is not None:  # only blocks in the range (as funnels)
        snap = windowed_snapshot(snap, q.start if q.start is not None else -(2**62),
                                 q.end - 1 if q.end is not None else 2**62)
    member = member_lookup(members, snap)
    seq = (_indexed(snap, q, member) if indexed else None) or _dense(snap, q, member)
    point = q.start_point if q.start_point is not None else q.end_point
    if point is None:
        starts = seq.firsts()
    else:
        code = seq.lookup(point)
        starts = seq.starts(code, q.backward) if code >= 0 else np.zeros(0, np.int64)
    return PathCounts(_transitions(walk(seq, starts, q), seq.decode))
