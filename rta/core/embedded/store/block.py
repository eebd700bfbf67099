"""Block: an immutable, time-sorted run of events held as typed numpy columns.

Segments on disk and the in-memory head both present themselves as Blocks, so every query
kernel sees one shape. Missing values use sentinels instead of validity bitmaps (NaN for
floats, INT64_MIN for ints, -1 for codes and booleans) so columns stay plain numpy arrays that
memory-map zero-copy from Arrow IPC.

Threads: a block is immutable once published (the store builds head blocks on its owner
thread, under its head lock), so any number of threads may read one at once.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rta.core.embedded.store.dictionary import Dictionaries, Dictionary
from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR, EventBatch

_HEX_LOWER = re.compile(r"[0-9a-f]{32}")
NULL_DTYPES: dict[str, tuple[type, object]] = {
    INT: (np.int64, INT64_MIN),
    FLOAT: (np.float64, np.nan),
    STR: (np.int32, -1),
    BOOL: (np.int8, -1),
}
BASE_COLUMNS = ("ts", "recv", "type", "user", "session", "id_hi", "id_lo")


def id_parts(text: str) -> tuple[int, int, bool]:
    """(high 64 bits, low 64 bits, is_custom) of an event id.

    Canonical UUIDs are stored as 16 bytes; any other id is hashed to 16 bytes and its text
    kept beside it so it round-trips exactly.
    """
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        digits = text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:]
        if _HEX_LOWER.fullmatch(digits):
            value = int(digits, 16)
            return value >> 64, value & 0xFFFFFFFFFFFFFFFF, False
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")
    return h >> 64, h & 0xFFFFFFFFFFFFFFFF, True


_KEY_MIX = np.uint64(0x9E3779B97F4A7C15)


def dedup_keys(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """One well-spread uint64 per id for duplicate lookups.

    Generated ids share their high half within a process and count in their low half, so
    neither half alone is unique across restarts; this mix of both is (up to 2**-64 odds)."""
    return lo ^ (hi * _KEY_MIX)


def null_column(kind: str, n: int) -> np.ndarray:
    dtype, sentinel = NULL_DTYPES[kind]
    return np.full(n, sentinel, dtype=dtype)


# -- property columns: dense or sparse ----------------------------------------------------

# A property column is stored sparse (row positions + values) when it holds a value in fewer
# than 1/SPARSE_SHARE of the block's rows, else as a dense column with sentinels. A sparse
# value costs 4 bytes of row position plus its own: at 1/16 an int64 key takes 0.75 bytes a
# row instead of 8, a boolean 0.31 instead of 1, and a key set on one event in a million
# costs bytes, not megabytes, so storage grows with the values present rather than keys x
# rows. Properties of whole event types (page, duration, status: a tenth of the rows or
# more) stay dense, so queries read them as before without materialising anything.
SPARSE_SHARE = 16


def sparse_fits(count: int, n: int) -> bool:
    """Whether a column with `count` values in `n` rows is kept sparse."""
    return count * SPARSE_SHARE < n


def row_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


def not_null(kind: str, values: np.ndarray) -> np.ndarray:
    """True where `values` (a column of `kind`) holds a value, not the kind's sentinel."""
    if kind == FLOAT:
        return ~np.isnan(values)
    return values != NULL_DTYPES[kind][1]


@dataclass(frozen=True)
class SparseColumn:
    """One key's values in a block of `n` rows: ascending row positions and their values."""

    kind: str
    rows: np.ndarray
    values: np.ndarray
    n: int

    def dense(self) -> np.ndarray:
        out = null_column(self.kind, self.n)
        out[self.rows] = self.values
        return out


