"""Sealed segments: immutable, time-sorted Blocks persisted as compressed Arrow IPC files.

Format 3 (written now): every integer column is narrowed by `encoding.encode_column` and the
file is zstd-compressed, so the standard event shape costs a few bytes per event on disk. A
segment opens by reading only its footer and schema metadata (the zone map: time bounds,
per-type counts, largest dictionary codes, covered WAL sequence); its columns are decoded on
first use, one at a time, through the store's `ColumnCache`, so RAM holds the columns queries
touch rather than every event ever stored.

Dense property columns are one field each (`p:<kind>:<key>`); the block's sparse columns
(rare keys, see `block.SPARSE_SHARE`) are one field per kind, `s:<kind>`, of type
list<struct<k, v>> with one list per row holding (key index, value) pairs, and the key names
in the metadata (`sparse.<kind>.keys`). So a segment's schema and footer grow with the keys
dense enough to earn a column plus one name per rare key, and its bytes with the values
present, not keys x rows; type counts are stored as (codes, counts) of the types present.
A sparse field is read and cached whole (every rare key of that kind, key-major) the first
time any of its keys is read. Formats 1 (uncompressed, memory-mapped zero-copy) and 2 (format
3 without sparse fields, dense type counts) are still read.

Threads: `write_segment` runs in the sealing worker (one writer per file); a LazyBlock may be
read by any number of threads at once (columns go through the thread-safe `ColumnCache`),
and its file stays until the store deletes it, after the last snapshot holding it is gone.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from rta.core.embedded.store.block import (
    BASE_COLUMNS,
    Block,
    PropColumns,
    SparseGroup,
    build_group,
    dedup_keys,
)
from rta.core.embedded.store.column_cache import ColumnCache
from rta.core.embedded.store.encoding import (
    compact_floats,
    decode_column,
    encode_column,
    restore_floats,
)
from rta.core.embedded.store.records import fsync_dir
from rta.core.errors import DamagedSegmentError
from rta.core.events import BOOL, FLOAT, INT, STR

FORMAT_VERSION = 3
READ_VERSIONS = (2, 3)  # (format 1 is read by `_dense_block`)
_NAME = re.compile(r"^seg-(\d{8})\.arrow$")
DROPPED = ".dropped"  # `seg-N.arrow.dropped`: retention dropped seg-N; delete, never load
_WRITE_OPTIONS = ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=3))
_ITEMSIZE = {"ts": 8, "recv": 8, "type": 4, "user": 4, "session": 4, "id_hi": 8, "id_lo": 8,
             STR: 4, INT: 8, FLOAT: 8, BOOL: 1}


@dataclass
class Segment:
    seq: int
    path: str
    block: Block
    wal_seq: int
    min_recv: int
    max_recv: int
    size_bytes: int

    @cached_property
    def sorted_ids(self) -> np.ndarray:
        """Sorted dedup keys of the segment's ids, for vectorised duplicate lookups."""
        ids = self.block.scan_many(["id_hi", "id_lo"])  # (read once: not worth caching)
        return np.sort(dedup_keys(ids["id_hi"], ids["id_lo"]))


def _crc(values: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(values).data)


def segment_name(seq: int) -> str:
    return f"seg-{seq:08d}.arrow"


