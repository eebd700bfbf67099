"""Bulk load: append whole Arrow tables or NDJSON files to a ColumnStore at columnar speed.

The normal ingest path validates event by event in Python and goes through the WAL; for
millions of events that is the bottleneck. Here every check of `EventValidator` that can be
expressed over a column runs vectorised (pyarrow compute / numpy), and only rows a column check
cannot clear (a bad or unusual value, an ISO timestamp, an array property, an oversized event)
go through the Python validator itself, so they are accepted or rejected with exactly the same
messages. Strings are dictionary-encoded per chunk and only the small per-chunk dictionary is
mapped to the store's global codes.

Rows are deduplicated by id like `ColumnStore.reserve` (against the head, recently reserved ids,
the segments within the dedup window, and earlier in the load: the first occurrence wins),
sorted by time and written directly as sealed segments of `max_head_events` rows, bypassing the
head and the WAL.

Durability: segment files are written as `.tmp`, fsynced together at the end of each flush
(when `StoreConfig.fsync`), then renamed into place; a crash mid-load leaves only `.tmp` files,
which the store deletes on open, so a load is all-or-nothing per flush (default: every
`flush_rows` rows). Dictionaries are fsynced before any segment that refers to them appears.

Thread rule: the store's owner thread only (it installs segments through the store's public
bulk methods, `known_id_keys`, `allocate_segment_seqs`, `install_segments`), and nothing else
may append to or seal the store during a load (it runs synchronously; in the daemon, before
serving or while no ingest is in flight).

Known difference from the row path: pyarrow's JSON reader types a property that holds both
integers and decimals in one block as float64, so those integers land in the `f:` column, not
`i:`. `Block.numeric`, filters and aggregations see the same numbers.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from rta.core import jsonstrict
from rta.core.embedded.store.block import (
    Block,
    PropColumns,
    block_from_batch,
    build_group,
    concat_blocks,
    dedup_keys,
    id_parts,
    null_column,
    sparse_fits,
    uuid_words,
)
from rta.core.embedded.store.dictionary import Dictionary
from rta.core.embedded.store.records import fsync_dir
from rta.core.embedded.store.segment import (
    Segment,
    read_segment,
    segment_name,
    write_segment_file,
)
from rta.core.embedded.store.store import ColumnStore
from rta.core.errors import ValidationError
from rta.core.event_ids import new_id_words
from rta.core.events import (
    BOOL,
    FLOAT,
    INT,
    INT64_MAX,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_TYPE_LENGTH,
    STR,
    EventBatch,
    EventValidator,
    Limits,
)
from rta.core.queries.timeparse import now_ms

PROPS = "properties."
CHUNK_ROWS = 1 << 20  # rows encoded at once from an Arrow table (bounds temporaries)
NDJSON_CHUNK_BYTES = 16 << 20  # bytes parsed at once by pyarrow's JSON reader
FLUSH_ROWS = 4_000_000  # rows accumulated before they are sorted and written as segments

RawRows = Callable[[np.ndarray], list[Any]]


@dataclass
class BulkResult:
    """Same counts as the HTTP batch response; `rejected` holds `{index, error}` per bad row."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    segments: int = 0
    seconds: float = 0.0


class BulkReadError(ValueError):
    """The input file is not NDJSON (the message names the file and line)."""


# -- public entry points -------------------------------------------------------------------


def bulk_load(store: ColumnStore, table: pa.Table) -> int:
    """Append every valid row of `table`; returns how many were accepted (not duplicates).

    Columns: id, type, userId, sessionId, timestamp and `properties.<key>` (or a `properties`
    struct); other columns are ignored, as the validator ignores unknown fields.
    """
    return load_table(store, table).accepted


def load_table(store: ColumnStore, table: pa.Table, limits: Limits | None = None,
               now: int | None = None, flush_rows: int = FLUSH_ROWS) -> BulkResult:
    """`bulk_load` with the full result (duplicates, rejected rows with their errors)."""
    started = time.perf_counter()
    loader = _Loader(store, limits, now, flush_rows)
    for offset in range(0, max(table.num_rows, 1), CHUNK_ROWS):
        part = _datetimes_to_ms(_flatten(table.slice(offset, CHUNK_ROWS)))
        loader.add(part, offset, _table_rows(part))
    loader.finish()
    loader.result.seconds = time.perf_counter() - started
    return loader.result


