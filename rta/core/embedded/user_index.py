"""Per-event-type user indexes: events of one type ordered by (user, timestamp, arrival).

Funnels and retention walk each user's events in (timestamp, arrival) order. Gathering and
sorting millions of rows per query dominated their cost, so this module keeps, per store and
event type, the events of the sealed segments already in that order, as two int64 arrays:

- `key` = user << SHIFT | (ts - tmin): sorted, so one user's events are contiguous and
  ordered by time, and `searchsorted` on (user, time) works across users in one call;
- `gid`: the event's arrival rank in the snapshot (block offset + row, blocks in arrival
  order), which breaks ties between events of one user in the same millisecond and locates
  the event again (its properties, filter masks).

Sealed segments (Blocks labelled "seg-...") are immutable, so their merged index is cached
(in a `WeakKeyDictionary` keyed by the store's `Dictionaries`, checked against the identity of
the segment Blocks it covers) and extended incrementally when segments are added: only the
new segment is sorted and merged in. Blocks after the sealed prefix (segments being sealed,
the head) are indexed per query and merged in the same way. When segments disappear
(retention) the index is rebuilt. The cached indexes of one store are bounded by
`CACHE_BUDGET_BYTES` (16 bytes per indexed event), least recently used evicted first: a
daemon answering funnels over every event type of 100M events would otherwise keep ~1.6 GB of
them. Everything here is read-only over Blocks, so a stale or
concurrent index can cost time but never change an answer.

Limits: keys need ts within [tmin, tmin + 2**SHIFT) (35 years) and fewer than 2**23 users;
`EventIndex.ok` is False otherwise, and callers use their generic path.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rta.core.embedded import filter_eval
from rta.core.embedded.segments import order_by
from rta.core.embedded.store.block import Block, null_column
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.events import BOOL, FLOAT, INT, STR
from rta.core.queries.filters import EventFilter

SHIFT = 40
TIME_MASK = (1 << SHIFT) - 1
MAX_USERS = 1 << (63 - SHIFT)
_MARGIN = 1 << 38  # tmin sits this far (8.7 years) before the data, for late backfills
ALL_TYPES = -1  # the cache code of the every-type index (`EventIndex.all_events`)
CACHE_BUDGET_BYTES = 256 << 20  # cached sealed-prefix indexes per store (LRU beyond it)


@dataclass
class TypeIndex:
    """Events in (user, ts, arrival) order: composite `key` (sorted) and arrival `gid`."""

    key: np.ndarray
    gid: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    def select(self, mask: np.ndarray | None) -> TypeIndex:
        return self if mask is None else TypeIndex(self.key[mask], self.gid[mask])


@dataclass
class _Entry:
    blocks: tuple[weakref.ref[Block], ...]
    total: int  # rows in those blocks (the gid base of anything after them)
    index: TypeIndex

    @property
    def nbytes(self) -> int:
        return int(self.index.key.nbytes + self.index.gid.nbytes)


class _StoreCache:
    """Cached per-type indexes of one store's sealed prefix, least recently used first."""

    def __init__(self, tmin: int) -> None:
        self.tmin = tmin
        self.entries: OrderedDict[int, _Entry] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, code: int) -> _Entry | None:
        entry = self.entries.get(code)
        if entry is not None:
            self.entries.move_to_end(code)
        return entry

    def put(self, code: int, entry: _Entry) -> None:
        """Keep `entry`, evicting the least recently used others beyond the budget."""
        self.entries[code] = entry
        self.entries.move_to_end(code)
        total = self.nbytes
        while total > CACHE_BUDGET_BYTES and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            total -= old.nbytes

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())


