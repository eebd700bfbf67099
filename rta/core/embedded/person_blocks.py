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

Person properties (`person.<key>`) are virtual property columns of every PersonBlock
(`column`, `numeric`, `present`), read from `person_columns.PersonValues` by the raw user
codes: the current properties of the person each event's distinct id belongs to.

Thread rule: any thread; a wrapper computes its `user` column once (a benign race at worst
computes it twice).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from rta.core.embedded.person_columns import PersonValues
from rta.core.embedded.store.block import FLOAT, INT, INT64_MIN, Block, null_column
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.person_props import PREFIX


class PersonBlock:
    """`inner` with `user` remapped through `codes` (person code per user code; None:
    users as sent) and person properties (`values`) as `person.<key>` columns."""

    __slots__ = ("__weakref__", "_codes", "_inner", "_keys", "_user", "_values")

    def __init__(self, inner: Block, codes: np.ndarray | None,
                 values: PersonValues | None = None) -> None:
        self._inner = weakref.ref(inner)
        self._codes = codes
        self._values = values
        self._user: np.ndarray | None = None
        self._keys: dict[str, list[str]] | None = None

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
            if self._codes is None:
                return raw
            user = np.where(raw >= 0, self._codes[np.maximum(raw, 0)], raw).astype(np.int32)
            self._user = user
        return user

    @property
    def raw_user(self) -> np.ndarray:
        return self.inner.user

    def set_values(self, values: PersonValues | None) -> None:
        """The current person properties (a query already running may see either)."""
        if values is not self._values:
            self._values = values
            self._keys = None

    @property
    def props(self) -> Any:
        inner = self.inner.props
        return inner if self._values is None else PersonProps(inner, self)

    @property
    def property_keys(self) -> dict[str, list[str]]:
        keys = self.inner.property_keys
        if self._values is None:
            return keys
        if self._keys is None:
            merged = dict(keys)
            for k, kinds in self._values.key_kinds.items():
                merged[PREFIX + k] = sorted({*merged.get(PREFIX + k, ()), *kinds})
            self._keys = merged
        return self._keys

    def column(self, kind: str, key: str) -> np.ndarray | None:
        inner = self.inner.column(kind, key)
        if self._values is None or not key.startswith(PREFIX):
            return inner
        person = self._values.column(kind, key[len(PREFIX):], self.inner.user)
        if person is None or inner is None:
            return person if person is not None else inner
        # an event property named person.<key> shows where the person lacks the key
        # (per kind, as ClickHouse's mapUpdate merges each kind's map)
        return np.where(_null(kind, person), inner, person)

    def numeric(self, key: str) -> np.ndarray:
        if self._values is None or not key.startswith(PREFIX):
            return self.inner.numeric(key)
        f = self.column(FLOAT, key)
        i = self.column(INT, key)
        if i is None:
            return f if f is not None else null_column(FLOAT, self.inner.n)
        as_float = np.where(i == INT64_MIN, np.nan, i.astype(np.float64))
        return as_float if f is None else np.where(np.isnan(as_float), f, as_float)

    def present(self, key: str) -> np.ndarray:
        mask = self.inner.present(key)
        if self._values is None or not key.startswith(PREFIX):
            return mask
        for kind in self._values.kinds(key[len(PREFIX):]):
            col = self._values.column(kind, key[len(PREFIX):], self.inner.user)
            if col is not None:
                mask |= ~_null(kind, col)
        return mask

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _null(kind: str, col: np.ndarray) -> np.ndarray:
    if kind == FLOAT:
        return np.isnan(col)
    return col == INT64_MIN if kind == INT else col < 0


class PersonProps(Mapping[str, np.ndarray]):
    """A block's property columns plus `<kind>:person.<key>` (read by name only: iterating
    walks the stored columns, so nothing that copies every column copies person ones)."""

    def __init__(self, inner: Mapping[str, np.ndarray], block: PersonBlock) -> None:
        self._inner = inner
        self._block = block

    def __getitem__(self, name: str) -> np.ndarray:
        if name[2:].startswith(PREFIX):
            col = self._block.column(name[0], name[2:])
            if col is None:
                raise KeyError(name)
            return col
        return self._inner[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name[2:].startswith(PREFIX):
            return self._block.column(name[0], name[2:]) is not None
        return name in self._inner

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class PersonSnapshot(Snapshot):
    """A snapshot of PersonBlocks; `source` (the store's snapshot) keeps their blocks."""

    source: Snapshot | None = None
    mapping: int = -1  # the person mapping's (and properties') version: member caches key on it


def raw_user(block: Block) -> np.ndarray:
    """The distinct ids' own codes, person-aware block or not."""
    return cast(np.ndarray, getattr(block, "raw_user", block.user))


def person_snapshot(snap: Snapshot, codes: np.ndarray | None, version: Any,
                    wrapped: weakref.WeakKeyDictionary[Any, Any],
                    values: PersonValues | None = None, mapping: int = -1) -> Snapshot:
    """`snap` whose blocks are PersonBlocks for user mapping `version`, reused while it
    holds (caches keyed by block, the funnel/retention user indexes, depend on `user`
    only); a reused block takes the current person properties (`values`), which change far
    more often than links (any `$set`). `mapping` (for member caches) covers both."""
    blocks = []
    for block in snap.blocks:
        found = wrapped.get(block)
        if found is None or found[0] != version:
            found = (version, PersonBlock(block, codes, values))
            wrapped[block] = found
        else:
            found[1].set_values(values)
        blocks.append(found[1])
    return PersonSnapshot(blocks=cast(list[Block], blocks), dicts=snap.dicts,
                          version=snap.version, source=snap, mapping=mapping)
