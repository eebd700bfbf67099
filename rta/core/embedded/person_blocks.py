"""Person-aware blocks: the one place the embedded engine turns distinct ids into persons.

A `PersonBlock` reads like the block it wraps, except that `user` holds each event's
*person* code (the user code of the person's id, `Persons.remap`) instead of the distinct
id's own code. Every kernel reads `block.user`, so unique counts, funnels, retention, A/B
tests, segments, paths and heatmaps count persons without knowing persons exist. `raw_user`
keeps the codes as sent (the `userId` filter, rendered events' `userId`).

Wrappers are reused while the mapping stays at one version (a `WeakKeyDictionary` keyed by
the wrapped block), so caches keyed by block identity (the user index of funnels and
retention) keep working between links, and are rebuilt after one, as they must be: a link
regroups the events they sorted by user. A wrapper refers to its block weakly (else the
dictionary's values would keep its keys, every head block ever made, alive); the
`PersonSnapshot` keeps the store's own snapshot, so the blocks (and the segment files the
store keeps for live snapshots) stay while a query holds it.

Thread rule: any thread; a wrapper computes its `user` column once (a benign race at worst
computes it twice).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from rta.core.embedded.store.block import Block
from rta.core.embedded.store.snapshot import Snapshot


class PersonBlock:
    """`inner` with `user` remapped through `codes` (person code per user code)."""

    __slots__ = ("__weakref__", "_codes", "_inner", "_user")

    def __init__(self, inner: Block, codes: np.ndarray) -> None:
        self._inner = weakref.ref(inner)
        self._codes = codes
        self._user: np.ndarray | None = None

    @property
    def inner(self) -> Block:
        block = self._inner()
        if block is None:  # (only if used after its snapshot was released)
            raise RuntimeError("a person-aware block outlived its snapshot")
        return block

    @property
    def user(self) -> np.ndarray:
        user = self._user
        if user is None:
            raw = self.inner.user
            user = np.where(raw >= 0, self._codes[np.maximum(raw, 0)], raw).astype(np.int32)
            self._user = user
        return user

    @property
    def raw_user(self) -> np.ndarray:
        return self.inner.user

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class PersonSnapshot(Snapshot):
    """A snapshot of PersonBlocks; `source` (the store's snapshot) keeps their blocks."""

    source: Snapshot | None = None
    mapping: int = -1  # the person mapping's version (caches of members key on it)


def raw_user(block: Block) -> np.ndarray:
    """The distinct ids' own codes, person-aware block or not."""
    return cast(np.ndarray, getattr(block, "raw_user", block.user))


def person_snapshot(snap: Snapshot, codes: np.ndarray, version: int,
                    wrapped: weakref.WeakKeyDictionary[Any, Any]) -> Snapshot:
    """`snap` whose blocks are PersonBlocks for mapping `version` (reused when possible)."""
    blocks = []
    for block in snap.blocks:
        found = wrapped.get(block)
        if found is None or found[0] != version:
            found = (version, PersonBlock(block, codes))
            wrapped[block] = found
        blocks.append(found[1])
    return PersonSnapshot(blocks=cast(list[Block], blocks), dicts=snap.dicts,
                          version=snap.version, source=snap, mapping=version)
