"""Export writers: turn column chunks into the bytes of CSV, JSON, NDJSON, Parquet and XLSX.

Every writer renders whole columns with pyarrow kernels (no per-row Python): JSON objects and
XLSX rows are assembled with `binary_join_element_wise` over per-column text fragments, so a
chunk of 100k events costs a few dozen vectorised passes. Dictionary-coded strings (type,
userId, sessionId, string properties) are decoded and escaped once per dictionary entry.

Faithful types where they vary per event (the store keeps one typed column per kind of a key):
- ndjson / json: each value keeps its JSON type (ints without a point, floats with one), so
  the export is lossless and `rta ingest` rebuilds the same store.
- parquet: `timestamp` and `receivedAt` are `timestamp[ms, UTC]` columns, so pandas, DuckDB
  and Spark read them as times (CSV and JSON keep the epoch-ms integers the API uses); a key
  with one type gets a typed column `properties.<key>` (int64, double, string,
  bool), and so does a key holding both integers and fractions (49 and 49.99: one double
  column, as any table would hold prices; integers beyond +-2**53 round there); keys whose
  type varies otherwise go together into one `properties` column holding a JSON object per
  row (null when the row has none of them) - lossless, and what `rta ingest` reads back.
- csv: untyped text. A column with one kind, or numbers of both kinds, is written natively
  (doubles in shortest form, so 1.0 appears as 1); a mixed column carries each value's text
  with floats always showing a point or exponent (1, 1.0, true, abc), quoted as strings are.
  Use NDJSON or Parquet when types matter.
- xlsx: each cell is typed by its own value (number, text, boolean); ints beyond +-2**53 are
  written as text because Excel numbers are doubles. Text longer than Excel's 32,767 character
  cell limit is cut there, and control characters XML cannot carry become U+FFFD. Past
  1,048,576 rows the export continues on further sheets (`events`, `events 2`, ...), each with
  the header row.

Thread rule: writers belong to one export's worker; the shared string decode cache is
locked.
"""

from __future__ import annotations

import json
import threading
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rta.core.embedded.store.block import PropColumns, not_null
from rta.core.embedded.store.dictionary import Dictionaries, Dictionary
from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR

# The columns of an export without `fields`: the seed's, then `personId` (the person of each
# event's distinct id, its userId where the id was never merged; docs/people.md), last so
# the seed's keep their positions.
BASE_FIELDS = ("id", "type", "userId", "sessionId", "timestamp", "receivedAt", "personId")
FIELDS = BASE_FIELDS
XLSX_MAX_ROWS = 1_048_576  # Excel's row limit per sheet (header included)
XLSX_MAX_TEXT = 32_767
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


# -- chunks and layout ---------------------------------------------------------------------


@dataclass(frozen=True)
class PropColumn:
    """One output property column: its key and the kinds its values have in the export."""

    key: str
    kinds: tuple[str, ...]

    @property
    def name(self) -> str:
        return "properties." + self.key

    @property
    def mixed(self) -> bool:
        return len(self.kinds) > 1

    @property
    def numeric(self) -> bool:
        """Integers and fractions, nothing else: one double column in tables."""
        return set(self.kinds) == {INT, FLOAT}

    @property
    def table_kind(self) -> str | None:
        """The one kind a tabular column of this key has (None: mixed, or no values)."""
        if self.numeric:
            return FLOAT
        return self.kinds[0] if len(self.kinds) == 1 else None

    @property
    def varied(self) -> bool:
        """Values of kinds no one typed column holds (Parquet keeps them as JSON)."""
        return self.table_kind is None and bool(self.kinds)


@dataclass(frozen=True)
class Layout:
    base: tuple[str, ...]
    props: tuple[PropColumn, ...]
    properties: bool = True  # JSON rows carry a properties object (even when empty)
    # Table columns in the order asked for (`fields`); empty: base fields, then properties.
    order: tuple[str | PropColumn, ...] = ()

    @property
    def columns(self) -> tuple[str | PropColumn, ...]:
        """Table columns in output order: base field names and property columns."""
        return self.order or (*self.base, *self.props)

    @property
    def names(self) -> list[str]:
        return [c if isinstance(c, str) else c.name for c in self.columns]