def bulk_load_ndjson(store: ColumnStore, path: str, limits: Limits | None = None,
                     now: int | None = None, flush_rows: int = FLUSH_ROWS,
                     chunk_bytes: int = NDJSON_CHUNK_BYTES,
                     progress: Callable[[int], None] | None = None) -> BulkResult:
    """Append the events of an NDJSON file (`.gz` accepted; blank lines skipped).

    Indexes in `rejected` count events (non-blank lines) from 0, like `rta ingest` reports.
    `progress(events_read_so_far)` is called after each chunk. Raises `BulkReadError` on a
    line that is not JSON (rows of earlier flushes stay loaded), `FileNotFoundError`.
    """
    started = time.perf_counter()
    loader = _Loader(store, limits, now, flush_rows)
    read_options = pajson.ReadOptions(use_threads=True, block_size=1 << 20)
    with ThreadPoolExecutor(1) as pool:  # parse the next chunk while this one is encoded
        chunks = _ndjson_chunks(path, chunk_bytes)
        pending: Future[tuple[_Chunk, pa.Table | None]] | None = None
        nxt = next(chunks, None)
        if nxt is not None:
            pending = pool.submit(_parse_chunk, nxt, read_options)
        events = 0
        while pending is not None:
            chunk, parsed = pending.result()
            nxt = next(chunks, None)
            pending = pool.submit(_parse_chunk, nxt, read_options) if nxt is not None else None
            if parsed is None or not chunk.matches(parsed):
                rows = chunk.rows
                loader.add_raw(chunk.raw_rows(np.arange(rows)), events)
            else:
                rows = parsed.num_rows
                loader.add(_flatten(parsed), events, chunk.raw_rows)
            events += rows
            if progress is not None:
                progress(events)
    loader.finish()
    loader.result.seconds = time.perf_counter() - started
    return loader.result


# -- NDJSON input --------------------------------------------------------------------------


class _Chunk:
    """Whole lines of an NDJSON file, with where each non-blank one starts: pyarrow reads
    `{..} {..}` on one line as two rows and skips blank lines, so its row count is checked
    against the non-blank lines before rows are trusted to be lines."""

    def __init__(self, path: str, data: bytes, first_line: int) -> None:
        self.path = path
        self.data = data
        self.first_line = first_line  # 1-based line number of the chunk's first line
        self._buf = np.frombuffer(data, dtype=np.uint8)
        self._nl = np.flatnonzero(self._buf == 10)
        self.newlines = len(self._nl) + (0 if data.endswith(b"\n") else 1)

    @cached_property
    def _lines(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start offsets, end offsets, 1-based line numbers) of the non-blank lines."""
        data, buf, nl = self.data, self._buf, self._nl
        starts = np.r_[0, nl + 1]
        ends = np.r_[nl, len(buf)]
        if len(starts) and starts[-1] == len(buf):  # nothing after the final newline
            starts, ends = starts[:-1], ends[:-1]
        # A line starting with a non-blank byte is an event; the rare others are checked.
        keep = ends > starts
        keep[keep] = ~_WS[buf[starts[keep]]]
        for i in np.flatnonzero(~keep).tolist():
            keep[i] = bool(data[starts[i]:ends[i]].strip())
        numbers = np.arange(self.first_line, self.first_line + len(starts))
        return starts[keep], ends[keep], numbers[keep]

    @property
    def rows(self) -> int:
        return len(self._lines[0])

    def matches(self, parsed: pa.Table) -> bool:
        """Whether pyarrow's rows are this chunk's non-blank lines, one each."""
        return parsed.num_rows == self.rows

    def raw_rows(self, rows: np.ndarray) -> list[Any]:
        """The JSON values of the given rows, parsed by Python's json like `rta ingest`."""
        starts, ends, lines = self._lines
        out = []
        for r in rows.tolist():
            text = self.data[starts[r]:ends[r]]
            try:
                out.append(jsonstrict.loads(text))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise BulkReadError(f"{self.path}:{int(lines[r])}: not valid JSON: {msg}"
                                    ) from None
        return out


