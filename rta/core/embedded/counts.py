"""Counting kernels: totals, group-by counts, top-N values and distinct users.

Everything works block by block on the rows a filter selects (partial aggregation), merging
small per-block results (bincounts over dense dictionary codes, user bitmaps) instead of
concatenating columns. Group-by keys of any field map to one dense integer key space
(`GroupKeys`), so one kernel serves event types, users and properties of every kind.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rta.core.embedded import filter_eval
from rta.core.embedded.store.block import Block
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR
from rta.core.queries.filters import EventFilter

TOP_FIELDS = {"type": "type", "eventType": "type", "userId": "user", "sessionId": "session"}
BITMAP_LIMIT = 1 << 25  # largest boolean bitmap (bytes) a distinct count may allocate


@dataclass
class Part:
    """The rows of one block a filter selected: a time slice, optionally masked."""

    block: Block
    sl: slice
    mask: np.ndarray | None
    _rows: np.ndarray | None = None

    @property
    def n(self) -> int:
        if self.mask is None:
            return self.sl.stop - self.sl.start
        return len(self.rows())

    def rows(self) -> np.ndarray:
        """Absolute row numbers of the selected rows (computed once: integer takes are
        several times faster than boolean indexing, and a part is read column by column)."""
        if self._rows is None:
            if self.mask is None:
                self._rows = np.arange(self.sl.start, self.sl.stop)
            else:
                self._rows = np.flatnonzero(self.mask) + self.sl.start
        return self._rows

    @property
    def whole(self) -> bool:
        return self.mask is None and self.sl.start == 0 and self.sl.stop == self.block.n

    def take(self, column: np.ndarray) -> np.ndarray:
        if self.mask is None:
            return column[self.sl]
        return column.take(self.rows())

    def numeric(self, key: str) -> np.ndarray | None:
        """float64 values of property `key` on these rows (ints merged), NaN where absent;
        None when the block has no numeric column for `key`."""
        f = self.block.column(FLOAT, key)
        i = self.block.column(INT, key)
        if f is None and i is None:
            return None
        fv = self.take(f) if f is not None else None
        if i is None:
            return fv
        iv = self.take(i)
        as_float = np.where(iv == INT64_MIN, np.nan, iv.astype(np.float64))
        return as_float if fv is None else np.where(np.isnan(as_float), fv, as_float)


def is_simple(flt: EventFilter) -> bool:
    """Only time and event types: zone maps and binary search answer counts directly."""
    return flt.users is None and flt.where is None and flt.segment_users is None


def type_codes(flt: EventFilter, snap: Snapshot) -> np.ndarray | None:
    if flt.types is None:
        return None
    codes = [snap.dicts.types.lookup(t) for t in flt.types]
    return np.array(sorted({c for c in codes if c >= 0}), dtype=np.int64)


def select(flt: EventFilter, snap: Snapshot) -> Iterator[Part]:
    """The filter's rows block by block; a block whose rows all match carries no mask."""
    codes = type_codes(flt, snap) if is_simple(flt) else None
    if codes is not None:
        # Type-only filters: skip the mask when the zone map says every row qualifies.
        if not len(codes):
            return
        for block, sl in snap.ranges(flt.start, flt.end):
            counts = block.type_counts
            known = codes[codes < len(counts)]
            hits = int(counts[known].sum()) if len(known) else 0
            if not hits:
                continue
            if hits == block.n:
                yield Part(block, sl, None)
                continue
            t = block.type[sl]
            mask = t == known[0] if len(known) == 1 else np.isin(t, known)
            yield Part(block, sl, mask)
        return
    for block, sl, mask in filter_eval.select(flt, snap):
        yield Part(block, sl, mask)


def count_by_type(flt: EventFilter, snap: Snapshot) -> np.ndarray:
    """Matching events per event-type code. Blocks wholly inside the range with no filter
    beyond types are answered from their zone map (per-type counts) without a scan."""
    n_types = len(snap.dicts.types)
    acc = np.zeros(n_types, dtype=np.int64)
    if is_simple(flt):
        for block, sl in snap.ranges(flt.start, flt.end):
            if sl.start == 0 and sl.stop == block.n:
                counts = block.type_counts
            else:
                counts = np.bincount(block.type[sl])
            acc[:len(counts)] += counts
        codes = type_codes(flt, snap)
        if codes is not None:
            keep = np.zeros(n_types, dtype=bool)
            keep[codes] = True
            acc[~keep] = 0
        return acc
    for part in select(flt, snap):
        counts = np.bincount(part.take(part.block.type))
        acc[:len(counts)] += counts
    return acc