def list_segments(directory: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(out)


def write_segment_file(path: str, block: Block, wal_seq: int) -> None:
    """Write the segment file format to `path` (no fsync, no rename: callers decide)."""
    props = block.prop_columns
    columns: dict[str, np.ndarray | pa.Array] = {c: getattr(block, c) for c in BASE_COLUMNS}
    if block.id_text is not None:
        columns["id_text"] = block.id_text
    columns.update({"p:" + name: props.dense_column(name) for name in props.dense_names()})
    sparse: dict[str, dict[str, Any]] = {}
    for kind, group in props.groups().items():
        columns["s:" + kind], sparse[kind] = _sparse_field(group, block.n)
    arrays: list[pa.Array] = []
    encodings: dict[str, dict[str, Any]] = {}
    for name, col in columns.items():
        if isinstance(col, np.ndarray):
            stored, encodings[name] = encode_column(name, col)
            # (Arrow keeps a buffer uncompressed when zstd would not shrink it, and zstd
            # frames carry no checksum here: without this, rot there would read as data.)
            encodings[name]["crc"] = _crc(stored)
            arrays.append(pa.array(stored))
        else:
            arrays.append(col)
    n = block.n
    type_counts = block.type_counts
    present = np.flatnonzero(type_counts)
    meta = {
        "version": FORMAT_VERSION, "wal_seq": wal_seq, "rows": n,
        "min_ts": block.min_ts, "max_ts": block.max_ts,
        "min_recv": int(block.recv.min()) if n else 0,
        "max_recv": int(block.recv.max()) if n else 0,
        "type_counts": {"codes": present.tolist(), "counts": type_counts[present].tolist()},
        "max_codes": block.max_codes,
        "columns": encodings,
        "has_values": {name: props.has_values(name) for name in props.dense_names()},
        "sparse": sparse,
    }
    table = pa.Table.from_arrays(arrays, names=list(columns)).replace_schema_metadata(
        {"rta": json.dumps(meta)})
    with open(path, "wb") as f, ipc.new_file(f, table.schema, options=_WRITE_OPTIONS) as w:
        w.write_table(table, max_chunksize=max(n, 1))


def _sparse_field(group: SparseGroup, n: int) -> tuple[pa.Array, dict[str, Any]]:
    """A kind's sparse columns as one n-row field of (key index, value) lists, row-major
    (ordered by row, then key), and its metadata: key names, encodings, checksums."""
    keys = group.key_ids()
    order = np.lexsort((keys, group.rows))
    rows = group.rows[order]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    k_stored, k_enc = encode_column("k", keys[order])
    v_stored, v_enc = encode_column("v", group.values[order])
    k_enc["crc"] = _crc(k_stored)
    v_enc["crc"] = _crc(v_stored)
    counts = group.counts()
    meta = {"keys": [name[2:] for name in group.names],
            "empty": np.flatnonzero(counts == 0).tolist(), "values": len(keys),
            "offsets_crc": _crc(offsets), "k": k_enc, "v": v_enc}
    pairs = pa.StructArray.from_arrays([pa.array(k_stored), pa.array(v_stored)], ["k", "v"])
    return pa.ListArray.from_arrays(pa.array(offsets), pairs), meta


def write_segment(directory: str, seq: int, block: Block, wal_seq: int,
                  cache: ColumnCache | None = None) -> Segment:
    """Write, fsync and atomically rename a segment file, then reopen it (its columns still
    decoded in `block` go to the cache, so the first query after a seal decodes nothing)."""
    final = os.path.join(directory, segment_name(seq))
    tmp = final + ".tmp"
    write_segment_file(tmp, block, wal_seq)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)
    return read_segment(seq, final, cache, decoded=block)


def read_segment(seq: int, path: str, cache: ColumnCache | None = None,
                 decoded: Block | None = None) -> Segment:
    """Open a segment; raises on a damaged file (the caller reports and skips it).

    `decoded`: the same rows already in memory, used to warm the cache."""
    source = pa.memory_map(path, "r")
    reader = ipc.open_file(source)
    meta = json.loads(reader.schema.metadata[b"rta"])
    version = meta.get("version")
    if version == 1:
        block = _dense_block(reader.read_all(), meta, path)
    elif version in READ_VERSIONS and reader.num_record_batches == (1 if meta["rows"] else 0) \
            and set(meta["columns"]) <= set(reader.schema.names) \
            and {"s:" + kind for kind in meta.get("sparse", ())} <= set(reader.schema.names):
        lazy = LazyBlock(path, reader.schema, meta, cache or ColumnCache(0))
        if decoded is not None and cache is not None:
            lazy.warm(decoded)
        block = lazy
    else:
        raise ValueError(f"segment {path}: unexpected format or row count")
    return Segment(seq=seq, path=path, block=block, wal_seq=meta["wal_seq"],
                   min_recv=meta["min_recv"], max_recv=meta["max_recv"],
                   size_bytes=os.path.getsize(path))


def _dense_block(table: pa.Table, meta: dict[str, Any], path: str) -> Block:
    """A format-1 segment: uncompressed columns used zero-copy from the memory map."""
    if table.num_rows != meta["rows"]:
        raise ValueError(f"segment {path}: unexpected format or row count")

    def col(name: str) -> np.ndarray:
        chunked = table.column(name)
        if chunked.num_chunks == 1:
            return chunked.chunk(0).to_numpy(zero_copy_only=True)
        return chunked.to_numpy()

    props = {name[2:]: col(name) for name in table.column_names if name.startswith("p:")}
    id_text = table.column("id_text").combine_chunks() if "id_text" in table.column_names \
        else None
    return Block(**{c: col(c) for c in BASE_COLUMNS}, id_text=id_text, props=props,
                 label=os.path.basename(path))


