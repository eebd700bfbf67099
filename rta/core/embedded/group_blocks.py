"""Group-aware blocks: counting groups (`unit: "group:<type>"`) with the users' kernels.

As `person_blocks.py` does for persons, a `GroupBlock` reads like the block it wraps except
that `user` holds each event's *group* code: the code, in the group type's own key
dictionary (`Groups.keys`), of the key its `$groups.<type>` property names (-1 where the
event names no group of that type, which every kernel already leaves out). The snapshot's
`dicts.users` is that key dictionary, so kernels size their per-unit arrays by the number of
group keys and decode groups as their keys; `dicts.raw_users` keeps the distinct ids for the
`userId` filter (`filter_eval`), and `raw_user` the codes as sent.

Every block's group column is computed when the snapshot is wrapped (not on first read), so
all codes a query can meet exist before any kernel reads `len(dicts.users)`; the key
dictionary only grows, so codes stay valid for later queries. Wrappers are kept per block
(weakly, as person blocks are), so the funnel/retention user indexes cached per block work.

Thread rule: any thread (the key dictionary locks itself; a race computes a column twice).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from rta.core.embedded.person_blocks import raw_user
from rta.core.embedded.store.block import Block
from rta.core.embedded.store.dictionary import Dictionaries, Dictionary
from rta.core.embedded.store.snapshot import Snapshot

INT64_MIN = np.iinfo(np.int64).min
LUT_ROWS_FACTOR = 8  # a code table up to 8 entries per row beats sorting the rows


class GroupDicts:
    """The store's dictionaries with `users` = one group type's keys."""

    def __init__(self, inner: Dictionaries, keys: Dictionary) -> None:
        self.types = inner.types
        self.sessions = inner.sessions
        self.values = inner.values
        self.users = keys
        self.raw_users = inner.users
        self.inner = inner


def group_codes(block: Block, group_type: str, values: Dictionary,
                keys: Dictionary) -> np.ndarray:
    """int32 group code per row of `block` (-1: no group of that type)."""
    out = np.full(block.n, -1, dtype=np.int32)
    name = "$groups." + group_type
    ints = block.column("i", name)
    if ints is not None:
        has = np.flatnonzero(ints != INT64_MIN)
        if len(has):
            uniq, inverse = np.unique(ints[has], return_inverse=True)
            codes = keys.encode([str(v) for v in uniq.tolist()])
            out[has] = codes[inverse]
    strs = block.column("s", name)
    if strs is not None:
        has = np.flatnonzero(strs >= 0)
        if len(has):
            present = strs[has]
            top = int(present.max()) + 1
            if top <= max(LUT_ROWS_FACTOR * len(present), 1 << 16):  # (no sort: a table)
                mark = np.zeros(top, dtype=bool)
                mark[present] = True
                uniq = np.flatnonzero(mark)
                lut = np.full(top, -1, dtype=np.int32)
                lut[uniq] = _encode(values, keys, uniq)
                out[has] = lut[present]
            else:
                uniq, inverse = np.unique(present, return_inverse=True)
                out[has] = _encode(values, keys, uniq)[inverse]
    return out


def _encode(values: Dictionary, keys: Dictionary, codes: np.ndarray) -> np.ndarray:
    """Group codes of the value strings `codes` ('' is no group)."""
    return keys.encode([t or None for t in values.decode(codes).tolist()])


class GroupBlock:
    """`inner` with `user` = the group code of each row (computed once, at wrap time)."""

    __slots__ = ("__weakref__", "_inner", "user")

    def __init__(self, inner: Block, user: np.ndarray) -> None:
        self._inner = weakref.ref(inner)
        self.user = user

    @property
    def inner(self) -> Block:
        block = self._inner()
        if block is None:  # (only if used after its snapshot was released)
            raise RuntimeError("a group-aware block outlived its snapshot")
        return block

    @property
    def raw_user(self) -> np.ndarray:
        return raw_user(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class GroupSnapshot(Snapshot):
    """A snapshot of GroupBlocks; `source` keeps the wrapped snapshot (and its blocks)."""

    source: Snapshot | None = None
    group_type: str = ""


def group_snapshot(snap: Snapshot, group_type: str, keys: Dictionary,
                   dicts: GroupDicts, wrapped: weakref.WeakKeyDictionary[Any, Any]
                   ) -> Snapshot:
    """`snap` whose blocks count groups of `group_type` as users (wrappers reused)."""
    blocks = []
    for block in snap.blocks:
        found = wrapped.get(block)
        if found is None:
            found = GroupBlock(block, group_codes(block, group_type, snap.dicts.values, keys))
            wrapped[block] = found
        blocks.append(found)
    return GroupSnapshot(blocks=cast(list[Block], blocks), dicts=cast(Dictionaries, dicts),
                         version=snap.version, source=snap, group_type=group_type)