def count_events(flt: EventFilter, snap: Snapshot) -> int:
    return int(count_by_type(flt, snap).sum())


class GroupKeys:
    """Dense integer keys for the values of one field over a selection.

    Key space: event types / users / sessions use their dictionary codes. A property uses
    string-dictionary codes [0, S), then false/true at S and S+1, then the distinct numeric
    values seen in the selection (ints and floats merged) at S+2+i. -1 means "no value".
    """

    def __init__(self, field: str, snap: Snapshot, parts: list[Part]) -> None:
        self.field = field
        self.snap = snap
        top = TOP_FIELDS.get(field)
        self.top = top
        self.key = field[len("properties."):] if field.startswith("properties.") else field
        self.numbers = np.zeros(0, dtype=np.float64)
        if top is not None:
            self.dictionary = {"type": snap.dicts.types, "user": snap.dicts.users,
                               "session": snap.dicts.sessions}[top]
            self.base = len(self.dictionary)
            self.size = self.base
            return
        self.dictionary = snap.dicts.values
        self.base = len(self.dictionary)
        uniques = [np.unique(v[~np.isnan(v)]) for p in parts
                   if (v := p.numeric(self.key)) is not None]
        if uniques:
            self.numbers = np.unique(np.concatenate(uniques))
        self.size = self.base + 2 + len(self.numbers)

    def ids(self, part: Part) -> np.ndarray:
        """int64 key of each selected row, -1 where the field is absent."""
        block = part.block
        if self.top is not None:
            return part.take(getattr(block, self.top)).astype(np.int64)
        out = np.full(part.n, -1, dtype=np.int64)
        s = block.column(STR, self.key)
        if s is not None:
            codes = part.take(s)
            np.copyto(out, codes, where=codes >= 0, casting="unsafe")
        b = block.column(BOOL, self.key)
        if b is not None:
            flags = part.take(b)
            np.copyto(out, flags.astype(np.int64) + self.base, where=flags >= 0)
        if len(self.numbers):
            v = part.numeric(self.key)
            if v is not None:
                ok = ~np.isnan(v)
                pos = np.searchsorted(self.numbers, v[ok]) + (self.base + 2)
                out[ok] = pos
        return out

    def label(self, gid: int) -> Any:
        if gid < self.base:
            return self.dictionary.strings[gid]
        if self.top is not None:
            raise IndexError(gid)
        if gid < self.base + 2:
            return gid == self.base + 1
        return number_label(float(self.numbers[gid - self.base - 2]))

    def sort_key(self, gid: int) -> tuple[int, Any]:
        """Deterministic tie order: numbers, then strings, then booleans."""
        label = self.label(gid)
        if isinstance(label, bool):
            return (2, label)
        if isinstance(label, str):
            return (1, label)
        return (0, label)


def number_label(value: float) -> int | float:
    """A numeric group key as JSON shows it: integral values as ints."""
    if value.is_integer() and abs(value) < 2**63:  # (2**53 itself is an integer too)
        return int(value)
    return value


def rank(keys: GroupKeys, score: np.ndarray, present: np.ndarray, limit: int | None) -> list[int]:
    """Group ids with `present`, ordered by score descending then by value; the first `limit`.

    Ties at the cut are resolved by value, so the answer is deterministic.
    """
    candidates = np.flatnonzero(present)
    if limit is not None and len(candidates) > limit:
        scores = score[candidates]
        cut = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        candidates = candidates[scores >= cut]
    ordered = sorted(candidates.tolist(), key=lambda g: (-float(score[g]), keys.sort_key(g)))
    return ordered if limit is None else ordered[:limit]


def distinct_users(parts: list[Part], n_users: int) -> int:
    """Exact distinct user count via a bitmap over the dense user codes."""
    seen = np.zeros(n_users + 1, dtype=bool)
    for part in parts:
        seen[part.take(part.block.user)] = True  # -1 (no user) lands in the spare last slot
    return int(np.count_nonzero(seen[:n_users]))