@dataclass
class Chunk:
    """Gathered, time-ordered rows of one round: raw store columns, decoded lazily."""

    ts: np.ndarray
    recv: np.ndarray
    type: np.ndarray
    user: np.ndarray
    session: np.ndarray
    id_hi: np.ndarray
    id_lo: np.ndarray
    id_text: pa.Array | None
    # "kind:key" -> values with the store's sentinels; rare keys stay sparse (read per key
    # as dense arrays by `prop`, or all together by `json_properties`).
    props: PropColumns
    dicts: Dictionaries
    _cache: dict[str, pa.Array] = field(default_factory=dict, repr=False)
    person: np.ndarray | None = None  # person codes (user codes), where ids were merged

    @property
    def n(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> Chunk:
        text = None if self.id_text is None else self.id_text.slice(start, stop - start)
        return Chunk(self.ts[start:stop], self.recv[start:stop], self.type[start:stop],
                     self.user[start:stop], self.session[start:stop], self.id_hi[start:stop],
                     self.id_lo[start:stop], text,
                     self.props.select(slice(start, stop)), self.dicts,
                     person=None if self.person is None else self.person[start:stop])

    def ids(self) -> pa.Array:
        if "id" not in self._cache:
            ids = uuid_strings(self.id_hi, self.id_lo)
            if self.id_text is not None and self.id_text.null_count < len(self.id_text):
                ids = pc.coalesce(self.id_text, ids)
            self._cache["id"] = ids
        return self._cache["id"]

    def codes(self, name: str) -> tuple[Dictionary, np.ndarray]:
        d = self.dicts
        person = self.user if self.person is None else self.person
        return {"type": (d.types, self.type), "userId": (d.users, self.user),
                "sessionId": (d.sessions, self.session), "personId": (d.users, person)}[name]

    def prop(self, kind: str, key: str) -> np.ndarray | None:
        return self.props.get(kind + ":" + key)


# -- vectorised value rendering ------------------------------------------------------------

_HEX_PAIRS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)),
                           dtype=np.uint16)
# (source hex column, destination column, width) of the 8-4-4-4-12 groups
_UUID_GROUPS = ((0, 0, 8), (8, 9, 4), (12, 14, 4), (16, 19, 4), (20, 24, 12))