_CACHES: weakref.WeakKeyDictionary[Dictionaries, _StoreCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cacheable(block: Block) -> bool:
    return block.label.startswith("seg-")


class EventIndex:
    """The index view of one snapshot: typed (user, ts, arrival)-ordered events on demand."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.blocks = [b for b in snap.blocks if b.n]
        sizes = np.array([b.n for b in self.blocks], dtype=np.int64)
        self.bases = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        self.total = int(self.bases[-1])
        nprefix = 0
        while nprefix < len(self.blocks) and _cacheable(self.blocks[nprefix]):
            nprefix += 1
        self.nprefix = nprefix
        self.ok, self._cache = self._keyspace()
        self.tmin = self._cache.tmin if self._cache is not None else 0
        self._memo: dict[str, TypeIndex] = {}

    def _keyspace(self) -> tuple[bool, _StoreCache | None]:
        if len(self.snap.dicts.users) >= MAX_USERS:
            return False, None
        if not self.blocks:
            return True, _StoreCache(0)
        lo = min(b.min_ts for b in self.blocks)
        hi = max(b.max_ts for b in self.blocks)
        with _CACHES_LOCK:
            cache = _CACHES.get(self.snap.dicts)
            if cache is None or lo < cache.tmin or hi - cache.tmin > TIME_MASK:
                if hi - (lo - _MARGIN) > TIME_MASK:
                    lo = hi - TIME_MASK + 1  # no margin left: fit the data exactly
                    if hi - lo > TIME_MASK:
                        return False, None
                    cache = _StoreCache(lo)
                else:
                    cache = _StoreCache(lo - _MARGIN)
                _CACHES[self.snap.dicts] = cache
        return True, cache

    def within(self, start: int | None, end: int | None) -> bool:
        """Whether every event of the snapshot lies in [start, end) (a filter can be skipped)."""
        return all((start is None or b.min_ts >= start) and (end is None or b.max_ts < end)
                   for b in self.blocks)

    # -- keys --------------------------------------------------------------------------------

    def key_of(self, user: np.ndarray, ts: np.ndarray | int) -> np.ndarray:
        return (user.astype(np.int64) << SHIFT) + (np.asarray(ts, dtype=np.int64) - self.tmin)

    def users_of(self, key: np.ndarray) -> np.ndarray:
        return key >> SHIFT

    def ts_of(self, key: np.ndarray) -> np.ndarray:
        return (key & TIME_MASK) + self.tmin

    # -- per-type indexes --------------------------------------------------------------------

    def events(self, type_name: str) -> TypeIndex:
        """Every event of `type_name` with a user, in (user, ts, arrival) order."""
        code = self.snap.dicts.types.lookup(type_name)
        if code < 0:
            return TypeIndex(np.zeros(0, np.int64), np.zeros(0, np.int64))
        return self._typed(code, type_name)

    def all_events(self) -> TypeIndex:
        """Every event with a user, whatever its type, in (user, ts, arrival) order (paths
        walk each user's whole sequence). Cached like a type's index, under code -1."""
        return self._typed(ALL_TYPES, "\x00all")

    def _typed(self, code: int, memo: str) -> TypeIndex:
        assert self.ok and self._cache is not None
        found = self._memo.get(memo)
        if found is not None:
            return found
        main = self._prefix_index(code, self._cache) if self.nprefix else None
        tail = self._build(code, range(self.nprefix, len(self.blocks)))
        index = tail if main is None else _merge(main, tail)
        self._memo[memo] = index
        return index

    def _prefix_index(self, code: int, cache: _StoreCache) -> TypeIndex:
        prefix = self.blocks[:self.nprefix]
        with cache.lock:
            entry = cache.get(code)
            covered = 0
            if entry is not None:
                for ref, block in zip(entry.blocks, prefix, strict=False):
                    if ref() is not block:
                        break
                    covered += 1
            if entry is not None and covered == len(entry.blocks):
                if covered == len(prefix):
                    return entry.index
                extra = self._build(code, range(covered, len(prefix)))
                index = _merge(entry.index, extra)
            elif entry is not None and covered == len(prefix):
                # an older snapshot than the cached index (a concurrent query): build, keep
                return self._build(code, range(len(prefix)))
            else:
                index = self._build(code, range(len(prefix)))
            cache.put(code, _Entry(tuple(weakref.ref(b) for b in prefix),
                                   int(self.bases[len(prefix)]), index))
            return index

    def _build(self, code: int, which: Iterable[int]) -> TypeIndex:
        users, stamps, gids = [], [], []
        for i in which:
            block = self.blocks[i]
            if code == ALL_TYPES:
                rows = np.flatnonzero(block.user >= 0)
            else:
                counts = block.type_counts
                if code >= len(counts) or not counts[code]:
                    continue
                rows = np.flatnonzero((block.type == code) & (block.user >= 0))
            users.append(block.user[rows])
            stamps.append(block.ts[rows])
            gids.append(rows + self.bases[i])
        if not users:
            return TypeIndex(np.zeros(0, np.int64), np.zeros(0, np.int64))
        user = np.concatenate(users)
        ts = np.concatenate(stamps)
        gid = np.concatenate(gids)
        order = order_by(user, ts)  # stable: ties keep snapshot (arrival) order
        return TypeIndex(self.key_of(user[order], ts[order]), gid[order])

    # -- filters and properties ------------------------------------------------------------

    def mask(self, flt: EventFilter, index: TypeIndex) -> np.ndarray | None:
        """Which events of `index` match `flt` (None: all). Evaluated block by block over
        whole blocks, then read at each event's gid."""
        if flt.where is None and flt.users is None and flt.segment_users is None:
            return None
        full = np.zeros(self.total, dtype=bool)
        codes = None
        if flt.types is not None:
            codes = np.array([self.snap.dicts.types.lookup(t) for t in flt.types],
                             dtype=np.int32)
        for i, block in enumerate(self.blocks):
            if codes is not None:
                counts = block.type_counts
                known = codes[(codes >= 0) & (codes < len(counts))]
                if not len(known) or not counts[known].any():
                    continue
            m = filter_eval.mask(flt, block, slice(0, block.n), self.snap, codes)
            full[self.bases[i]:self.bases[i + 1]] = True if m is None else m
        return full[index.gid]

    def values(self, gids: np.ndarray, prop: str) -> dict[str, np.ndarray]:
        """Typed values of property `prop` at the given events (sentinels where absent)."""
        out = {kind: null_column(kind, len(gids)) for kind in (STR, INT, FLOAT, BOOL)}
        if not len(gids):
            return out
        which = np.searchsorted(self.bases, gids, "right") - 1
        for i in np.unique(which).tolist():
            sel = np.flatnonzero(which == i)
            rows = gids[sel] - self.bases[i]
            block = self.blocks[i]
            for kind in out:
                col = block.column(kind, prop)
                if col is not None:
                    out[kind][sel] = col[rows]
        return out


def _merge(main: TypeIndex, tail: TypeIndex) -> TypeIndex:
    """`main` with `tail` merged in; every tail event arrived after every main event."""
    if not len(tail):
        return main
    if not len(main):
        return tail
    at = np.searchsorted(main.key, tail.key, "right")
    return TypeIndex(np.insert(main.key, at, tail.key), np.insert(main.gid, at, tail.gid))


def count_before(index: TypeIndex, key: np.ndarray, gid: np.ndarray,
                 inclusive: bool = False) -> np.ndarray:
    """For each (key, gid): how many events of `index` come before it in (user, ts, arrival)
    order (`inclusive`: also counting the event itself if present)."""
    n = len(index)
    pos = np.searchsorted(index.key, key, "left")
    if not n:
        return pos
    # same user and millisecond: step over the index events that arrived earlier
    sub = np.flatnonzero((pos < n) & (index.key[np.minimum(pos, n - 1)] == key))
    while len(sub):
        p = pos[sub]
        ok = p < n
        pc = np.minimum(p, n - 1)
        g = index.gid[pc]
        ok &= (index.key[pc] == key[sub]) & ((g <= gid[sub]) if inclusive else (g < gid[sub]))
        pos[sub[ok]] += 1
        sub = sub[ok]
    return pos