class SparseGroup:
    """Every sparse column of one kind in a block, key-major (CSR): key j's values are
    `values[offsets[j]:offsets[j+1]]` at rows `rows[...]` (ascending within a key).

    Keeping all keys of a kind in three arrays instead of two per key lets whole-block work
    (reorder, merge, select, write) run as a few vectorised passes over the values, and costs
    no per-key Python objects: 100k rare keys are 100k names, not 300k small arrays."""

    __slots__ = ("_index", "kind", "names", "offsets", "rows", "values")

    def __init__(self, kind: str, names: list[str], offsets: np.ndarray, rows: np.ndarray,
                 values: np.ndarray, index: dict[str, int] | None = None) -> None:
        self.kind = kind
        self.names = names  # "<kind>:<key>"
        self.offsets = offsets  # int64, len(names) + 1
        self.rows = rows
        self.values = values
        self._index = index

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {name: j for j, name in enumerate(self.names)}
        return self._index

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.rows.nbytes + self.values.nbytes)

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def key_ids(self) -> np.ndarray:
        """The key index of every value."""
        return np.repeat(np.arange(len(self.names), dtype=np.int32), self.counts())

    def column(self, j: int, n: int) -> SparseColumn:
        lo, hi = int(self.offsets[j]), int(self.offsets[j + 1])
        return SparseColumn(self.kind, self.rows[lo:hi], self.values[lo:hi], n)

    def remap(self, new_rows: np.ndarray, n: int, keys: np.ndarray | None = None) -> SparseGroup:
        """The group with value i moved to row `new_rows[i]` of an `n`-row block (dropped
        where negative): one sort for all keys together."""
        keys = self.key_ids() if keys is None else keys
        keep = new_rows >= 0
        if not keep.all():
            keys, new_rows, values = keys[keep], new_rows[keep], self.values[keep]
        else:
            values = self.values
        order = np.lexsort((new_rows, keys))
        return SparseGroup(self.kind, self.names, _offsets(keys, len(self.names)),
                           new_rows[order].astype(row_dtype(n)), values[order], self._index)

    def restrict(self, wanted: Collection[str]) -> SparseGroup | None:
        """Only the keys in `wanted` (None if none is)."""
        wanted = _as_set(wanted)
        flags = np.fromiter((name in wanted for name in self.names), bool, len(self.names))
        if flags.all():
            return self
        if not flags.any():
            return None
        kept = np.flatnonzero(flags)
        per_value = np.repeat(flags, self.counts())
        counts = self.counts()[kept]
        offsets = np.zeros(len(kept) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return SparseGroup(self.kind, [self.names[j] for j in kept.tolist()], offsets,
                           self.rows[per_value], self.values[per_value])

    def select(self, rows: slice | np.ndarray, n: int) -> SparseGroup:
        """The group over `rows` of its block (a slice, or ascending positions), renumbered
        0..len(rows)-1: O(values log rows), nothing per row of the block."""
        if isinstance(rows, slice):
            start, stop = rows.start or 0, rows.stop
            new = self.rows.astype(np.int64) - start
            new[(self.rows < start) | (self.rows >= stop)] = -1
        else:
            pos = np.searchsorted(rows, self.rows)
            hit = pos < len(rows)
            hit[hit] = rows[pos[hit]] == self.rows[hit]
            new = np.where(hit, pos, -1)
        return self.remap(new, n)


def _as_set(names: Collection[str]) -> Collection[str]:
    """`names` with O(1) membership (callers may pass lists)."""
    return names if isinstance(names, set | frozenset | dict) else set(names)


def _offsets(keys: np.ndarray, k: int) -> np.ndarray:
    """CSR offsets of `keys` (key ids, any order) over `k` keys."""
    offsets = np.zeros(k + 1, np.int64)
    np.cumsum(np.bincount(keys, minlength=k), out=offsets[1:])
    return offsets


def build_group(kind: str, names: list[str], keys: np.ndarray, rows: np.ndarray,
                values: np.ndarray, n: int, index: dict[str, int] | None = None
                ) -> SparseGroup:
    """A group from values in any order: `keys[i]` indexes `names`, `rows[i]` its row."""
    order = np.lexsort((rows, keys))
    return SparseGroup(kind, names, _offsets(keys, len(names)),
                       rows[order].astype(row_dtype(n)), values[order], index)


Entry = np.ndarray | SparseColumn


class PropColumns(Mapping[str, np.ndarray]):
    """`Block.props`: property column name -> dense column, whichever way it is stored.

    Reading a name gives a dense array, as query kernels expect (a sparse column is
    materialised for that one key, O(rows)). Code that walks every column (merging,
    reordering, writing, rendering, exporting) must not: it uses `dense_names`,
    `sparse_names`, `dense_column`, `groups` and `entry`, which never widen a sparse column.
    (Mapping's own `values()` and `items()` would, once per key: keys x rows.)"""

    def __init__(self, n: int, dense: dict[str, np.ndarray] | None = None,
                 groups: dict[str, SparseGroup] | None = None) -> None:
        self.n = n
        self._dense = dense or {}
        self._groups = {k: g for k, g in (groups or {}).items() if g.names}

    # The storage (overridden by a segment's lazily read columns).

    def dense_names(self) -> list[str]:
        return list(self._dense)

    def dense_column(self, name: str) -> np.ndarray:
        return self._dense[name]

    def sparse_names(self) -> list[str]:
        return [name for g in self._groups.values() for name in g.names]

    def sparse_kinds(self) -> list[str]:
        return list(self._groups)

    def group(self, kind: str) -> SparseGroup | None:
        return self._groups.get(kind)

    def _sparse_index(self, name: str) -> int | None:
        g = self._groups.get(name[:1])
        return None if g is None else g.index.get(name)

    def groups(self) -> dict[str, SparseGroup]:
        out = {}
        for kind in self.sparse_kinds():
            g = self.group(kind)
            if g is not None:
                out[kind] = g
        return out

    # Derived.

    def is_sparse(self, name: str) -> bool:
        return self._sparse_index(name) is not None

    def entry(self, name: str) -> Entry:
        """The column as stored: a dense array or a SparseColumn (KeyError if absent)."""
        j = self._sparse_index(name)
        if j is None:
            return self.dense_column(name)
        g = self.group(name[0])
        assert g is not None
        return g.column(j, self.n)

    def __getitem__(self, name: str) -> np.ndarray:
        found = self.entry(name)
        return found.dense() if isinstance(found, SparseColumn) else found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._dense_set() or self._sparse_index(name) is not None)

    def _dense_set(self) -> Collection[str]:
        return self._dense

    def __iter__(self) -> Iterator[str]:
        yield from self.dense_names()
        yield from self.sparse_names()

    def __len__(self) -> int:
        return len(self.dense_names()) + len(self.sparse_names())

    def nbytes(self) -> int:
        return sum(self.dense_column(c).nbytes for c in self.dense_names()) + sum(
            g.nbytes for g in self.groups().values())

    def has_values(self, name: str) -> bool:
        j = self._sparse_index(name)
        if j is not None:
            g = self.group(name[0])
            assert g is not None
            return bool(g.offsets[j + 1] > g.offsets[j])
        if name not in self._dense_set():
            return False
        return bool(not_null(name[0], self.dense_column(name)).any())

    # Whole-block operations: O(values) for sparse columns.

    def take(self, rows: np.ndarray) -> PropColumns:
        """Rows `rows` (distinct positions, any order) of every column."""
        m = len(rows)
        dense = {c: self.dense_column(c)[rows] for c in self.dense_names()}
        groups = self.groups()
        if groups:
            inverse = np.full(self.n, -1, np.int64)
            inverse[rows] = np.arange(m)
            groups = {k: g.remap(inverse[g.rows], m) for k, g in groups.items()}
        return PropColumns(m, dense, groups)

    def select(self, rows: slice | np.ndarray, names: Collection[str] | None = None
               ) -> PropColumns:
        """Rows `rows` (a slice or ascending positions) of the columns in `names` (all if
        None), for exports: sparse columns stay sparse."""
        m = (rows.stop - rows.start) if isinstance(rows, slice) else len(rows)
        names = None if names is None else _as_set(names)
        dense = {c: self.dense_column(c)[rows] for c in self.dense_names()
                 if names is None or c in names}
        groups = {}
        for kind, g in self.groups().items():
            part = g if names is None else g.restrict(names)
            if part is not None:
                groups[kind] = part.select(rows, m)
        return PropColumns(m, dense, groups)

    def restrict(self, names: Collection[str]) -> PropColumns:
        names = _as_set(names)
        dense = {c: self.dense_column(c) for c in self.dense_names() if c in names}
        groups = {}
        for kind, g in self.groups().items():
            part = g.restrict(names)
            if part is not None:
                groups[kind] = part
        return PropColumns(self.n, dense, groups)

    def sparse_names_with_values(self) -> list[str]:
        """The sparse columns holding a value in some row."""
        out: list[str] = []
        for g in self.groups().values():
            out += [g.names[j] for j in np.flatnonzero(g.counts()).tolist()]
        return out

    def names_with_values(self) -> list[str]:
        """The columns holding a value in some row."""
        out = [c for c in self.dense_names() if not_null(c[0], self.dense_column(c)).any()]
        for g in self.groups().values():
            counts = g.counts()
            out += [g.names[j] for j in np.flatnonzero(counts).tolist()]
        return out

    def densified(self) -> PropColumns:
        """The same columns all dense (tests compare the two forms)."""
        return PropColumns(self.n, {c: self[c] for c in self}, {})


