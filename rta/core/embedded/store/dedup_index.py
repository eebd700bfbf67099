"""Sorted dedup keys of the segments in the dedup window, merged into a few levels.

`reserve` used to binary-search every segment in the window for every batch: after 10M
events (a hundred segments of 100k) that was ~100 searches per batch, more CPU per event
than the rest of ingest. Here a segment's keys merge into levels like a binary counter (a
level absorbs the one after it while it is at most twice its size), so a batch searches
O(log segments) arrays and each key is merged O(log segments) times.

The index covers exactly the segments `reserve` names each time (`sync`): a segment that
left (out of the window, dropped by retention or quarantine) has its keys masked out of
its level by the owner index kept beside the keys, without reading anything back.

Threads: the store's owner thread (`reserve`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rta.core.embedded.store.segment import Segment


@dataclass
class _Level:
    segments: list[Segment]
    keys: np.ndarray  # sorted uint64 dedup keys of all its segments
    owners: np.ndarray  # the position in `segments` of each key's segment (`_owner_dtype`)


class DedupIndex:
    def __init__(self) -> None:
        self.levels: list[_Level] = []
        self._covered: dict[int, Segment] = {}  # id(segment) -> segment

    def sync(self, wanted: list[Segment]) -> None:
        """Cover exactly `wanted` (in order; new ones are added in that order)."""
        want = {id(s): s for s in wanted}
        if want.keys() == self._covered.keys():
            return
        gone = self._covered.keys() - want.keys()
        if gone:
            self.levels = [level for level in (_without(lv, gone) for lv in self.levels)
                           if level is not None]
        for key, seg in want.items():
            if key not in self._covered:
                self._add(seg)
        self._covered = want

    def found(self, wanted: np.ndarray) -> np.ndarray:
        """For sorted `wanted` keys: True where a covered segment holds the key."""
        out = np.zeros(len(wanted), dtype=bool)
        for level in self.levels:
            keys = level.keys
            pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            out |= keys[pos] == wanted
        return out

    def _add(self, seg: Segment) -> None:
        keys = seg.sorted_ids
        seg.__dict__.pop("sorted_ids", None)  # (kept here now; recomputed if ever asked)
        if not len(keys):
            return
        level = _Level([seg], keys, np.zeros(len(keys), dtype=np.uint8))
        while self.levels and len(self.levels[-1].keys) <= 2 * len(level.keys):
            level = _merge(self.levels.pop(), level)
        self.levels.append(level)


def _merge(a: _Level, b: _Level) -> _Level:
    keys = np.concatenate([a.keys, b.keys])
    dtype = _owner_dtype(len(a.segments) + len(b.segments))
    owners = np.concatenate([a.owners.astype(dtype),
                             b.owners.astype(dtype) + dtype(len(a.segments))])
    order = np.argsort(keys, kind="stable")
    return _Level(a.segments + b.segments, keys[order], owners[order])


def _without(level: _Level, gone: set[int]) -> _Level | None:
    """`level` without the keys of segments in `gone` (None when nothing is left)."""
    drop = [i for i, s in enumerate(level.segments) if id(s) in gone]
    if not drop:
        return level
    if len(drop) == len(level.segments):
        return None
    keep = np.isin(level.owners, np.array(drop, dtype=np.int64), invert=True)
    kept = [i for i in range(len(level.segments)) if i not in set(drop)]
    remap: np.ndarray = np.zeros(len(level.segments), dtype=_owner_dtype(len(kept)))
    remap[kept] = np.arange(len(kept))
    return _Level([level.segments[i] for i in kept], level.keys[keep],
                  remap[level.owners[keep]])


def _owner_dtype(segments: int) -> type:
    """The narrowest integer type for positions among `segments` segments: the owners cost
    a byte an event rather than four while a level holds fewer than 256 segments."""
    if segments <= 1 << 8:
        return np.uint8
    if segments <= 1 << 16:
        return np.uint16
    return np.int32


class RecentKeys:
    """The dedup keys reserved since the last seal, as a few sorted uint64 arrays merged
    like `DedupIndex`'s levels: a batch checks and reserves its keys with a few numpy
    searches instead of a dict lookup per key (a dict of Python ints also cost ~90 bytes
    an event, for every event in the head)."""

    def __init__(self) -> None:
        self.levels: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(level) for level in self.levels)

    def found(self, wanted: np.ndarray) -> np.ndarray:
        """For sorted `wanted` keys: True where the key is reserved."""
        return _found(self.levels, wanted)

    def add(self, keys: np.ndarray, is_sorted: bool = False) -> None:
        if not len(keys):
            return
        level = np.asarray(keys if is_sorted else np.sort(keys), dtype=np.uint64)
        while self.levels and len(self.levels[-1]) <= 2 * len(level):
            level = np.sort(np.concatenate([self.levels.pop(), level]), kind="stable")
        self.levels.append(level)

    def remove(self, keys: np.ndarray) -> None:
        """Forget `keys` (every copy of each)."""
        if not len(keys) or not self.levels:
            return
        gone = np.sort(np.asarray(keys, dtype=np.uint64))
        kept = [level[~_found([gone], level)] for level in self.levels]
        self.levels = [level for level in kept if len(level)]

    def array(self) -> np.ndarray:
        """Every reserved key, sorted."""
        if not self.levels:
            return np.zeros(0, dtype=np.uint64)
        return np.sort(np.concatenate(self.levels))


def _found(levels: list[np.ndarray], wanted: np.ndarray) -> np.ndarray:
    out = np.zeros(len(wanted), dtype=bool)
    for keys in levels:
        pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        out |= keys[pos] == wanted
    return out