class DistinctCounter:
    """Distinct users per key, merged across blocks (bitmap if small, sorted pairs if not)."""

    def __init__(self, size: int, n_users: int) -> None:
        self.size = size
        self.n_users = max(n_users, 1)
        self.bitmap: np.ndarray | None = None
        self.pairs: list[np.ndarray] = []
        if size * self.n_users <= BITMAP_LIMIT:
            self.bitmap = np.zeros(size * self.n_users, dtype=bool)

    def add(self, keys: np.ndarray, users: np.ndarray) -> None:
        ok = (users >= 0) & (keys >= 0)
        combined = keys[ok] * self.n_users + users[ok].astype(np.int64)
        if self.bitmap is not None:
            self.bitmap[combined] = True
        elif len(combined):
            self.pairs.append(np.unique(combined))

    def counts(self) -> np.ndarray:
        if self.bitmap is not None:
            return np.count_nonzero(self.bitmap.reshape(self.size, self.n_users), axis=1)
        if not self.pairs:
            return np.zeros(self.size, dtype=np.int64)
        merged = np.unique(np.concatenate(self.pairs))
        return np.bincount(merged // self.n_users, minlength=self.size)


@dataclass
class GroupCounts:
    keys: GroupKeys
    counts: np.ndarray  # per group id
    missing: int  # selected events without the field
    total: int  # selected events


def group_counts(flt: EventFilter, snap: Snapshot, field: str) -> GroupCounts:
    """Events per value of `field` (a top-level field or a property)."""
    parts = list(select(flt, snap))
    keys = GroupKeys(field, snap, parts)
    counts = np.zeros(keys.size + 1, dtype=np.int64)
    total = 0
    if keys.top == "type":
        by_type = count_by_type(flt, snap)
        return GroupCounts(keys, by_type[:keys.size], 0, int(by_type.sum()))
    for part in parts:
        ids = keys.ids(part)
        total += len(ids)
        bc = np.bincount(ids + 1)
        counts[:len(bc)] += bc
    return GroupCounts(keys, counts[1:], int(counts[0]), total)


@dataclass
class TopValues:
    keys: GroupKeys
    chosen: list[int]
    counts: np.ndarray  # per group id
    users: np.ndarray  # distinct users per chosen group (aligned with `chosen`)
    with_value: int  # selected events that have the property
    total: int  # selected events
    distinct: int  # distinct values


def top_values(flt: EventFilter, snap: Snapshot, field: str, n: int,
               by_users: bool = False) -> TopValues:
    """The `n` most frequent values of `field` with their distinct users.

    Distinct users are counted only for the chosen values (a bitmap of n x users), unless
    ranking by users needs them for every value.
    """
    parts = list(select(flt, snap))
    keys = GroupKeys(field, snap, parts)
    n_users = len(snap.dicts.users)
    counts = np.zeros(keys.size + 1, dtype=np.int64)
    all_users = DistinctCounter(keys.size, n_users) if by_users else None
    total = 0
    for part in parts:
        ids = keys.ids(part)
        total += len(ids)
        bc = np.bincount(ids + 1)
        counts[:len(bc)] += bc
        if all_users is not None:
            all_users.add(ids, part.take(part.block.user))
    group = counts[1:]
    present = group > 0
    if all_users is not None:
        user_counts = all_users.counts()
        chosen = rank(keys, user_counts.astype(np.float64) + group / (total + 1.0), present, n)
        users = user_counts[chosen] if chosen else np.zeros(0, dtype=np.int64)
    else:
        chosen = rank(keys, group.astype(np.float64), present, n)
        lut = np.full(keys.size + 1, -1, dtype=np.int64)
        lut[np.asarray(chosen, dtype=np.int64)] = np.arange(len(chosen))
        counter = DistinctCounter(len(chosen), n_users)
        for part in parts:
            if chosen:
                counter.add(lut[keys.ids(part)], part.take(part.block.user))
        users = counter.counts() if chosen else np.zeros(0, dtype=np.int64)
    return TopValues(keys, chosen, group, users, int(group.sum()), total,
                     int(np.count_nonzero(present)))


def unique_users(flt: EventFilter, snap: Snapshot) -> tuple[int, int]:
    """(distinct users, events considered) over the filter's rows, exact."""
    parts = list(select(flt, snap))
    return distinct_users(parts, len(snap.dicts.users)), sum(p.n for p in parts)


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0