def concat_props(parts: list[PropColumns]) -> PropColumns:
    """All rows of `parts` laid end to end, columns unioned, each column dense or sparse by
    its share of the total rows (`sparse_fits`); sparse columns of all keys are merged per
    kind in one sort, so the cost grows with the values present, not keys x rows."""
    if len(parts) == 1:
        return parts[0]
    starts = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([p.n for p in parts], out=starts[1:])
    total = int(starts[-1])
    kept = _kept_groups(parts, starts)
    counts: dict[str, int] = {}
    dense_in: dict[str, list[int]] = {}
    for i, p in enumerate(parts):
        for name in p.dense_names():
            dense_in.setdefault(name, []).append(i)
            counts[name] = counts.get(name, 0) + int(
                not_null(name[0], p.dense_column(name)).sum())
        for kind, g in p.groups().items():
            if kind not in kept:
                for name, c in zip(g.names, g.counts().tolist(), strict=True):
                    counts[name] = counts.get(name, 0) + c
    dense_out = {name for name, c in counts.items() if not sparse_fits(c, total)}
    dense: dict[str, np.ndarray] = {}
    for name in counts:  # (insertion order: as the parts list them)
        if name not in dense_out:
            continue
        col = dense[name] = null_column(name[0], total)
        for i, p in enumerate(parts):
            if name in p:
                e = p.entry(name)
                if isinstance(e, SparseColumn):
                    col[starts[i] + e.rows] = e.values
                else:
                    col[starts[i]:starts[i + 1]] = e
    # Sparse results per kind: every part's group plus dense parts turned sparse.
    names_by_kind: dict[str, dict[str, int]] = {}
    for name in counts:
        if name not in dense_out:
            ids = names_by_kind.setdefault(name[0], {})
            ids[name] = len(ids)
    for kind in [k for k in kept if k in names_by_kind]:  # (other keys join it: merge all)
        ids = names_by_kind[kind]
        for name in kept.pop(kind).names:
            ids.setdefault(name, len(ids))
    groups = kept
    for kind, ids in names_by_kind.items():
        keys, rows, values = [], [], []
        for i, p in enumerate(parts):
            part = p.group(kind)
            if part is not None and len(part.values):
                local = np.fromiter((ids.get(name, -1) for name in part.names), np.int64,
                                    len(part.names))
                k = local[part.key_ids()]
                ok = k >= 0
                keys.append(k[ok])
                rows.append(part.rows[ok].astype(np.int64) + starts[i])
                values.append(part.values[ok])
        for name in ids:
            for i in dense_in.get(name, ()):
                col = parts[i].dense_column(name)
                at = np.flatnonzero(not_null(kind, col))
                keys.append(np.full(len(at), ids[name], np.int64))
                rows.append(at + starts[i])
                values.append(col[at])
        dtype = NULL_DTYPES[kind][0]
        groups[kind] = build_group(
            kind, list(ids), np.concatenate(keys) if keys else np.zeros(0, np.int64),
            np.concatenate(rows) if rows else np.zeros(0, np.int64),
            np.concatenate(values).astype(dtype, copy=False) if values
            else np.zeros(0, dtype), total)
    return PropColumns(total, dense, groups)