def uuid_strings(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Canonical UUID text for 128-bit ids, built as one byte matrix (no per-row Python)."""
    n = len(hi)
    raw = np.empty((n, 2), dtype=">u8")
    raw[:, 0] = hi
    raw[:, 1] = lo
    hexes = _HEX_PAIRS[raw.view(np.uint8).reshape(n, 16)].view(np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for src, dst, width in _UUID_GROUPS:
        out[:, dst:dst + width] = hexes[:, src:src + width]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))


_JSON_SPECIAL = r'[\x00-\x1f"\\]'
_XML_ILLEGAL = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"


def json_quote(arr: pa.Array) -> pa.Array:
    """JSON string literals for `arr` (nulls stay null); only rows that need escaping go
    through json.dumps."""
    quoted = pc.binary_join_element_wise('"', arr, '"', "")
    need = pc.match_substring_regex(arr, _JSON_SPECIAL)
    if need.true_count:
        mask = need.fill_null(False)
        fixed = [json.dumps(s, ensure_ascii=False) for s in arr.filter(mask).to_pylist()]
        quoted = pc.replace_with_mask(quoted, mask, pa.array(fixed, pa.string()))
    return quoted


def xml_text(arr: pa.Array) -> pa.Array:
    """An inline-string cell body (`<is><t>...</t></is>`) for each text: XML-escaped, cut
    to Excel's cell limit, marked to keep leading/trailing spaces only where it has them."""
    if len(arr) and (pc.max(pc.utf8_length(arr)).as_py() or 0) > XLSX_MAX_TEXT:
        arr = pc.utf8_slice_codeunits(arr, 0, XLSX_MAX_TEXT)
    if pc.any(pc.match_substring_regex(arr, _XML_ILLEGAL)).as_py():
        arr = pc.replace_substring_regex(arr, _XML_ILLEGAL, "\ufffd")
    # (a bare CR would be normalised away by XML parsers; the reference keeps it)
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        arr = pc.replace_substring(arr, old, new)
    padded = pc.match_substring_regex(arr, r"^\s|\s$")
    plain = pc.binary_join_element_wise("<is><t>", arr, "</t></is>", "")
    if padded.true_count:
        kept = pc.binary_join_element_wise('<is><t xml:space="preserve">', arr, "</t></is>", "")
        plain = pc.if_else(padded, kept, plain)
    return plain


_STYLES: dict[str, Callable[[pa.Array], pa.Array]] = {
    "raw": lambda a: a, "json": json_quote, "xml": xml_text}
_DECODE_CACHE_MAX = 1 << 21  # dictionaries up to this size are decoded once and cached
_decode_lock = threading.Lock()
_decoded: WeakKeyDictionary[Dictionary, dict[str, pa.Array]] = WeakKeyDictionary()


def decode(dictionary: Dictionary, codes: np.ndarray, style: str = "raw") -> pa.Array:
    """Strings (raw, JSON-quoted or XML-escaped) for dictionary codes; -1 decodes to null.

    Small dictionaries are rendered once into a cached Arrow array that grows with the
    dictionary; huge ones are rendered per chunk for the distinct codes only, so memory
    stays bounded either way.
    """
    index = pa.array(codes, mask=codes < 0)
    if len(dictionary) <= _DECODE_CACHE_MAX:
        return _table(dictionary, style).take(index)
    uniq, inverse = np.unique(codes, return_inverse=True)
    words = pa.array(dictionary.decode(uniq), pa.string())
    inv = inverse.astype(np.int32)
    return _STYLES[style](words).take(pa.array(inv, mask=codes < 0))


def _table(dictionary: Dictionary, style: str) -> pa.Array:
    with _decode_lock:
        tables = _decoded.setdefault(dictionary, {})
        have = tables.get(style)
        size = len(dictionary)
        if have is None or len(have) < size:
            done = 0 if have is None else len(have)
            extra = _STYLES[style](dictionary.array(done, size))
            have = extra if have is None else pa.concat_arrays([have, extra])
            tables[style] = have
        return have


def int_array(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=values == INT64_MIN)


def float_array(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=np.isnan(values))


def bool_array(values: np.ndarray) -> pa.Array:
    return pa.array(values == 1, mask=values < 0)


def float_text(arr: pa.Array) -> pa.Array:
    """Shortest round-trip text of doubles, with '.0' added where it would read as an int."""
    text = arr.cast(pa.string())
    exact = pc.invert(pc.match_substring_regex(text, r"[.eEn]"))
    if exact.true_count:
        text = pc.if_else(exact, pc.binary_join_element_wise(text, ".0", ""), text)
    return text


def bool_text(arr: pa.Array) -> pa.Array:
    return pc.if_else(arr, "true", "false")


def typed_values(chunk: Chunk, kind: str, key: str) -> pa.Array:
    """A property's values of one kind as a typed Arrow array (null where absent)."""
    col = chunk.prop(kind, key)
    if col is None:
        return pa.nulls(chunk.n, _ARROW_TYPES[kind])
    return _typed(kind, col, chunk.dicts)


def _typed(kind: str, col: np.ndarray, dicts: Dictionaries) -> pa.Array:
    if kind == INT:
        return int_array(col)
    if kind == FLOAT:
        return float_array(col)
    if kind == BOOL:
        return bool_array(col)
    return decode(dicts.values, col, "raw")


def table_values(chunk: Chunk, col: PropColumn) -> pa.Array:
    """The typed values of a column with a `table_kind` (integers widened for numeric)."""
    if col.numeric:
        ints = typed_values(chunk, INT, col.key).cast(pa.float64(), safe=False)
        return pc.coalesce(ints, typed_values(chunk, FLOAT, col.key))
    assert col.table_kind is not None
    return typed_values(chunk, col.table_kind, col.key)


def text_values(chunk: Chunk, kind: str, key: str, style: str) -> pa.Array:
    """A property's values of one kind as text in `style` ("json" literals or "xml")."""
    col = chunk.prop(kind, key)
    if col is None:
        return pa.nulls(chunk.n, pa.string())
    return _text(kind, col, chunk.dicts, style)


def _text(kind: str, col: np.ndarray, dicts: Dictionaries, style: str) -> pa.Array:
    if kind == STR:
        return decode(dicts.values, col, style)
    arr = _typed(kind, col, dicts)
    if kind == INT:
        return arr.cast(pa.string())
    if kind == FLOAT:
        return float_text(arr)
    return bool_text(arr)


_ARROW_TYPES = {INT: pa.int64(), FLOAT: pa.float64(), STR: pa.string(), BOOL: pa.bool_()}


def _coalesce(arrays: list[pa.Array], n: int) -> pa.Array:
    if not arrays:
        return pa.nulls(n, pa.string())
    return arrays[0] if len(arrays) == 1 else pc.coalesce(*arrays)


def _join(parts: list[Any]) -> pa.Array:
    """Concatenate string arrays/literals row-wise; null when any part is null."""
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def empty_strings(n: int) -> pa.Array:
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.zeros(n + 1, dtype=np.int32)),
                                       pa.py_buffer(b""))


