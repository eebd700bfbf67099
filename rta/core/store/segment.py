"""Sealed segments: immutable, time-sorted Blocks persisted as compressed Arrow IPC files.

Format 2 (written now): every integer column is narrowed by `encoding.encode_column` and the
file is zstd-compressed, so the standard event shape costs a few bytes per event on disk. A
segment opens by reading only its footer and schema metadata (the zone map: time bounds,
per-type counts, largest dictionary codes, covered WAL sequence); its columns are decoded on
first use, one at a time, through the store's `ColumnCache`, so RAM holds the columns queries
touch rather than every event ever stored. Format 1 (uncompressed, memory-mapped zero-copy)
is still read.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from rta.core.errors import DamagedSegmentError
from rta.core.events import FLOAT, INT, STR
from rta.core.store.block import BASE_COLUMNS, Block, dedup_keys
from rta.core.store.column_cache import ColumnCache
from rta.core.store.encoding import (
    compact_floats,
    decode_column,
    encode_column,
    restore_floats,
)
from rta.core.store.records import fsync_dir

FORMAT_VERSION = 2
_NAME = re.compile(r"^seg-(\d{8})\.arrow$")
_WRITE_OPTIONS = ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=3))
_ITEMSIZE = {"ts": 8, "recv": 8, "type": 4, "user": 4, "session": 4, "id_hi": 8, "id_lo": 8,
             STR: 4, INT: 8, FLOAT: 8}


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
    columns: dict[str, np.ndarray | pa.Array] = {c: getattr(block, c) for c in BASE_COLUMNS}
    if block.id_text is not None:
        columns["id_text"] = block.id_text
    columns.update({"p:" + name: col for name, col in block.props.items()})
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
    meta = {
        "version": FORMAT_VERSION, "wal_seq": wal_seq, "rows": n,
        "min_ts": block.min_ts, "max_ts": block.max_ts,
        "min_recv": int(block.recv.min()) if n else 0,
        "max_recv": int(block.recv.max()) if n else 0,
        "type_counts": block.type_counts.tolist(),
        "max_codes": block.max_codes,
        "columns": encodings,
        "has_values": {name: block.has_values(name) for name in block.props},
    }
    table = pa.Table.from_arrays(arrays, names=list(columns)).replace_schema_metadata(
        {"rta": json.dumps(meta)})
    with open(path, "wb") as f, ipc.new_file(f, table.schema, options=_WRITE_OPTIONS) as w:
        w.write_table(table, max_chunksize=max(n, 1))


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
    elif version == FORMAT_VERSION and reader.num_record_batches == (1 if meta["rows"] else 0) \
            and set(meta["columns"]) <= set(reader.schema.names):
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
    """A format-2 segment as a Block whose columns decode on first use.

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
        self._props = LazyProps(self, [n[2:] for n in schema.names if n.startswith("p:")])

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
        return np.array(self._meta["type_counts"], dtype=np.int64)

    @cached_property
    def max_codes(self) -> dict[str, int]:
        return dict(self._meta["max_codes"])

    def nbytes(self) -> int:
        """Bytes the decoded columns would take (what `Block.nbytes` reports)."""
        total = sum(_ITEMSIZE[c] for c in BASE_COLUMNS)
        total += sum(_ITEMSIZE.get(name[0], 1) for name in self._props)
        return total * self._rows

    def has_values(self, prop: str) -> bool:
        return bool(self._meta["has_values"].get(prop, False))

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
        for name, col in block.props.items():
            if self._cache.in_use("p:" + name):
                self._cache.put((self.path, "p:" + name), self._compact("p:" + name, col))

    def scan_many(self, names: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        missing = []
        for name in names:
            if name.startswith("p:") and name[2:] not in self._props:
                raise KeyError(name)
            cached = self._cache.peek((self.path, name))
            if cached is None:
                missing.append(name)
            else:
                out[name] = self._restore(name, cached)
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


class LazyProps(Mapping[str, np.ndarray]):
    """`Block.props` of a LazyBlock: keys from the schema, values decoded on access."""

    def __init__(self, block: LazyBlock, names: list[str]) -> None:
        self._block = block
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._block.load("p:" + name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names