def _kept_groups(parts: list[PropColumns], starts: np.ndarray) -> dict[str, SparseGroup]:
    """The merge's fast path: a kind whose sparse keys all sit in one part (the merged head
    when small appends join it) and stay sparse keeps that part's group, rows shifted: no
    per-key work, so merging a head holding many rare keys costs its values only."""
    total = int(starts[-1])
    owners: dict[str, list[int]] = {}
    for i, p in enumerate(parts):
        for kind in p.sparse_kinds():
            owners.setdefault(kind, []).append(i)
    kept = {}
    for kind, (i, *others) in owners.items():
        if others:
            continue
        g = parts[i].group(kind)
        if g is None or not bool(np.all(g.counts() * SPARSE_SHARE < total)):
            continue
        index = g.index
        if any(name in index for p in parts for name in p.dense_names() if name[0] == kind):
            continue  # (a key dense elsewhere: the general path merges it)
        rows = g.rows if not starts[i] else (g.rows.astype(np.int64) + starts[i])
        kept[kind] = SparseGroup(kind, g.names, g.offsets, rows.astype(row_dtype(total)),
                                 g.values, index)
    return kept


@dataclass(eq=False)
class Block:
    ts: np.ndarray
    recv: np.ndarray
    type: np.ndarray
    user: np.ndarray
    session: np.ndarray
    id_hi: np.ndarray
    id_lo: np.ndarray
    id_text: pa.Array | None = None  # custom (non-UUID) ids; null where the id is a UUID
    # A PropColumns (a plain dict of dense columns is wrapped into one).
    props: Mapping[str, np.ndarray] = field(default_factory=dict)
    label: str = "head"

    def __post_init__(self) -> None:
        if not isinstance(self.props, PropColumns):
            self.props = PropColumns(len(self.ts), dict(self.props))

    @property
    def prop_columns(self) -> PropColumns:
        """`props` with its storage API (dense or sparse entries, whole-block operations)."""
        return cast(PropColumns, self.props)

    @property
    def n(self) -> int:
        return len(self.ts)

    @cached_property
    def min_ts(self) -> int:
        return int(self.ts[0]) if self.n else 0

    @cached_property
    def max_ts(self) -> int:
        return int(self.ts[-1]) if self.n else -1

    @cached_property
    def type_counts(self) -> np.ndarray:
        return np.bincount(self.type, minlength=0) if self.n else np.zeros(0, np.int64)

    @cached_property
    def max_codes(self) -> dict[str, int]:
        """The largest type, user and session code (-1 if none): checked against the
        dictionaries when a segment opens."""
        return {c: int(getattr(self, c).max()) if self.n else -1
                for c in ("type", "user", "session")}

    @cached_property
    def property_keys(self) -> dict[str, list[str]]:
        """Property key -> the kinds it has in this block."""
        out: dict[str, list[str]] = {}
        for col in self.props:
            out.setdefault(col[2:], []).append(col[0])
        return out

    def nbytes(self) -> int:
        total = sum(getattr(self, c).nbytes for c in BASE_COLUMNS)
        total += self.prop_columns.nbytes()
        if self.id_text is not None:
            total += self.id_text.nbytes
        return total

    def has_values(self, prop: str) -> bool:
        """Whether property column `<kind>:<key>` holds a value in any row."""
        return self.prop_columns.has_values(prop)

    def scan(self, name: str) -> np.ndarray:
        """A base column, or property column `p:<kind>:<key>`, for a one-pass read (exports):
        a segment decodes it without evicting the columns queries keep decoded."""
        return self.props[name[2:]] if name.startswith("p:") else getattr(self, name)

    def scan_many(self, names: list[str]) -> dict[str, np.ndarray]:
        """`scan` of several columns (a segment reads and decompresses them together)."""
        return {name: self.scan(name) for name in names}

    def scan_props(self, names: Collection[str]) -> PropColumns:
        """The property columns in `names` as stored (sparse ones stay sparse), for a
        one-pass read like `scan`."""
        return self.prop_columns.restrict(names)

    def time_slice(self, start: int | None, end: int | None) -> slice:
        """Rows with start <= ts < end, by binary search on the sorted timestamps."""
        lo = 0 if start is None else int(np.searchsorted(self.ts, start, "left"))
        hi = self.n if end is None else int(np.searchsorted(self.ts, end, "left"))
        return slice(lo, max(lo, hi))

    def column(self, kind: str, key: str) -> np.ndarray | None:
        return self.props.get(kind + ":" + key)

    def numeric(self, key: str) -> np.ndarray:
        """float64 values of `key` (ints and floats merged, booleans excluded), NaN if absent."""
        f = self.props.get(FLOAT + ":" + key)
        i = self.props.get(INT + ":" + key)
        if i is None:
            return f if f is not None else null_column(FLOAT, self.n)
        as_float = np.where(i == INT64_MIN, np.nan, i.astype(np.float64))
        if f is None:
            return as_float
        return np.where(np.isnan(as_float), f, as_float)

    def present(self, key: str) -> np.ndarray:
        """True where the event has property `key` in any type."""
        mask = np.zeros(self.n, dtype=bool)
        props = self.prop_columns
        for kind in self.property_keys.get(key, ()):
            col = props.entry(kind + ":" + key)
            if isinstance(col, SparseColumn):
                mask[col.rows] = True
            else:
                mask |= not_null(kind, col)
        return mask

    def ids(self, rows: np.ndarray | slice) -> list[str]:
        """Event ids as text for the given rows."""
        hi = self.id_hi[rows]
        lo = self.id_lo[rows]
        texts = self.id_text.take(pa.array(np.arange(self.n)[rows])).to_pylist() \
            if self.id_text is not None else [None] * len(hi)
        return [t if t is not None else str(uuid.UUID(int=(int(h) << 64) | int(low)))
                for h, low, t in zip(hi.tolist(), lo.tolist(), texts, strict=True)]

    def take(self, rows: np.ndarray) -> Block:
        """The block's rows `rows` (distinct positions, any order)."""
        return Block(
            **{c: getattr(self, c)[rows] for c in BASE_COLUMNS},
            id_text=None if self.id_text is None else self.id_text.take(pa.array(rows)),
            props=self.prop_columns.take(rows), label=self.label)