def _join_optional(fragments: list[Any], n: int) -> pa.Array:
    """Concatenate fragments row-wise treating nulls as empty.

    (`null_handling="skip"` is avoided: pyarrow 26 drops rows whose inputs are all null.)
    """
    if not fragments:
        return empty_strings(n)
    return pc.binary_join_element_wise(*fragments, "", null_handling="replace",
                                       null_replacement="")


def json_properties(chunk: Chunk, props: tuple[PropColumn, ...]) -> pa.Array:
    """The inside of each row's properties object (`"a":1,"b":"x"`), "" when it has none."""
    if chunk.props.sparse_kinds():
        return _json_properties_by_value(chunk, props)
    fragments = []
    stored = chunk.props
    for col in props:
        kinds = [k for k in col.kinds if k + ":" + col.key in stored]  # (none: no values)
        if not kinds:
            continue
        values = _coalesce([text_values(chunk, k, col.key, "json") for k in kinds], chunk.n)
        prefix = "," + json.dumps(col.key, ensure_ascii=False) + ":"
        fragments.append(_join([prefix, values]))
    if not fragments:
        return empty_strings(chunk.n)
    joined = _join_optional(fragments, chunk.n)
    return pc.utf8_slice_codeunits(joined, 1)


def _json_properties_by_value(chunk: Chunk, props: tuple[PropColumn, ...]) -> pa.Array:
    """`json_properties` built from the values present, for chunks with sparse columns
    (many rare keys): one `,"key":value` fragment per value, sorted by (row, column) and
    joined per row, so the work grows with the values, not keys x rows. Same text as the
    column-by-column path."""
    position: dict[str, int] = {}
    for i, col in enumerate(props):
        for kind in col.kinds:
            position[kind + ":" + col.key] = i
    texts: list[pa.Array] = []
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    stored = chunk.props
    for name in stored.dense_names():
        at_col = position.get(name)
        if at_col is not None:
            column = stored.dense_column(name)
            at = np.flatnonzero(not_null(name[0], column))
            texts.append(_text(name[0], column[at], chunk.dicts, "json"))
            rows.append(at)
            cols.append(np.full(len(at), at_col, np.int64))
    for kind, group in stored.groups().items():
        where = np.fromiter((position.get(name, -1) for name in group.names), np.int64,
                            len(group.names))[group.key_ids()]
        keep = np.flatnonzero(where >= 0)
        texts.append(_text(kind, group.values[keep], chunk.dicts, "json"))
        rows.append(group.rows[keep].astype(np.int64))
        cols.append(where[keep])
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col_of = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    order = np.lexsort((col_of, row))
    used, slot = np.unique(col_of[order], return_inverse=True)  # (prefixes of keys present)
    prefixes = pa.array(["," + json.dumps(props[i].key, ensure_ascii=False) + ":"
                         for i in used.tolist()], pa.string())
    values = pa.concat_arrays([t.cast(pa.string()) for t in texts]) if texts \
        else pa.array([], pa.string())
    fragments = pc.binary_join_element_wise(
        prefixes.take(pa.array(slot.reshape(-1))), values.take(pa.array(order)), "")
    offsets = np.zeros(chunk.n + 1, np.int32)
    np.cumsum(np.bincount(row, minlength=chunk.n), out=offsets[1:])
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), fragments), "")
    return pc.utf8_slice_codeunits(joined, 1)