class LazyBlock(Block):
    """A format-2 or -3 segment as a Block whose columns decode on first use.

    Shape facts queries prune with (rows, time bounds, type counts, property keys) come from
    the metadata and decode nothing."""

    def __init__(self, path: str, schema: pa.Schema, meta: dict[str, Any],
                 cache: ColumnCache) -> None:
        self.path = path
        self.label = os.path.basename(path)
        self._schema = schema
        self._meta = meta
        self._cache = cache
        # Told (segment file, error) when a column turns out unreadable: the store then
        # stops serving the segment, as it skips one found damaged at startup.
        self.on_damage: Callable[[str, str], None] | None = None
        self._rows = int(meta["rows"])
        self._scales: dict[str, float] = {}  # float column -> scale of its cached form
        sparse = {}
        for kind, info in meta.get("sparse", {}).items():
            sparse[kind] = [kind + ":" + key for key in info.pop("keys")]  # (kept once)
            info["key_count"] = len(sparse[kind])
        self._props = LazyProps(self, [n[2:] for n in schema.names if n.startswith("p:")],
                                sparse)

    # The columns (setters only so the type matches Block's attributes; blocks are immutable).
    ts = property(lambda self: self.load("ts"), lambda self, v: self._immutable())
    recv = property(lambda self: self.load("recv"), lambda self, v: self._immutable())
    type = property(lambda self: self.load("type"), lambda self, v: self._immutable())
    user = property(lambda self: self.load("user"), lambda self, v: self._immutable())
    session = property(lambda self: self.load("session"), lambda self, v: self._immutable())
    id_hi = property(lambda self: self.load("id_hi"), lambda self, v: self._immutable())
    id_lo = property(lambda self: self.load("id_lo"), lambda self, v: self._immutable())

    @property  # type: ignore[misc]
    def id_text(self) -> pa.Array | None:  # type: ignore[override]
        if "id_text" not in self._schema.names:
            return None
        text: Any = self._cache.get((self.path, "id_text"), lambda: self._read("id_text"))
        return text  # (an Arrow array; the cache only needs its nbytes)

    @property  # type: ignore[misc]
    def props(self) -> Mapping[str, np.ndarray]:  # type: ignore[override]
        return self._props

    def _immutable(self) -> None:
        raise AttributeError("segment blocks are immutable")

    @property
    def n(self) -> int:
        return self._rows

    @cached_property
    def min_ts(self) -> int:
        return int(self._meta["min_ts"]) if self._rows else 0

    @cached_property
    def max_ts(self) -> int:
        return int(self._meta["max_ts"]) if self._rows else -1

    @cached_property
    def type_counts(self) -> np.ndarray:
        stored = self._meta["type_counts"]
        if isinstance(stored, list):  # (format 2: dense)
            return np.array(stored, dtype=np.int64)
        codes = np.array(stored["codes"], dtype=np.int64)
        out = np.zeros(int(codes.max()) + 1 if len(codes) else 0, np.int64)
        out[codes] = stored["counts"]
        return out

    @cached_property
    def max_codes(self) -> dict[str, int]:
        return dict(self._meta["max_codes"])

    def nbytes(self) -> int:
        """Bytes the decoded columns would take (what `Block.nbytes` reports)."""
        total = sum(_ITEMSIZE[c] for c in BASE_COLUMNS)
        total += sum(_ITEMSIZE[name[0]] for name in self._props.dense_names())
        sparse = sum((4 + _ITEMSIZE[kind]) * info["values"] + 8 * (info["key_count"] + 1)
                     for kind, info in self._meta.get("sparse", {}).items())
        return total * self._rows + sparse

    def has_values(self, prop: str) -> bool:
        return self._props.has_values(prop)

    @property
    def prop_columns(self) -> PropColumns:
        return self._props

    def load_group(self, kind: str) -> SparseGroup:
        """The sparse columns of `kind`, through the cache (kept whole, key-major)."""
        found: Any = self._cache.get((self.path, "s:" + kind),
                                     lambda: self._read_group(kind))
        return cast(SparseGroup, found)

    def _read_group(self, kind: str) -> SparseGroup:
        return self._decode_group(kind, self._read("s:" + kind))

    def _decode_group(self, kind: str, column: pa.Array) -> SparseGroup:
        info = self._meta["sparse"][kind]
        offsets = np.asarray(column.offsets.to_numpy(zero_copy_only=False), np.int32)
        pairs = column.values
        k_stored = pairs.field("k").to_numpy(zero_copy_only=False)
        v_stored = pairs.field("v").to_numpy(zero_copy_only=False)
        if _crc(offsets) != info["offsets_crc"] or _crc(k_stored) != info["k"]["crc"] \
                or _crc(v_stored) != info["v"]["crc"] or len(k_stored) != info["values"] \
                or len(offsets) != self._rows + 1:
            raise self._damaged(f"column s:{kind} fails its checksum", ["s:" + kind])
        keys = decode_column(k_stored, info["k"])
        values = decode_column(v_stored, info["v"])
        rows = np.repeat(np.arange(self._rows, dtype=np.int32), np.diff(offsets))
        return build_group(kind, self._props.sparse_names_of(kind), keys, rows, values,
                           self._rows, self._props.sparse_index_of(kind))

    def _scan_group(self, kind: str) -> SparseGroup:
        """A sparse field for one pass: from the cache if there, else read without filling
        it."""
        cached = self._cache.peek((self.path, "s:" + kind))
        if cached is not None:
            return cast(SparseGroup, cached)
        return self._read_group(kind)

    def scan_props(self, names: Collection[str]) -> PropColumns:
        props = self._props
        dense = [name for name in props.dense_names() if name in names]
        columns = self.scan_many(["p:" + name for name in dense])
        groups = {}
        for kind in props.sparse_kinds():
            if any(name in names for name in props.sparse_names_of(kind)):
                part = self._scan_group(kind).restrict(names)
                if part is not None:
                    groups[kind] = part
        return PropColumns(self._rows, {name: columns["p:" + name] for name in dense},
                           groups)

    def load(self, name: str) -> np.ndarray:
        return self._restore(name, self._cache.get((self.path, name), lambda: self._fill(name)))

    # The cache keeps a column in a smaller exact form where one exists and is cheap to undo:
    # an offset-encoded column as the file stores it when that takes at most half the bytes
    # (page codes in one byte), floats as float32 or int32 decimals (timings and prices),
    # else decoded. Whole-history queries keep every column they touch there, so this, not
    # the store, sets the working set; undoing it is one or two passes per scan (~1-2 ms per
    # million rows), far cheaper than the decompression a smaller budget would bring back.

    def _fill(self, name: str) -> np.ndarray:
        """A column read from the file, in the form the cache keeps."""
        stored, encoding = self._checked_stored(name, self._read(name))
        if _keeps_stored(stored, encoding):
            return stored
        return self._compact_floats(name, decode_column(stored, encoding))

    def _compact(self, name: str, decoded: np.ndarray) -> np.ndarray:
        """The cache's form of a column already decoded (a block just sealed)."""
        encoding = self._meta["columns"].get(name, {"enc": "raw"})
        if encoding["enc"] == "offset" and len(decoded):
            stored, redone = encode_column(name, decoded)
            if redone.get("base") == encoding.get("base") and _keeps_stored(stored, encoding):
                return stored
        return self._compact_floats(name, decoded)

    def _compact_floats(self, name: str, decoded: np.ndarray) -> np.ndarray:
        if decoded.dtype != np.float64 or not len(decoded):
            return decoded
        compact = compact_floats(decoded)
        if compact is None:
            return decoded
        self._scales[name] = compact[1]
        return compact[0]

    def _restore(self, name: str, kept: np.ndarray) -> np.ndarray:
        """The decoded column from the cache's form of it (see `_compact`)."""
        if name in self._scales and kept.dtype in (np.float32, np.int32):
            return restore_floats(kept, self._scales[name])
        encoding = self._meta["columns"].get(name, {"enc": "raw"})
        return decode_column(kept, encoding) if _keeps_stored(kept, encoding) else kept

    def scan(self, name: str) -> np.ndarray:
        return self.scan_many([name])[name]

    def warm(self, block: Block) -> None:
        """Keep the just-sealed block's columns that queries are reading elsewhere (and the
        time column, which nearly all read) decoded, so no query decodes them right away."""
        for c in BASE_COLUMNS:
            if c == "ts" or self._cache.in_use(c):
                self._cache.put((self.path, c), self._compact(c, getattr(block, c)))
        props = block.prop_columns
        for name in props.dense_names():
            if self._cache.in_use("p:" + name):
                self._cache.put((self.path, "p:" + name),
                                self._compact("p:" + name, props.dense_column(name)))
        for kind, group in props.groups().items():
            if self._cache.in_use("s:" + kind) and kind in self._meta.get("sparse", {}):
                self._cache.put((self.path, "s:" + kind), group)

    def scan_many(self, names: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        missing = []
        groups: dict[str, SparseGroup] = {}
        for name in names:
            if name.startswith("p:") and name[2:] not in self._props:
                raise KeyError(name)
            if name.startswith("p:") and self._props.is_sparse(name[2:]):
                kind = name[2]
                if kind not in groups:
                    groups[kind] = self._scan_group(kind)
                out[name] = groups[kind].column(groups[kind].index[name[2:]], self._rows).dense()
                continue
            cached = self._cache.peek((self.path, name))
            if cached is None:
                missing.append(name)
            else:
                out[name] = self._restore(name, cast(np.ndarray, cached))
        if missing:
            columns = self._read_many(missing)  # (Arrow decompresses the columns in parallel)
            for name, column in zip(missing, columns, strict=True):
                out[name] = self._checked_decode(name, column)
        return out

    def _read(self, name: str) -> pa.Array:
        return self._read_many([name])[0]

    def _read_many(self, names: list[str]) -> list[pa.Array]:
        if not self._rows:
            return [pa.array([], type=self._schema.field(n).type) for n in names]
        try:
            fields = [self._schema.get_field_index(n) for n in names]
            options = ipc.IpcReadOptions(included_fields=fields)
            batch = ipc.open_file(pa.memory_map(self.path, "r"), options=options).get_batch(0)
            columns = [batch.column(batch.schema.get_field_index(n)) for n in names]
        except (OSError, pa.ArrowException) as exc:
            raise self._damaged(str(exc), names) from exc
        for name, column in zip(names, columns, strict=True):
            if len(column) != self._rows:
                raise self._damaged(f"column {name} has {len(column)} rows, not {self._rows}",
                                    names)
        return columns

    def _damaged(self, error: str, names: list[str]) -> DamagedSegmentError:
        if self.on_damage is not None:
            self.on_damage(self.path, error)
        return DamagedSegmentError(f"segment {self.label} is damaged: {error}",
                                   [{"segment": self.label, "columns": names}])

    def _checked_decode(self, name: str, column: pa.Array) -> np.ndarray:
        return decode_column(*self._checked_stored(name, column))

    def _checked_stored(self, name: str, column: pa.Array
                        ) -> tuple[np.ndarray, dict[str, Any]]:
        """(the column as the file stores it, its encoding), its checksum verified."""
        stored = column.to_numpy(zero_copy_only=False)
        encoding = self._meta["columns"].get(name, {"enc": "raw"})
        crc = encoding.get("crc")
        if crc is not None and _crc(stored) != crc:
            raise self._damaged(f"column {name} fails its checksum", [name])
        return stored, encoding


def _keeps_stored(stored: np.ndarray, encoding: dict[str, Any]) -> bool:
    """Whether the cache keeps a column as stored: offset-encoded into at most half the
    bytes of its decoded type (the cache's form of it, undone by `decode_column`)."""
    return encoding["enc"] == "offset" and \
        stored.itemsize * 2 <= np.dtype(encoding["dtype"]).itemsize


class LazyProps(PropColumns):
    """`Block.props` of a LazyBlock: names from the schema and metadata, columns read on
    access through the block (and its cache)."""

    def __init__(self, block: LazyBlock, dense: list[str], sparse: dict[str, list[str]]
                 ) -> None:
        super().__init__(block.n)
        self._block = block
        self._names = dict.fromkeys(dense)
        self._sparse = {kind: names for kind, names in sparse.items() if names}
        self._indexes: dict[str, dict[str, int]] = {}

    def dense_names(self) -> list[str]:
        return list(self._names)

    def _dense_set(self) -> Collection[str]:
        return self._names

    def dense_column(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._block.load("p:" + name)

    def sparse_names(self) -> list[str]:
        return [name for names in self._sparse.values() for name in names]

    def sparse_kinds(self) -> list[str]:
        return list(self._sparse)

    def sparse_names_of(self, kind: str) -> list[str]:
        return self._sparse.get(kind, [])

    def sparse_index_of(self, kind: str) -> dict[str, int]:
        index = self._indexes.get(kind)
        if index is None:
            index = self._indexes[kind] = {n: j for j, n in enumerate(self.sparse_names_of(kind))}
        return index

    def group(self, kind: str) -> SparseGroup | None:
        return self._block.load_group(kind) if kind in self._sparse else None

    def _sparse_index(self, name: str) -> int | None:
        kind = name[:1]
        return self.sparse_index_of(kind).get(name) if kind in self._sparse else None

    def sparse_names_with_values(self) -> list[str]:
        """From the metadata: reads nothing."""
        out: list[str] = []
        for kind, names in self._sparse.items():
            empty = self._block._meta["sparse"][kind]["empty"]
            if empty:
                skip = set(empty)
                out += [name for j, name in enumerate(names) if j not in skip]
            else:
                out += names
        return out

    def has_values(self, name: str) -> bool:
        """From the metadata: reads nothing."""
        meta = self._block._meta
        j = self._sparse_index(name)
        if j is not None:
            return j not in set(meta["sparse"][name[0]]["empty"])
        return bool(meta["has_values"].get(name, False))