def batch_id_words(batch: EventBatch) -> tuple[np.ndarray, np.ndarray, list[str | None] | None]:
    """(id_hi, id_lo, custom texts or None) of every event in `batch`, computed once and
    kept on the batch (dedup in `reserve` and the block in `apply` both need them)."""
    words = batch.id_words
    if words is None or len(words[0]) != len(batch.ids):
        column = batch.arrow_column("id")
        words = arrow_uuid_words(column) if column is not None else None
        if words is None:
            words = parse_ids(batch.ids)
        batch.id_words = words
    return words


def arrow_uuid_words(column: pa.Array | pa.ChunkedArray) -> tuple[
        np.ndarray, np.ndarray, None] | None:
    """`parse_ids` of an Arrow string column of ids read straight from its buffers, when
    every id is a canonical UUID (36 bytes each, no nulls); else None (`parse_ids` then
    decides, one by one where it must)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    if n == 0 or column.null_count:
        return None
    arr = column if pa.types.is_string(column.type) or pa.types.is_large_string(
        column.type) else column.cast(pa.large_string())
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset:arr.offset + n + 1]
    if not (int(offsets[-1]) - int(offsets[0]) == 36 * n and bool(
            (np.diff(offsets) == 36).all())):
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[int(offsets[0]):int(offsets[-1])]
    hi, lo, canon = uuid_words(data.reshape(n, 36))
    if not canon.all():
        return None
    return hi, lo, None


def batch_dedup_keys(batch: EventBatch) -> np.ndarray:
    hi, lo, _ = batch_id_words(batch)
    return dedup_keys(hi, lo)


def parse_ids(ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str | None] | None]:
    """`id_parts` for a list of ids: canonical UUIDs (the usual case) are parsed as one
    (n, 36) byte matrix; only other ids take `id_parts` one by one."""
    n = len(ids)
    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    slow: range | list[int] = range(n)
    if n >= 16:  # (for a few ids, numpy's per-call overhead exceeds the work)
        rows: np.ndarray | None = None  # None: every id is 36 characters long
        texts = ids
        if set(map(len, ids)) != _LEN36:
            rows = np.flatnonzero(np.fromiter(map(len, ids), dtype=np.int64, count=n) == 36)
            texts = [ids[i] for i in rows.tolist()]
        try:
            data = "".join(texts).encode("ascii")
        except UnicodeEncodeError:
            data = b""  # some are not ASCII: all go one by one
        if data:
            h, low, canon = uuid_words(np.frombuffer(data, dtype=np.uint8).reshape(-1, 36))
            if rows is None:
                if canon.all():
                    return h, low, None
                rows = np.arange(n)
            good = rows[canon]
            hi[good] = h[canon]
            lo[good] = low[canon]
            done = np.zeros(n, dtype=bool)
            done[good] = True
            slow = np.flatnonzero(~done).tolist()
    custom: list[str | None] | None = None
    for i in slow:
        text = ids[i]
        h_, l_, is_custom = id_parts(text)
        hi[i] = h_
        lo[i] = l_
        if is_custom:
            if custom is None:
                custom = [None] * n
            custom[i] = text
    return hi, lo, custom


_HEXVAL = np.full(256, 255, dtype=np.uint16)
_HEXVAL[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEXVAL[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
# Two ASCII hex digits (as a little-endian uint16) -> their byte value, 0xFFFF if not hex.
_PAIR = ((_HEXVAL[np.arange(65536) & 0xFF] << 4) | _HEXVAL[np.arange(65536) >> 8]).astype(
    np.uint16)
_PAIR[(_HEXVAL[np.arange(65536) & 0xFF] == 255) | (_HEXVAL[np.arange(65536) >> 8] == 255)] = 0xFFFF
_LEN36 = {36}
_HEX_SPANS = ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))


def uuid_words(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hi, lo, canonical) for an (n, 36) ASCII matrix of candidate UUID texts; canonical =
    lowercase hex with dashes, exactly the texts `id_parts` stores as 16 bytes."""
    hexes = np.concatenate([chars[:, a:b] for a, b in _HEX_SPANS], axis=1)
    pairs = _PAIR[hexes.view(np.uint16)]  # (n, 16) byte values, 0xFFFF where not hex
    canon = ~(pairs > 0xFF).any(axis=1)
    canon &= (chars[:, 8] == 45) & (chars[:, 13] == 45) & (chars[:, 18] == 45) & (
        chars[:, 23] == 45)
    words = pairs.astype(np.uint8).view(">u8").astype(np.uint64)
    return words[:, 0], words[:, 1], canon