_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True


def _ndjson_chunks(path: str, chunk_bytes: int) -> Iterator[_Chunk]:
    f: IO[bytes] = (gzip.open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
                    if path.endswith(".gz") else open(path, "rb"))  # noqa: SIM115
    line_no = 1
    tail = b""
    with f:
        while True:
            block = f.read(chunk_bytes)
            data = tail + block if tail else block
            if not block:
                tail = b""
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    tail = data
                    continue
                data, tail = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
            if data:
                chunk = _Chunk(path, data, line_no)
                line_no += chunk.newlines
                if chunk.rows:
                    yield chunk
            if not block:
                return


def _parse_chunk(chunk: _Chunk, options: pajson.ReadOptions) -> tuple[_Chunk, pa.Table | None]:
    """pyarrow's parse of the chunk, or None when it cannot type it (the rows go slow)."""
    try:
        return chunk, pajson.read_json(pa.BufferReader(chunk.data), read_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return chunk, None


# -- Arrow input ---------------------------------------------------------------------------


def _flatten(table: pa.Table) -> pa.Table:
    """Struct columns (a nested `properties` object) become dotted columns, recursively."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _datetimes_to_ms(table: pa.Table) -> pa.Table:
    """Timestamp columns (Parquet, Arrow) become int64 ms since the epoch, as `rta ingest`
    reads them; Arrow timestamps are UTC (naive ones are taken as UTC)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            col = table.column(i).cast(pa.timestamp("ms", f.type.tz)).cast(pa.int64())
            table = table.set_column(i, f.name, col)
    return table


def _table_rows(table: pa.Table) -> RawRows:
    """Raw event dicts for the given rows of a flattened table, for the Python validator."""

    def rows(idx: np.ndarray) -> list[Any]:
        out = []
        for rec in table.take(pa.array(idx, pa.int64())).to_pylist():
            event: dict[str, Any] = {}
            props: dict[str, Any] = {}
            for name, value in rec.items():
                if name.startswith(PROPS):
                    if value is not None:
                        props[name[len(PROPS):]] = value
                elif name == "properties":
                    event["properties"] = value
                else:
                    event[name] = value
            if props and not isinstance(event.get("properties"), dict | None):
                props = {}  # the invalid `properties` value decides the error
            if props:
                event["properties"] = {**(event.get("properties") or {}), **props}
            out.append(event)
        return out

    return rows


# -- the loader ----------------------------------------------------------------------------


class _Loader:
    def __init__(self, store: ColumnStore, limits: Limits | None, now: int | None,
                 flush_rows: int) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.now = now_ms() if now is None else now
        self.validator = EventValidator(self.limits)
        self.flush_rows = max(flush_rows, store.config.max_head_events)
        self.result = BulkResult()
        self.pieces: list[tuple[Block, np.ndarray]] = []  # (block, original row numbers)
        self.rows = 0

    def add(self, table: pa.Table, offset: int, raw_rows: RawRows) -> None:
        n = table.num_rows
        if n == 0:
            return
        slow = _slow_rows(table, self.now, self.limits)
        fast = np.flatnonzero(~slow)
        if len(fast):
            part = table if len(fast) == n else table.take(pa.array(fast))
            block = _encode(part, self.store, self.now)
            self._push(block, fast + offset)
        slow_idx = np.flatnonzero(slow)
        if len(slow_idx):
            self._validate(raw_rows(slow_idx), slow_idx + offset)

    def add_raw(self, items: list[Any], offset: int) -> None:
        self._validate(items, np.arange(offset, offset + len(items)))

    def _validate(self, items: list[Any], rows: np.ndarray) -> None:
        batch = EventBatch(received_at=self.now)
        kept: list[int] = []
        for item, row in zip(items, rows.tolist(), strict=True):
            try:
                self.validator.append(batch, item, self.now)
            except ValidationError as exc:
                self.result.rejected.append({"index": row, "error": exc.to_dict()["error"]})
            else:
                kept.append(row)
        if kept:
            self._push(block_from_batch(batch, self.store.dicts), np.asarray(kept, np.int64))

    def _push(self, block: Block, order: np.ndarray) -> None:
        self.pieces.append((block, order))
        self.rows += block.n
        if self.rows >= self.flush_rows:
            self._flush(final=False)

    def finish(self) -> None:
        self._flush(final=True)
        self.result.rejected.sort(key=lambda r: r["index"])

    def _flush(self, final: bool) -> None:
        """Dedup, order by (timestamp, input order) and write full segments; a partial last
        segment waits for the next flush unless this is the final one."""
        if not self.pieces:
            return
        blocks = [b for b, _ in self.pieces]
        order = np.concatenate([o for _, o in self.pieces])
        self.pieces, self.rows = [], 0
        ts = np.concatenate([b.ts for b in blocks])
        keep = _dedup(self.store, np.concatenate([dedup_keys(b.id_hi, b.id_lo) for b in blocks]),
                      order)
        dropped = len(keep) - int(keep.sum())
        self.result.duplicates += dropped
        self.store.duplicates_dropped += dropped
        if dropped == 0 and _in_order(ts, order):
            rows = None  # already in final order: segments are slices, no gather
            total = len(ts)
        else:
            big = concat_blocks(blocks, label="bulk")
            blocks = [big]
            idx = np.flatnonzero(keep)
            rows = idx[np.lexsort((order[idx], ts[idx]))]
            total = len(rows)
        size = self.store.config.max_head_events
        cut = total if final else total - total % size

        def segment(lo: int, hi: int) -> tuple[Block, np.ndarray]:
            if rows is None:
                return _range(blocks, lo, hi), order[lo:hi]
            return blocks[0].take(rows[lo:hi]), order[rows[lo:hi]]

        if cut < total:
            self.pieces.append(segment(cut, total))
            self.rows = total - cut
        parts = [segment(i, min(i + size, cut))[0] for i in range(0, cut, size)]
        _write_segments(self.store, parts, self.now)
        self.result.accepted += cut
        self.result.segments += len(parts)


def _in_order(ts: np.ndarray, order: np.ndarray) -> bool:
    """Whether rows already run by (timestamp, input order)."""
    if len(ts) < 2:
        return True
    dts = np.diff(ts)
    return bool(np.all((dts > 0) | ((dts == 0) & (np.diff(order) > 0))))


def _range(blocks: list[Block], lo: int, hi: int) -> Block:
    """Rows lo:hi of the blocks laid end to end, as views where they fall in one block."""
    parts = []
    start = 0
    for b in blocks:
        end = start + b.n
        if end > lo and start < hi:
            sl = slice(max(lo - start, 0), min(hi, end) - start)
            parts.append(Block(
                ts=b.ts[sl], recv=b.recv[sl], type=b.type[sl], user=b.user[sl],
                session=b.session[sl], id_hi=b.id_hi[sl], id_lo=b.id_lo[sl],
                id_text=None if b.id_text is None else b.id_text[sl],
                props=b.prop_columns.select(sl), label="bulk"))
        start = end
    return concat_blocks(parts, label="bulk")


# -- vectorised validation -----------------------------------------------------------------


def _is_str(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type)
                                       or pa.types.is_large_string(t.value_type)))