def json_base(chunk: Chunk, name: str) -> pa.Array:
    if name == "id":
        return json_quote(chunk.ids())
    if name == "timestamp":
        return pa.array(chunk.ts).cast(pa.string())
    if name == "receivedAt":
        return pa.array(chunk.recv).cast(pa.string())
    dictionary, codes = chunk.codes(name)
    return decode(dictionary, codes, "json").fill_null("null")


def json_rows(chunk: Chunk, layout: Layout, suffix: str) -> pa.Array:
    """Each event as a JSON object in the API's shape, followed by `suffix`."""
    parts: list[Any] = []
    sep = "{"
    for name in layout.base:
        parts += [f'{sep}"{name}":', json_base(chunk, name)]
        sep = ","
    if layout.props or layout.properties:
        parts += [f'{sep}"properties":{{', json_properties(chunk, layout.props), "}}" + suffix]
    else:
        parts.append(("}" if sep == "," else "{}") + suffix)
    return _join(parts)


def string_bytes(arr: pa.Array) -> bytes:
    """The concatenated UTF-8 of a string array (no separators), copied once."""
    if not len(arr):
        return b""
    if arr.null_count:
        arr = arr.fill_null("")
    _, offsets, data = arr.buffers()
    offs = np.frombuffer(offsets, dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return data[int(offs[0]):int(offs[-1])].to_pybytes()


# -- writers -------------------------------------------------------------------------------


class _Sink:
    """A write-only file object that hands back what was written since the last drain."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data: Any) -> int:
        b = bytes(data)
        self.parts.append(b)
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


class Writer(ABC):
    """Base: `start()`, then `write(chunk)` per chunk, then `finish()`; each returns bytes.
    `rows` is the number of rows the export will hold (known from the first pass)."""

    def __init__(self, layout: Layout, rows: int = 0) -> None:
        self.layout = layout
        self.total_rows = rows

    def start(self) -> bytes:
        return b""

    def prepare(self, chunk: Chunk) -> Any:
        """The CPU-heavy, stateless part of writing `chunk` (runs on a helper thread while
        the previous chunk is written, so it must not touch the writer's state)."""
        return chunk

    @abstractmethod
    def write(self, prepared: Any) -> bytes:
        """The output bytes for a prepared chunk, in order."""

    def finish(self) -> bytes:
        return b""

    def close(self) -> None:  # noqa: B027 (a hook: most writers hold nothing to release)
        """Release resources early (client gone); idempotent."""


class NdjsonWriter(Writer):
    def prepare(self, chunk: Chunk) -> bytes:
        return string_bytes(json_rows(chunk, self.layout, "\n"))

    def write(self, prepared: bytes) -> bytes:
        return prepared


class JsonWriter(Writer):
    """A JSON array streamed one chunk at a time: `[` first, `,`-joined rows, `]` last."""

    def __init__(self, layout: Layout, rows: int = 0) -> None:
        super().__init__(layout, rows)
        self.rows = 0

    def start(self) -> bytes:
        return b"["

    def prepare(self, chunk: Chunk) -> tuple[int, bytes]:
        return chunk.n, string_bytes(json_rows(chunk, self.layout, ",\n"))[:-2]

    def write(self, prepared: tuple[int, bytes]) -> bytes:
        n, body = prepared
        if not n:
            return b""
        prefix = b"\n" if self.rows == 0 else b",\n"
        self.rows += n
        return prefix + body

    def finish(self) -> bytes:
        return b"\n]\n" if self.rows else b"]\n"


def _tabular_base(chunk: Chunk, name: str) -> pa.Array:
    if name == "id":
        return chunk.ids()
    if name == "timestamp":
        return pa.array(chunk.ts)
    if name == "receivedAt":
        return pa.array(chunk.recv)
    dictionary, codes = chunk.codes(name)
    return decode(dictionary, codes, "raw")


def _base_type(name: str) -> pa.DataType:
    return pa.int64() if name in ("timestamp", "receivedAt") else pa.string()


TIME_TYPE = pa.timestamp("ms", tz="UTC")


def _parquet_base_type(name: str) -> pa.DataType:
    """Parquet carries times as times (an int64 of ms is just a number to every reader)."""
    return TIME_TYPE if name in ("timestamp", "receivedAt") else pa.string()


def _parquet_base(chunk: Chunk, name: str) -> pa.Array:
    if name == "timestamp":
        return pa.array(chunk.ts, TIME_TYPE)
    if name == "receivedAt":
        return pa.array(chunk.recv, TIME_TYPE)
    return _tabular_base(chunk, name)


class _ArrowTableWriter(Writer):
    """A pyarrow writer (CSV, Parquet) streaming into a `_Sink`: subclasses set `writer`
    and `sink` and build the table in `prepare`."""

    writer: Any
    sink: _Sink

    def write(self, prepared: pa.Table) -> bytes:
        if prepared.num_rows:
            self.writer.write_table(prepared)
        return self.sink.drain()

    def finish(self) -> bytes:
        self.writer.close()
        return self.sink.drain()

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # already closed or failed mid-stream: nothing left to release
            pass


class CsvWriter(_ArrowTableWriter):
    """RFC 4180 CSV via pyarrow's writer: header row, strings quoted, missing values empty."""

    def __init__(self, layout: Layout, rows: int = 0) -> None:
        import pyarrow.csv as pcsv

        super().__init__(layout, rows)
        fields = []
        for col in layout.columns:
            if isinstance(col, str):
                fields.append(pa.field(col, _base_type(col)))
                continue
            kind = col.table_kind or STR
            typ = {INT: pa.int64(), BOOL: pa.bool_(), FLOAT: pa.float64()}.get(kind, pa.string())
            fields.append(pa.field(col.name, typ))
        self.schema = pa.schema(fields)
        self.sink = _Sink()
        self.writer: Any = pcsv.CSVWriter(self.sink, self.schema)

    def start(self) -> bytes:
        return self.sink.drain()

    def prepare(self, chunk: Chunk) -> pa.Table:
        arrays = []
        for col in self.layout.columns:
            if isinstance(col, str):
                arrays.append(_tabular_base(chunk, col))
            elif col.table_kind is not None:
                arrays.append(table_values(chunk, col))
            else:  # mixed kinds as text, floats with a point so 1.0 stays 1.0
                arrays.append(_coalesce([text_values(chunk, k, col.key, "raw")
                                         for k in col.kinds], chunk.n))
        return pa.Table.from_arrays(arrays, schema=self.schema)

MIXED_COLUMN = "properties"


class ParquetWriter(_ArrowTableWriter):
    """One row group per chunk; typed property columns, varying-type keys as JSON (see top)."""

    def __init__(self, layout: Layout, rows: int = 0) -> None:
        import pyarrow.parquet as pq

        super().__init__(layout, rows)
        # Columns in the order asked for; varying-type keys go last, together, as JSON.
        self.tabular = [c for c in layout.columns if isinstance(c, str) or not c.varied]
        self.typed = [c for c in self.tabular if not isinstance(c, str)]
        self.mixed = tuple(c for c in layout.props if c.varied)
        fields = [pa.field(c, _parquet_base_type(c)) if isinstance(c, str) else
                  pa.field(c.name, _ARROW_TYPES[c.table_kind] if c.table_kind else pa.string())
                  for c in self.tabular]
        if self.mixed:
            fields.append(pa.field(MIXED_COLUMN, pa.string()))
        self.schema = pa.schema(fields, metadata={
            b"rta.mixed_properties": json.dumps([c.key for c in self.mixed]).encode()})
        self.sink = _Sink()
        # Random ids neither compress nor dictionary-encode; timestamps barely repeat: skip
        # the work there (it was half of the encoding time), keep it for everything else.
        strings = [f.name for f in fields if f.type == pa.string() and f.name != "id"]
        codecs = {f.name: "NONE" if f.name == "id" else "SNAPPY" for f in fields}
        self.writer: Any = pq.ParquetWriter(
            self.sink, self.schema, compression=codecs,
            use_dictionary=strings + [c.name for c in self.typed
                                      if c.table_kind in (INT, FLOAT, BOOL)],
            write_statistics=[f.name for f in fields if f.name != "id"])

    def start(self) -> bytes:
        return self.sink.drain()

    def prepare(self, chunk: Chunk) -> pa.Table:
        arrays = [_parquet_base(chunk, c) if isinstance(c, str) else
                  table_values(chunk, c) if c.kinds else pa.nulls(chunk.n, pa.string())
                  for c in self.tabular]
        if self.mixed:
            inner = json_properties(chunk, self.mixed)
            obj = _join(["{", inner, "}"])
            arrays.append(pc.if_else(pc.equal(inner, ""), pa.scalar(None, pa.string()), obj))
        return pa.Table.from_arrays(arrays, schema=self.schema)

# -- xlsx ----------------------------------------------------------------------------------

_XLSX_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_SAFE_INT = 2**53


def column_letter(index: int) -> str:
    """Excel column name for a 0-based index (0 -> A, 26 -> AA)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


class XlsxWriter(Writer):
    """SpreadsheetML streamed through a zip written front to back.

    openpyxl's write-only mode still spools each sheet to a temporary file and emits the
    package only at `save()`, so nothing could be streamed before the export ends; instead the
    sheet XML is rendered here with vectorised string kernels and deflated straight into the
    response, and the parts that depend on the sheet count (workbook, relationships, content
    types) are written last - zip readers locate parts through the central directory.
    """

    def __init__(self, layout: Layout, rows: int = 0, max_rows: int | None = None) -> None:
        super().__init__(layout, rows)
        self.max_rows = max_rows or XLSX_MAX_ROWS
        self.rows_left = rows
        self.sink = _Sink()
        self.zip = zipfile.ZipFile(self.sink, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.sheets = 0
        self.rows_in_sheet = 0
        self.stream: Any = None
        self.letters = [column_letter(i) for i in range(len(layout.names))]

    def _open_sheet(self) -> None:
        self.sheets += 1
        # the extent up front lets readers size rows (openpyxl's read-only mode pads by it)
        height = 1 + min(self.rows_left, self.max_rows - 1)
        self.rows_left -= height - 1
        extent = f"A1:{self.letters[-1]}{height}" if self.letters else "A1"

        self.stream = self.zip.open(f"xl/worksheets/sheet{self.sheets}.xml", "w",
                                    force_zip64=True)
        header = "".join(
            f'<c r="{letter}1" t="inlineStr" s="1"><is><t>{_xml_escape(name)}</t></is></c>'
            for letter, name in zip(self.letters, self.layout.names, strict=True))
        self.stream.write((
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<worksheet xmlns="{_XLSX_NS}"><dimension ref="{extent}"/>'
            '<sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '</sheetView></sheetViews><sheetData>'
            f'<row r="1">{header}</row>').encode())
        self.rows_in_sheet = 1

    def _close_sheet(self) -> None:
        if self.stream is not None:
            self.stream.write(b"</sheetData></worksheet>")
            self.stream.close()
            self.stream = None

    def start(self) -> bytes:
        self._open_sheet()
        return self.sink.drain()

    def write(self, prepared: Chunk) -> bytes:
        chunk = prepared
        start = 0
        while start < chunk.n:
            if self.rows_in_sheet >= self.max_rows:
                self._close_sheet()
                self._open_sheet()
            take = min(chunk.n - start, self.max_rows - self.rows_in_sheet)
            part = chunk if take == chunk.n else chunk.slice(start, start + take)
            self.stream.write(string_bytes(self._rows(part, self.rows_in_sheet + 1)))
            self.rows_in_sheet += take
            start += take
        return self.sink.drain()

    def _rows(self, chunk: Chunk, first_row: int) -> pa.Array:
        numbers = pa.array(np.arange(first_row, first_row + chunk.n)).cast(pa.string())
        parts: list[Any] = ["<row>"]
        for col, letter in zip(self.layout.columns, self.letters, strict=True):
            if col in ("timestamp", "receivedAt"):
                values = pa.array(chunk.ts if col == "timestamp" else chunk.recv)
                parts.append(_num_cell(letter, numbers, values.cast(pa.string())))
            elif isinstance(col, str):
                text = (xml_text(chunk.ids()) if col == "id"
                        else decode(*chunk.codes(col), "xml"))
                parts.append(_str_cell(letter, numbers, text))
            else:
                cells = [self._prop_cells(chunk, kind, col.key, letter, numbers)
                         for kind in col.kinds]
                parts.append(_coalesce(cells, chunk.n))
        parts.append("</row>")
        return _join_optional(parts, chunk.n)

    def _prop_cells(self, chunk: Chunk, kind: str, key: str, letter: str,
                    numbers: pa.Array) -> pa.Array:
        if kind == STR:
            return _str_cell(letter, numbers, text_values(chunk, STR, key, "xml"))
        if kind == BOOL:
            col = chunk.prop(BOOL, key)
            assert col is not None
            flag = pa.array(np.where(col == 1, "1", "0").astype(object), pa.string(),
                            mask=col < 0)
            return _join([f'<c r="{letter}', numbers, '" t="b"><v>', flag, "</v></c>"])
        if kind == INT:
            col = chunk.prop(INT, key)
            assert col is not None
            text = int_array(col).cast(pa.string())
            big = (np.abs(col) > _SAFE_INT) & (col != INT64_MIN)
            cells = _num_cell(letter, numbers, text)
            if big.any():
                cells = pc.if_else(pa.array(big), _str_cell(letter, numbers, xml_text(text)),
                                   cells)
            return cells
        return _num_cell(letter, numbers, text_values(chunk, FLOAT, key, "raw"))

    def finish(self) -> bytes:
        self._close_sheet()
        names = ["events" if i == 1 else f"events {i}" for i in range(1, self.sheets + 1)]
        sheets = "".join(f'<sheet name="{n}" sheetId="{i}" r:id="rId{i}"/>'
                         for i, n in enumerate(names, 1))
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" '
            f'Target="worksheets/sheet{i}.xml"/>' for i in range(1, self.sheets + 1))
        rels += (f'<Relationship Id="rId{self.sheets + 1}" Type="{_REL_NS}/styles" '
                 'Target="styles.xml"/>')
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, self.sheets + 1))
        head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        parts = {
            "xl/workbook.xml": f'<workbook xmlns="{_XLSX_NS}" xmlns:r="{_REL_NS}"><sheets>'
                               f"{sheets}</sheets></workbook>",
            "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{_PKG_REL_NS}">{rels}'
                                          "</Relationships>",
            "xl/styles.xml": _STYLES_XML,
            "_rels/.rels": f'<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
                           f'Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
                           "</Relationships>",
            "[Content_Types].xml": (
                '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/'
                'vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/xl/workbook.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                '<Override PartName="/xl/styles.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                f"{overrides}</Types>"),
        }
        for name, text in parts.items():
            self.zip.writestr(name, head + text)
        self.zip.close()
        return self.sink.drain()

    def close(self) -> None:
        try:
            if self.stream is not None:
                self.stream.close()
            self.zip.close()
        except Exception:
            pass


_STYLES_XML = (
    f'<styleSheet xmlns="{_XLSX_NS}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
    '</cellStyleXfs><cellXfs count="2">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _str_cell(letter: str, numbers: pa.Array, body: pa.Array) -> pa.Array:
    """Inline-string cells; `body` comes from `xml_text`."""
    return _join([f'<c r="{letter}', numbers, '" t="inlineStr">', body, "</c>"])


def _num_cell(letter: str, numbers: pa.Array, text: pa.Array) -> pa.Array:
    return _join([f'<c r="{letter}', numbers, '"><v>', text, "</v></c>"])


WRITERS: dict[str, type[Writer]] = {
    "csv": CsvWriter, "json": JsonWriter, "ndjson": NdjsonWriter, "parquet": ParquetWriter,
    "xlsx": XlsxWriter}