def block_from_batch(batch: EventBatch, dicts: Dictionaries) -> Block:
    """Encode a validated batch into columns (unsorted; `sort_block` orders it)."""
    if batch.columns is not None:
        return _block_from_columns(batch, dicts)
    n = len(batch)
    his, los, custom = batch_id_words(batch)
    props: dict[str, np.ndarray] = {}
    rare: dict[str, list[tuple[str, list[int], list[Any]]]] = {}
    for col, (rows, values) in batch.props.items():
        kind = col[0]
        if sparse_fits(len(rows), n):
            rare.setdefault(kind, []).append((col, rows, values))
            continue
        column = batch.arrow_column(col) if kind == STR else None
        vals = dicts.values.encode_array(column) if column is not None else \
            _encode_values(kind, values, dicts)
        if len(rows) == n:  # rows ascend, one entry per row: every row has it
            props[col] = vals
        else:
            arr = null_column(kind, n)
            arr[np.array(rows, dtype=np.int64)] = vals
            props[col] = arr
    groups = {}
    for kind, cols in rare.items():  # all rare keys of a kind encoded together
        counts = [len(rows) for _, rows, _ in cols]
        groups[kind] = SparseGroup(
            kind, [c for c, _, _ in cols], np.concatenate([[0], np.cumsum(counts)]).astype(
                np.int64),
            np.fromiter(chain.from_iterable(r for _, r, _ in cols), row_dtype(n), sum(counts)),
            _encode_values(kind, list(chain.from_iterable(v for _, _, v in cols)), dicts))
    return Block(
        ts=np.array(batch.timestamps, dtype=np.int64),
        recv=np.full(n, batch.received_at, dtype=np.int64),
        type=_encode_strings(dicts.types, batch.types, batch.arrow_column("type")),
        user=_encode_strings(dicts.users, batch.users, batch.arrow_column("userId")),
        session=_encode_strings(dicts.sessions, batch.sessions,
                                batch.arrow_column("sessionId")),
        id_hi=his, id_lo=los,
        id_text=None if custom is None else pa.array(custom, type=pa.string()),
        props=PropColumns(n, props, groups))