def _plain(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if pa.types.is_dictionary(a.type):
        a = a.cast(a.type.value_type)
    return a


def _valid(a: pa.Array) -> np.ndarray:
    """Validity as a bool array (unpacked from the bitmap, no per-value work)."""
    if a.null_count == 0:
        return np.ones(len(a), dtype=bool)
    if pa.types.is_null(a.type) or a.null_count == len(a):
        return np.zeros(len(a), dtype=bool)
    bitmap = a.buffers()[0]
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[a.offset:a.offset + len(a)].view(bool)


def _offsets(a: pa.Array) -> np.ndarray:
    large = pa.types.is_large_string(a.type)
    dtype = np.int64 if large else np.int32
    return np.frombuffer(a.buffers()[1], dtype=dtype, count=len(a) + 1,
                         offset=a.offset * np.dtype(dtype).itemsize)


def _byte_lengths(a: pa.Array) -> np.ndarray:
    """UTF-8 byte lengths of a string column (0 for nulls): an upper bound of Python's
    `len`, so a row within a limit in bytes is within it in characters."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    if pa.types.is_dictionary(a.type):
        inner = _byte_lengths(a.dictionary)
        if not len(inner):
            return np.zeros(len(a), dtype=np.int64)
        out = inner[np.asarray(a.indices.fill_null(0).to_numpy(zero_copy_only=False),
                               dtype=np.int64)]
    else:
        out = np.diff(_offsets(a)).astype(np.int64)
    if a.null_count:
        out[~_valid(a)] = 0
    return out


def _unusual_edges(a: pa.Array) -> np.ndarray:
    """Non-empty strings whose first or last byte is not printable, non-space ASCII: only
    those can be blank to Python's `str.strip()`."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    if pa.types.is_dictionary(a.type):
        inner = _unusual_edges(a.dictionary)
        if not len(inner):
            return np.zeros(len(a), dtype=bool)
        return inner[np.asarray(a.indices.fill_null(0).to_numpy(zero_copy_only=False),
                                dtype=np.int64)] & _valid(a)
    offsets = _offsets(a)
    buf = a.buffers()[2]
    if buf is None or buf.size == 0:
        return np.zeros(len(a), dtype=bool)
    data = np.frombuffer(buf, dtype=np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    nonempty = ends > starts
    first = data[np.where(nonempty, starts, 0)]
    last = data[np.where(nonempty, ends - 1, 0)]
    ok = (first >= 0x21) & (first <= 0x7E) & (last >= 0x21) & (last <= 0x7E)
    return nonempty & ~ok & _valid(a)


def _prop_kind(t: pa.DataType) -> str | None:
    """Column kind of an Arrow property type; None: not vectorisable (rows go slow)."""
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_integer(t):
        return INT
    if pa.types.is_floating(t):
        return FLOAT
    if _is_str(t):
        return STR
    return None


def _column(table: pa.Table, name: str) -> pa.Array:
    arr = table.column(name)
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _slow_rows(table: pa.Table, now: int, limits: Limits) -> np.ndarray:
    """Rows the column checks cannot clear: they go through the Python validator.

    Lengths are checked in UTF-8 bytes (>= characters): a row that might exceed a limit is
    sent to the validator, which decides exactly.
    """
    n = table.num_rows
    names = table.column_names
    all_slow = np.ones(n, dtype=bool)
    slow = np.zeros(n, dtype=bool)
    size = np.full(n, 64, dtype=np.int64)

    if "type" not in names or not _is_str(table.schema.field("type").type):
        return all_slow
    if len(set(names)) != len(names):  # {"c.d": 1, "c": {"d": 2}} flattens to one name twice
        return all_slow
    etype = _column(table, "type")
    tlen = _byte_lengths(etype)
    slow |= ~_valid(etype) | (tlen == 0) | (tlen > MAX_TYPE_LENGTH) | _unusual_edges(etype)
    size += tlen

    for name in ("userId", "sessionId"):
        if name not in names or pa.types.is_null(table.schema.field(name).type):
            continue
        col = _column(table, name)
        if not _is_str(col.type):
            slow |= _valid(col)
            continue
        length = _byte_lengths(col)
        slow |= length > MAX_ID_LENGTH
        size += length

    if "id" in names and not pa.types.is_null(table.schema.field("id").type):
        col = _column(table, "id")
        valid = _valid(col)
        if _is_str(col.type):
            length = _byte_lengths(col)
            slow |= valid & ((length == 0) | (length > MAX_ID_LENGTH))
            size += np.where(valid, length, 36)
        elif pa.types.is_integer(col.type):
            size += np.where(valid, 20, 36)
        else:
            slow |= valid
            size += 36
    else:
        size += 36

    if "timestamp" in names:
        col = _plain(_column(table, "timestamp"))
        t = col.type
        valid = _valid(col)
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            raw = col.fill_null(0).to_numpy(zero_copy_only=False)
            if pa.types.is_floating(t):
                finite = np.isfinite(raw) & (np.abs(raw) < 1e16)
                slow |= valid & ~finite
                ts = np.trunc(np.where(finite, raw, 0)).astype(np.int64)
            else:
                if pa.types.is_unsigned_integer(t):
                    slow |= valid & (raw > INT64_MAX)
                ts = raw.astype(np.int64)
            bad = (ts > now + limits.future_tolerance_ms) | (ts < 0)
            if limits.past_horizon_ms is not None:
                bad |= ts < now - limits.past_horizon_ms
            slow |= valid & bad
        elif not pa.types.is_null(t):
            slow |= valid  # ISO strings and the like: the Python parser decides

    keys: set[str] = set()
    for name in names:
        if name == "properties":
            if not pa.types.is_null(table.schema.field(name).type):
                slow |= _valid(_column(table, name))  # not an object: an error
            continue
        if not name.startswith(PROPS):
            continue
        key = name[len(PROPS):]
        parts = key.split(".")
        if (key in keys or len(parts) > MAX_DEPTH + 1 or len(key) > MAX_KEY_LENGTH
                or any(not p for p in parts)):
            return all_slow  # ambiguous nesting or bad names: let the validator decide
        keys.add(key)
        t = table.schema.field(name).type
        if pa.types.is_null(t):
            continue
        col = _column(table, name)
        kind = _prop_kind(t)
        if kind is None:
            slow |= _valid(col)
            continue
        if kind == STR:
            size += np.where(_valid(col), len(key) + 6 + _byte_lengths(col), 0)
            continue
        if kind == FLOAT:
            raw = col.to_numpy(zero_copy_only=False)
            present = np.isfinite(raw)
            # NaN or infinite: pyarrow reads the words NaN/Infinity, which are not JSON (the
            # validator decides: dropped from an Arrow table, refused in NDJSON text)
            slow |= _valid(col) & ~present
        else:
            present = _valid(col)
            if pa.types.is_unsigned_integer(t):
                big = col.fill_null(0).to_numpy(zero_copy_only=False) > INT64_MAX
                slow |= present & big
        size += np.where(present, len(key) + 14, 0)
    slow |= size > limits.max_event_bytes // 2
    return slow


# -- encoding ------------------------------------------------------------------------------


def _dict_encode(a: pa.Array) -> pa.DictionaryArray:
    return a if pa.types.is_dictionary(a.type) else pc.dictionary_encode(a)


def _encode_strings(d: Dictionary, enc: pa.DictionaryArray,
                    empty_is_null: bool = False) -> np.ndarray:
    """int32 global codes of a dictionary-encoded string column (-1 for null)."""
    a = enc
    strings = enc.dictionary.to_pylist()
    if not strings:
        return np.full(len(a), -1, dtype=np.int32)
    lut = d.encode(strings)  # (distinct strings: new ones added in one step)
    empty = d.lookup("") if empty_is_null else -1
    if empty >= 0:
        lut[lut == empty] = -1
    idx = enc.indices
    if idx.null_count:
        codes = lut[np.asarray(idx.fill_null(0).to_numpy(zero_copy_only=False), np.int64)]
        codes[~_valid(idx)] = -1
        return codes
    return lut[idx.to_numpy()]


def _parse_ids(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array | None]:
    """(id_hi, id_lo, id_text) like `id_parts`: canonical UUID text parses vectorised, any
    other id is hashed (in Python) and its text kept; null ids get fresh random UUIDs."""
    n = len(arr)
    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    valid = _valid(arr)
    ok = valid & (_byte_lengths(arr) == 36)
    rows = np.flatnonzero(ok)
    if len(rows):
        offsets = _offsets(arr)
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        if len(rows) == n and offsets[-1] - offsets[0] == 36 * n:
            chars = data[offsets[0]:offsets[-1]].reshape(n, 36)
        else:
            chars = data[offsets[rows][:, None] + np.arange(36)]
        h, low, canon = uuid_words(chars)
        if canon.all() and len(rows) == n:
            hi, lo = h, low
        else:
            hi[rows[canon]] = h[canon]
            lo[rows[canon]] = low[canon]
            ok[rows[~canon]] = False
    custom = np.flatnonzero(valid & ~ok)
    id_text = None
    if len(custom):
        texts = arr.take(pa.array(custom)).to_pylist()
        flags = np.zeros(len(custom), dtype=bool)
        for j, text in enumerate(texts):
            h_, l_, is_custom = id_parts(text)
            hi[custom[j]] = h_
            lo[custom[j]] = l_
            flags[j] = is_custom
        if flags.any():
            full: list[str | None] = [None] * n
            for j in np.flatnonzero(flags).tolist():
                full[int(custom[j])] = texts[j]
            id_text = pa.array(full, pa.string())
    missing = np.flatnonzero(~valid)
    if len(missing):
        hi[missing], lo[missing] = new_id_words(len(missing))
    return hi, lo, id_text


def _encode(table: pa.Table, store: ColumnStore, now: int) -> Block:
    """A Block for rows that passed `_slow_rows` (unsorted, like `block_from_batch`)."""
    n = table.num_rows
    names = table.column_names
    dicts = store.dicts
    # Hash-encode the string columns on both cores (pyarrow releases the GIL); mapping the
    # small per-column dictionaries to global codes then runs here.
    wanted = [name for name in names if (name in ("type", "userId", "sessionId") or (
        name.startswith(PROPS) and _prop_kind(table.schema.field(name).type) == STR))]
    with ThreadPoolExecutor(2) as pool:
        has_id = "id" in names and not pa.types.is_null(table.schema.field("id").type)
        ids = pool.submit(_parse_ids, _plain(_column(table, "id"))) if has_id else None
        encoded = dict(zip(wanted, pool.map(lambda c: _dict_encode(_column(table, c)), wanted),
                           strict=True))
        etype = _encode_strings(dicts.types, encoded["type"])

        def codes(name: str, d: Dictionary) -> np.ndarray:
            if name not in encoded:
                return np.full(n, -1, dtype=np.int32)
            return _encode_strings(d, encoded[name], empty_is_null=True)

        user = codes("userId", dicts.users)
        session = codes("sessionId", dicts.sessions)
        if ids is not None:
            id_hi, id_lo, id_text = ids.result()
        else:
            id_hi, id_lo = new_id_words(n)
            id_text = None
    ts_type = table.schema.field("timestamp").type if "timestamp" in names else pa.null()
    if pa.types.is_integer(ts_type) or pa.types.is_floating(ts_type):
        # Other types (ISO strings the JSON reader turned into timestamps) went to the
        # validator: the fast rows here have no timestamp and take `now`.
        col = _plain(_column(table, "timestamp"))
        raw = col.fill_null(0).to_numpy(zero_copy_only=False)
        if pa.types.is_floating(col.type):
            raw = np.trunc(np.nan_to_num(raw, nan=0.0))
        ts = np.where(_valid(col), raw, now).astype(np.int64)
    else:
        ts = np.full(n, now, dtype=np.int64)

    props: dict[str, np.ndarray] = {}
    rare: dict[str, tuple[list[str], list[np.ndarray], list[np.ndarray]]] = {}
    for name in names:
        if not name.startswith(PROPS):
            continue
        t = table.schema.field(name).type
        kind = _prop_kind(t)
        if kind is None:
            continue  # null-typed (all absent)
        key = name[len(PROPS):]
        col = _column(table, name)
        if kind == STR:
            arr = _encode_strings(dicts.values, encoded[name])
            present = arr >= 0
        elif kind == BOOL:
            present = _valid(col)
            arr = null_column(BOOL, n)
            arr[present] = np.asarray(
                col.fill_null(False).to_numpy(zero_copy_only=False)[present], np.int8)
        elif kind == FLOAT:
            raw = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
            arr = np.where(np.isinf(raw), np.nan, raw)
            present = ~np.isnan(arr)
        else:
            present = _valid(col)
            raw = col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            if present.all():
                arr = raw
            else:
                arr = null_column(INT, n)
                arr[present] = raw[present]
        count = int(np.count_nonzero(present))
        if count and sparse_fits(count, n):  # (a wide, mostly empty table: keep it sparse)
            at = np.flatnonzero(present)
            rare.setdefault(kind, ([], [], []))
            rare[kind][0].append(kind + ":" + key)
            rare[kind][1].append(at)
            rare[kind][2].append(arr[at])
        elif count:
            props[kind + ":" + key] = arr
    groups = {}
    for kind, (cols, rows, values) in rare.items():
        keys = np.repeat(np.arange(len(cols)), [len(r) for r in rows])
        groups[kind] = build_group(kind, cols, keys, np.concatenate(rows),
                                   np.concatenate(values), n)
    return Block(ts=ts, recv=np.full(n, now, dtype=np.int64), type=etype, user=user,
                 session=session, id_hi=id_hi, id_lo=id_lo, id_text=id_text,
                 props=PropColumns(n, props, groups), label="bulk")


# -- dedup and segments --------------------------------------------------------------------


def _dedup(store: ColumnStore, keys: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Mask of rows to keep, as `ColumnStore.reserve` decides: keyed by the low id half, a
    row is a duplicate of an earlier row of the load (by input order), of an id the head or a
    pending seal holds, or of a segment still inside the dedup window."""
    n = len(keys)
    keep = np.ones(n, dtype=bool)
    if not n:
        return keep
    perm = np.argsort(keys)
    sk = keys[perm]
    same = sk[1:] == sk[:-1]
    if same.any():  # keep the first by input order among equal keys
        at = np.flatnonzero(same)
        involved = perm[np.unique(np.r_[at, at + 1])]
        inv = involved[np.lexsort((order[involved], keys[involved]))]
        ik = keys[inv]
        keep[inv[np.r_[False, ik[1:] == ik[:-1]]]] = False
    hit = np.zeros(n, dtype=bool)  # in sorted position
    horizon = now_ms() - store.config.dedup_window_ms
    for ids in store.known_id_keys(horizon):
        if not len(ids):
            continue
        pos = np.minimum(np.searchsorted(sk, ids), n - 1)
        hit[pos[sk[pos] == ids]] = True
    if hit.any():  # mark every row of a key that exists already
        run = np.cumsum(np.r_[True, ~same]) - 1
        bad = np.zeros(int(run[-1]) + 1, dtype=bool)
        bad[run[hit]] = True
        keep[perm[bad[run]]] = False
    return keep


def _write_segments(store: ColumnStore, blocks: list[Block], now: int) -> None:
    """Make `blocks` sealed segments of `store` (fsynced once per flush, then renamed)."""
    if not blocks:
        return
    # A bulk segment covers no WAL: replay after a restart must still cover the head.
    wal_seq = store.covered_wal_seq()
    seqs = store.allocate_segment_seqs(len(blocks))
    new: list[Segment] = []
    if store.data_dir is None:
        for seq, block in zip(seqs, blocks, strict=True):
            block.label = f"bulk-{seq}"
            new.append(Segment(seq, "", block, 0, 0, now, 0))
    else:
        store.dicts.sync()  # dictionaries before any segment that refers to them
        directory = os.path.join(store.data_dir, "segments")
        tmp_paths = [(seq, os.path.join(directory, segment_name(seq))) for seq in seqs]
        # Encoding and zstd release the GIL for most of their time: both cores write.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda job: write_segment_file(job[1][1] + ".tmp", job[0], wal_seq),
                          zip(blocks, tmp_paths, strict=True)))
        if store.config.fsync:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(_fsync_path, [p + ".tmp" for _, p in tmp_paths]))
        for seq, final in tmp_paths:
            os.replace(final + ".tmp", final)
            new.append(read_segment(seq, final, store.column_cache))
        if store.config.fsync:
            fsync_dir(directory)
    store.install_segments(new)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["BulkReadError", "BulkResult", "bulk_load", "bulk_load_ndjson", "load_table"]

