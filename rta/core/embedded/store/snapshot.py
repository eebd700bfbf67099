"""Snapshot: the immutable set of blocks one query reads, with zone-map pruning.

Threads: any thread may read a snapshot. Hold the snapshot itself (not only its blocks) for
the whole query: the store keeps the files of the segments it holds until it is released."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rta.core.embedded.store.block import Block
from rta.core.embedded.store.dictionary import Dictionaries


@dataclass
class Snapshot:
    blocks: list[Block]
    dicts: Dictionaries
    version: int

    @property
    def total_events(self) -> int:
        return sum(b.n for b in self.blocks)

    def ranges(self, start: int | None, end: int | None) -> Iterator[tuple[Block, slice]]:
        """Each block overlapping [start, end) with the slice of its rows inside it."""
        for block in self.blocks:
            if not block.n:
                continue
            if start is not None and block.max_ts < start:
                continue
            if end is not None and block.min_ts >= end:
                continue
            sl = block.time_slice(start, end)
            if sl.stop > sl.start:
                yield block, sl

    def time_bounds(self) -> tuple[int, int] | None:
        live = [b for b in self.blocks if b.n]
        if not live:
            return None
        return min(b.min_ts for b in live), max(b.max_ts for b in live)

    def property_kinds(self, key: str) -> set[str]:
        """The column kinds ('i', 'f', 's', 'b') property `key` has in any block."""
        kinds: set[str] = set()
        for block in self.blocks:
            kinds.update(block.property_keys.get(key, ()))
        return kinds