def _block_from_columns(batch: EventBatch, dicts: Dictionaries) -> Block:
    """`block_from_batch` of a columnar batch, straight from its Arrow columns: the same
    block, strings given their codes in the same order (dense properties, then the sparse
    ones of each kind, then types, users, sessions)."""
    cols = batch.columns
    assert cols is not None
    n = cols.n
    his, los, custom = batch_id_words(batch)
    props: dict[str, np.ndarray] = {}
    rare: dict[str, list[tuple[str, pa.Array]]] = {}
    for name, col in cols.props.items():
        kind = name[0]
        if sparse_fits(n - col.null_count, n):
            rare.setdefault(kind, []).append((name, col))
            continue
        if kind == STR:
            props[name] = dicts.values.encode_array(col)
        else:
            props[name] = _dense_values(kind, col)
    groups = {}
    for kind, items in rare.items():  # all rare keys of a kind encoded together
        rows = [np.flatnonzero(np.asarray(col.is_valid(), dtype=bool)) for _, col in items]
        counts = [len(r) for r in rows]
        present = pa.concat_arrays([col.drop_null() for _, col in items])
        groups[kind] = SparseGroup(
            kind, [name for name, _ in items],
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            np.concatenate(rows).astype(row_dtype(n)),
            dicts.values.encode_array(present) if kind == STR else _dense_values(kind,
                                                                                 present))
    return Block(
        ts=cols.ts, recv=np.full(n, batch.received_at, dtype=np.int64),
        type=dicts.types.encode_array(cols.types), user=dicts.users.encode_array(cols.users),
        session=dicts.sessions.encode_array(cols.sessions), id_hi=his, id_lo=los,
        id_text=None if custom is None else pa.array(custom, type=pa.string()),
        props=PropColumns(n, props, groups))


def _dense_values(kind: str, col: pa.Array) -> np.ndarray:
    """A numeric or boolean property column as its block dtype, nulls as the sentinel."""
    dtype, sentinel = NULL_DTYPES[kind]
    if kind == BOOL:
        col = pc.cast(col, pa.int8())
    if col.null_count:
        col = col.fill_null(pa.scalar(sentinel, col.type))
    return np.array(col.to_numpy(zero_copy_only=False), dtype=dtype)  # (owned, writable)


def _encode_strings(dictionary: Dictionary, values: list[Any], column: Any) -> np.ndarray:
    """Codes of a top-level string column: from its Arrow column when the batch kept one
    (an empty userId or sessionId is none, as the validator stores it)."""
    if column is None:
        return dictionary.encode(values)
    return dictionary.encode_array(column, empty_is_null=True)


def _encode_values(kind: str, values: list[Any], dicts: Dictionaries) -> np.ndarray:
    if kind == STR:
        return dicts.values.encode(values)
    if kind == BOOL:
        return np.array(values, dtype=np.int8)
    return np.array(values, dtype=NULL_DTYPES[kind][0])


def concat_blocks(blocks: list[Block], label: str = "head") -> Block:
    """One block holding all rows of `blocks`, property columns unioned (`concat_props`)."""
    if len(blocks) == 1:
        return blocks[0]
    if not blocks:
        return empty_block(label)
    cols = {c: np.concatenate([getattr(b, c) for b in blocks]) for c in BASE_COLUMNS}
    props = concat_props([b.prop_columns for b in blocks])
    id_text = None
    if any(b.id_text is not None for b in blocks):
        id_text = pa.concat_arrays([
            b.id_text if b.id_text is not None else pa.nulls(b.n, pa.string())
            for b in blocks])
    return Block(**cols, id_text=id_text, props=props, label=label)


def sort_block(block: Block) -> Block:
    """The block ordered by timestamp (stable: arrival order breaks ties)."""
    if block.n < 2 or bool(np.all(block.ts[1:] >= block.ts[:-1])):
        return block
    order = np.argsort(block.ts, kind="stable")
    return block.take(order)


def empty_block(label: str = "empty") -> Block:
    z64 = np.zeros(0, np.int64)
    z32 = np.zeros(0, np.int32)
    zu = np.zeros(0, np.uint64)
    return Block(z64, z64, z32, z32, z32, zu, zu, label=label)
