"""Streamed export of events (POST /export, `rta export`): CSV, JSON, NDJSON, Parquet, XLSX.

An export holds one snapshot (blocks are immutable) and walks it in timestamp order one
chunk at a time, so memory stays bounded by the chunk size whatever the export size:
- `_rounds` merges the selected rows of every block in time order. Blocks are each sorted,
  but segments may overlap in time, so each round picks a timestamp boundary (binary search
  on counts across blocks) that yields at most `chunk_rows` rows, gathers those rows from each
  block and orders them with a stable sort (ties: older block first, then arrival order).
- A cheap first pass over the same rounds (no decoding) counts the rows and finds which
  property keys, and which kinds of each, really occur in the export, so the header / schema
  is known before the first byte and holds no columns that would be empty.
- The writers in `export_formats` render each chunk with vectorised pyarrow kernels.

Request shape (the seed's contract, extended):
    {"format": "csv" | "json" | "ndjson" | "parquet" | "xlsx",   # default csv
     "filter": {...the filter language of rta.core.queries.filters...},
     "fields": ["id", "type", "userId", "timestamp", "properties.page", ...],
     "limit": 10000}
Default fields: id, type, userId, sessionId, timestamp, receivedAt and every property as a
`properties.<key>` column (keys sorted); the field "properties" stands for every property.
JSON and NDJSON rows have the API's event shape: {"id", ..., "properties": {...}}.

Thread rule: an `Export` is planned in a worker thread (it holds one snapshot); `chunks()`
runs in a worker and renders the next chunk on one helper thread of its own.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rta.core.embedded.store.block import NULL_DTYPES, Block, PropColumns, concat_props
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import ValidationError, field_error
from rta.core.events import FLOAT, KINDS
from rta.core.export_formats import (
    BASE_FIELDS,
    FIELDS,
    MEDIA_TYPES,
    MIXED_COLUMN,
    WRITERS,
    Chunk,
    Layout,
    PropColumn,
    Writer,
)
from rta.core.memory import release_free_memory
from rta.core.queries.filters import EventFilter, SegmentResolver, parse_filter

FORMATS = tuple(WRITERS)
# Rows per chunk: Parquet's row groups want to be large; text formats build several
# intermediate string columns per chunk, so smaller chunks keep their peak memory low.
CHUNK_ROWS = {"parquet": 100_000, "csv": 50_000, "json": 32_768, "ndjson": 32_768,
              "xlsx": 32_768}
# Tables (CSV, Parquet, XLSX) hold a cell per row and column, values or not: past this many
# cells a chunk has fewer rows, so a store with many rare property keys exports in bounded
# memory (the standard shape, ~30 columns, never reaches it). JSON rows grow with values.
TABLE_CELLS = 1 << 22
TABLE_FORMATS = ("csv", "parquet", "xlsx")
EXTENSIONS = {"csv": "csv", "json": "json", "ndjson": "ndjson", "parquet": "parquet",
              "xlsx": "xlsx"}
ALL_PROPERTIES = "properties"

Rows = np.ndarray | slice
Piece = tuple[Block, Rows]


@dataclass(frozen=True)
class ExportSpec:
    format: str = "csv"
    flt: EventFilter = field(default_factory=EventFilter)
    fields: tuple[str, ...] | None = None  # None: the default fields
    limit: int | None = None


def format_for_path(path: str) -> str | None:
    """The export format a file name implies (`.jsonl` is NDJSON), or None."""
    name = path.lower()
    for suffix, fmt in ((".csv", "csv"), (".ndjson", "ndjson"), (".jsonl", "ndjson"),
                        (".json", "json"), (".parquet", "parquet"), (".pq", "parquet"),
                        (".xlsx", "xlsx")):
        if name.endswith(suffix):
            return fmt
    return None


def parse_export(body: Any, now: int | None = None) -> ExportSpec:
    """Validate a request body; every error names its field. Pure: a saved segment stays a
    name (`spec.flt.segment`), resolved by `Export` in the worker that plans the export."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", [{"field": ""}])
    fmt = body.get("format", "csv")
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise field_error("format", f"must be one of {', '.join(FORMATS)}", value=fmt,
                          allowed=list(FORMATS))
    spec = body.get("filter")
    loose = {k: body[k] for k in FILTER_KEYS if body.get(k) is not None}
    if loose:  # ({"type": "purchase"} beside "filter", as every query endpoint takes it)
        if spec is not None and not isinstance(spec, dict):
            raise field_error("filter", "must be an object")
        clash = sorted(k for k in loose if spec and spec.get(k) is not None)
        if clash:
            raise field_error(clash[0], "is given both at the top level and in filter; "
                              "give it once", value=loose[clash[0]])
        spec = {**(spec or {}), **loose}
    flt = parse_filter(spec, "filter", now, defer_segment=True)
    return ExportSpec(fmt.lower(), flt, parse_fields(body.get("fields")),
                      parse_limit(body.get("limit")))


def resolve_segment(spec: ExportSpec, segments: SegmentResolver | None) -> ExportSpec:
    """`spec` with its saved segment's members in place of the segment's name."""
    name = spec.flt.segment
    if name is None:
        return spec
    if segments is None:
        raise field_error("filter.segment", "saved segments are not available here")
    try:
        members = segments(name)
    except KeyError:
        raise field_error("filter.segment", f"no saved segment named {name!r}") from None
    flt = dataclasses.replace(spec.flt, segment=None, segment_users=members, _luts={})
    return dataclasses.replace(spec, flt=flt)


# Filter keys also read at the top level of an export body (the seed nests them in `filter`;
# a top-level `type` used to be ignored, exporting everything).
FILTER_KEYS = ("type", "eventType", "types", "userId", "userIds", "startTime", "endTime",
               "timeRange", "where", "segment")


def parse_fields(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise field_error("fields", "must be a non-empty list of field names")
    seen: set[str] = set()
    for i, name in enumerate(raw):
        path = f"fields[{i}]"
        if not isinstance(name, str):
            raise field_error(path, "must be a string", value=name)
        ok = name in FIELDS or name == ALL_PROPERTIES or (
            name.startswith("properties.") and len(name) > len("properties."))
        if not ok:
            raise field_error(path, f"unknown field {name!r}; use one of "
                              f"{', '.join(FIELDS)}, properties or properties.<key>",
                              value=name, allowed=[*FIELDS, "properties.<key>"])
        if name in seen:
            raise field_error(path, f"{name!r} is listed twice", value=name)
        seen.add(name)
    return tuple(raw)


def parse_limit(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise field_error("limit", "must be a positive integer", value=raw)
    return raw


# -- time-ordered selection ----------------------------------------------------------------


def _sources(snap: Snapshot, flt: EventFilter) -> tuple[list[list[Any]], np.ndarray | None]:
    """[block, pos, stop] per block with rows in the time range and a wanted type."""
    type_codes = None
    if flt.types is not None:
        codes = [snap.dicts.types.lookup(t) for t in flt.types]
        type_codes = np.array([c for c in codes if c >= 0], dtype=np.int32)
        if not len(type_codes):
            return [], type_codes
    out = []
    for block, sl in snap.ranges(flt.start, flt.end):
        if type_codes is not None:
            counts = block.type_counts
            known = type_codes[type_codes < len(counts)]
            if not len(known) or not counts[known].any():
                continue
        out.append([block, sl.start, sl.stop])
    return out, type_codes


def _boundary(active: list[list[Any]], chunk_rows: int) -> int | None:
    """The largest timestamp B such that rows with ts < B number at most chunk_rows, or
    None when more than chunk_rows rows tie at the smallest pending timestamp."""
    def count(t: int) -> int:
        return sum(int(np.searchsorted(b.ts[p:s], t, "left")) for b, p, s in active)

    lo = min(int(b.ts[p]) for b, p, _ in active)  # count(lo) == 0
    hi = max(int(b.ts[s - 1]) for b, _, s in active) + 1  # count(hi) > chunk_rows
    if count(lo + 1) > chunk_rows:
        return None
    lo += 1
    while hi - lo > 1:  # invariant: count(lo) <= chunk_rows < count(hi)
        mid = (lo + hi) // 2
        if count(mid) <= chunk_rows:
            lo = mid
        else:
            hi = mid
    return lo


def _rounds(snap: Snapshot, flt: EventFilter, limit: int | None,
            chunk_rows: int) -> Iterator[tuple[list[Piece], np.ndarray | None]]:
    """Selected rows in timestamp order, a round at a time: the pieces (block, rows) of the
    round and the order of their concatenation (None when already ordered)."""
    sources, type_codes = _sources(snap, flt)
    remaining = limit
    while sources and (remaining is None or remaining > 0):
        active = [s for s in sources if s[1] < s[2]]
        if not active:
            return
        spans: list[tuple[list[Any], int]] = []
        if len(active) == 1:
            src = active[0]
            spans.append((src, min(src[2], src[1] + chunk_rows)))
        elif sum(s - p for _, p, s in active) <= chunk_rows:
            spans = [(src, src[2]) for src in active]
        else:
            bound = _boundary(active, chunk_rows)
            if bound is None:  # too many rows share one millisecond: split the tie
                tie = min(int(b.ts[p]) for b, p, _ in active)
                budget = chunk_rows
                for src in active:
                    b, p, s = src
                    n = min(budget, int(np.searchsorted(b.ts[p:s], tie, "right")))
                    spans.append((src, p + n))
                    budget -= n
            else:
                for src in active:
                    b, p, s = src
                    spans.append((src, p + int(np.searchsorted(b.ts[p:s], bound, "left"))))
        pieces: list[Piece] = []
        for src, stop in spans:
            block, pos = src[0], src[1]
            if stop <= pos:
                continue
            src[1] = stop
            mask = flt.mask(block, slice(pos, stop), snap, type_codes)
            rows: Rows = slice(pos, stop) if mask is None else pos + np.flatnonzero(mask)
            if mask is None or len(rows):  # type: ignore[arg-type]
                pieces.append((block, rows))
        sources = [s for s in sources if s[1] < s[2]]
        if not pieces:
            continue
        order = None
        if len(pieces) > 1:
            ts = np.concatenate([b.ts[r] for b, r in pieces])
            order = np.argsort(ts, kind="stable")
        total = sum(_count(r) for _, r in pieces)
        if remaining is not None:
            if total > remaining:
                pieces, order = _truncate(pieces, order, remaining)
                total = remaining
            remaining -= total
        yield pieces, order


def _count(rows: Rows) -> int:
    return rows.stop - rows.start if isinstance(rows, slice) else len(rows)


def _truncate(pieces: list[Piece], order: np.ndarray | None,
              keep_n: int) -> tuple[list[Piece], np.ndarray | None]:
    """Keep the first `keep_n` rows in time order."""
    if order is None:
        block, rows = pieces[0]
        if isinstance(rows, slice):
            return [(block, slice(rows.start, rows.start + keep_n))], None
        return [(block, rows[:keep_n])], None
    first = order[:keep_n]
    keep = np.zeros(len(order), dtype=bool)
    keep[first] = True
    new_index = np.cumsum(keep) - 1
    out: list[Piece] = []
    offset = 0
    for block, rows in pieces:
        n = _count(rows)
        k = keep[offset:offset + n]
        idx = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
        if k.any():
            out.append((block, idx[k]))
        offset += n
    return out, new_index[first]


# -- columns -------------------------------------------------------------------------------


def _all_keys(blocks: list[Block]) -> set[str]:
    keys: set[str] = set()
    for b in blocks:
        keys.update(b.property_keys)
    return keys


def _present(col: np.ndarray, kind: str, rows: Rows) -> bool:
    sub = col[rows]
    if kind == FLOAT:
        return not bool(np.isnan(sub).all())
    return bool((sub != NULL_DTYPES[kind][1]).any())


def _layout(snap: Snapshot, spec: ExportSpec,
            chunk_rows: int) -> tuple[Layout, int]:
    """Output columns (only property kinds that occur in the exported rows) and row count."""
    wanted = None if spec.fields is None else wanted_keys(spec, _all_keys(snap.blocks))
    candidates: set[str] | None = None if wanted is None or ALL_PROPERTIES in wanted \
        else set(wanted)
    found: dict[str, set[str]] = {}
    rows_total = 0

    def unknown(col_name: str) -> bool:
        """Whether the column is wanted and its key not yet known to have its kind."""
        key = col_name[2:]
        return (candidates is None or key in candidates) and col_name[0] not in \
            found.get(key, ())

    for pieces, _ in _rounds(snap, spec.flt, spec.limit, chunk_rows):
        for block, rows in pieces:
            rows_total += _count(rows)
            whole = isinstance(rows, slice) and rows.start == 0 and rows.stop == block.n
            stored = block.prop_columns
            for col_name in stored.dense_names():
                if unknown(col_name) and (block.has_values(col_name) if whole else _present(
                        block.scan("p:" + col_name), col_name[0], rows)):
                    found.setdefault(col_name[2:], set()).add(col_name[0])
            if whole:
                hits = [name for name in stored.sparse_names_with_values() if unknown(name)]
            else:  # (all rare keys of a kind checked together)
                sparse = {name for name in stored.sparse_names() if unknown(name)}
                hits = block.scan_props(sparse).select(rows).names_with_values() \
                    if sparse else []
            for col_name in hits:
                found.setdefault(col_name[2:], set()).add(col_name[0])

    return layout_of(spec, found), rows_total


def wanted_keys(spec: ExportSpec, known: set[str]) -> list[str] | None:
    """The property keys `spec.fields` names (`properties` for all), None without fields;
    400 for a key no stored event has (`known`: every stored key)."""
    if spec.fields is None:
        return None
    wanted = []
    for i, name in enumerate(spec.fields):
        if name == ALL_PROPERTIES:
            wanted.append(ALL_PROPERTIES)
        elif name.startswith("properties."):
            key = name[len("properties."):]
            if key not in known:
                raise field_error(f"fields[{i}]", f"no stored event has property {key!r}",
                                  value=name)
            wanted.append(key)
    return wanted


def layout_of(spec: ExportSpec, found: dict[str, set[str]]) -> Layout:
    """The output columns, given each property key in the exported rows and its kinds
    (every backend finds those its own way; the columns follow from them alike)."""
    def column(key: str) -> PropColumn:
        return PropColumn(key, tuple(k for k in KINDS if k in found.get(key, ())))

    if spec.fields is None:
        return Layout(BASE_FIELDS, tuple(column(k) for k in sorted(found)), True)
    base = tuple(f for f in spec.fields if f in FIELDS)
    wanted = [f for f in spec.fields if f == ALL_PROPERTIES or f.startswith("properties.")]
    listed = [f[len("properties."):] for f in wanted if f != ALL_PROPERTIES]
    order: list[str | PropColumn] = []  # (the table columns, in the order of `fields`)
    for name in spec.fields:
        if name == ALL_PROPERTIES:
            order += [column(k) for k in sorted(found) if k not in listed]
        elif name.startswith("properties."):
            order.append(column(name[len("properties."):]))
        elif name in FIELDS:
            order.append(name)
    props = tuple(c for c in order if isinstance(c, PropColumn))
    return Layout(base, props, bool(wanted), tuple(order))


_SCANNED_BASE = ("ts", "recv", "type", "user", "session", "id_hi", "id_lo")


class _Scanner:
    """Block columns for an export's one pass: all a block's needed columns decoded together
    the first time a chunk reaches into it, kept only while chunks still do (a segment spans
    several chunks), never put in the query cache."""

    def __init__(self, names: list[str]) -> None:
        self._names = names
        self._props = {n[2:] for n in names if n.startswith("p:")}
        self._columns: dict[int, dict[str, np.ndarray]] = {}
        self._prop_columns: dict[int, PropColumns] = {}

    def start_chunk(self, pieces: list[Piece]) -> None:
        live = {id(b) for b, _ in pieces}
        for key in [k for k in self._columns if k not in live]:
            del self._columns[key]
        for key in [k for k in self._prop_columns if k not in live]:
            del self._prop_columns[key]

    def props(self, block: Block) -> PropColumns:
        """The block's needed property columns as stored (rare keys stay sparse)."""
        found = self._prop_columns.get(id(block))
        if found is None:
            found = self._prop_columns[id(block)] = block.scan_props(self._props)
        return found

    def column(self, block: Block, name: str) -> np.ndarray:
        columns = self._columns.get(id(block))
        if columns is None:
            wanted = [n for n in self._names if not n.startswith("p:")]
            columns = self._columns[id(block)] = block.scan_many(wanted)
        found = columns.get(name)
        if found is None:
            found = columns[name] = block.scan(name)
        return found


def _gather(pieces: list[Piece], order: np.ndarray | None, layout: Layout,
            snap: Snapshot, scanner: _Scanner) -> Chunk:
    """The chunk's rows copied out of their blocks, in time order."""
    import pyarrow as pa

    scanner.start_chunk(pieces)

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return arr if order is None else arr[order]

    def base(name: str) -> np.ndarray:
        return cat([scanner.column(b, name)[r] for b, r in pieces])

    props = concat_props([scanner.props(b).select(r) for b, r in pieces])
    if order is not None:
        props = props.take(order)
    id_text = None
    if any(b.id_text is not None for b, _ in pieces):
        texts = []
        for b, r in pieces:
            n = _count(r)
            if b.id_text is None:
                texts.append(pa.nulls(n, pa.string()))
            elif isinstance(r, slice):
                texts.append(b.id_text.slice(r.start, n))
            else:
                texts.append(b.id_text.take(pa.array(r)))
        id_text = pa.concat_arrays(texts)
        if order is not None:
            id_text = id_text.take(pa.array(order))
    person = None
    if "personId" in layout.base:  # (person-aware blocks read `user` as the person's code)
        person = cat([b.user[r] for b, r in pieces])
    return Chunk(base("ts"), base("recv"), base("type"), base("user"), base("session"),
                 base("id_hi"), base("id_lo"), id_text, props, snap.dicts, person=person)


class PreparedExport(ABC):
    """What every prepared export offers its caller (the HTTP route, the CLI): the media
    type, file name and output columns, and `write_to`; subclasses stream `chunks()`."""

    spec: ExportSpec
    layout: Layout
    rows: int
    rows_written: int
    created: float

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.spec.format]

    @property
    def filename(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.created))
        return f"events-{stamp}.{EXTENSIONS[self.spec.format]}"

    @property
    def columns(self) -> list[str]:
        """Output column names (Parquet gathers varying-type keys into `properties`)."""
        if self.spec.format != "parquet":
            return self.layout.names
        names = [c if isinstance(c, str) else c.name for c in self.layout.columns
                 if isinstance(c, str) or not c.varied]
        return names + ([MIXED_COLUMN] if any(c.varied for c in self.layout.props) else [])

    def table_chunk_rows(self, chunk_rows: int) -> int:
        """Rows per chunk: tables hold a cell per row and column, so fewer rows when the
        layout is wide (bounded memory with many rare keys)."""
        if self.spec.format not in TABLE_FORMATS:
            return chunk_rows
        return max(1, min(chunk_rows, TABLE_CELLS // max(1, len(self.layout.columns))))

    @abstractmethod
    def chunks(self) -> Generator[bytes, None, None]:
        """The export's bytes, one piece per chunk of rows."""

    def write_to(self, out: Any) -> int:
        """Write the whole export to a binary file object; returns bytes written."""
        total = 0
        for data in self.chunks():
            out.write(data)
            total += len(data)
        return total


class Export(PreparedExport):
    """A prepared export of the embedded store: validated, columns known, ready to stream
    with `chunks()`."""

    def __init__(self, snap: Snapshot, spec: ExportSpec,
                 chunk_rows: int | None = None, now: float | None = None,
                 segments: SegmentResolver | None = None) -> None:
        self.snap = snap
        self.spec = spec = resolve_segment(spec, segments)
        self.chunk_rows = chunk_rows = chunk_rows or CHUNK_ROWS[spec.format]
        self.layout, self.rows = _layout(snap, spec, chunk_rows)
        self.chunk_rows = self.table_chunk_rows(chunk_rows)
        self.rows_written = 0
        self.created = time.time() if now is None else now
        self._writer: Writer | None = None

    def chunks(self) -> Generator[bytes, None, None]:
        """The export's bytes, one piece per chunk of rows (empty pieces skipped)."""
        writer = WRITERS[self.spec.format](self.layout, self.rows)
        self._writer = writer

        needed = [f"p:{kind}:{col.key}" for col in self.layout.props for kind in col.kinds]
        scanner = _Scanner([*_SCANNED_BASE, *needed])  # (one helper thread uses it)

        def prepare(pieces: list[Piece], order: np.ndarray | None) -> tuple[int, Any]:
            chunk = _gather(pieces, order, self.layout, self.snap, scanner)
            return chunk.n, writer.prepare(chunk)

        # Two-stage pipeline: a helper thread gathers and renders chunk i+1 while this one
        # writes chunk i (pyarrow and numpy release the GIL), holding two chunks at most.
        pool = ThreadPoolExecutor(1, thread_name_prefix="rta-export")
        pending: Future[tuple[int, Any]] | None = None
        try:
            head = writer.start()
            if head:
                yield head
            rounds = _rounds(self.snap, self.spec.flt, self.spec.limit, self.chunk_rows)
            while True:
                nxt = next(rounds, None)
                ahead = None if nxt is None else pool.submit(prepare, *nxt)
                if pending is not None:
                    n, prepared = pending.result()
                    data = writer.write(prepared)
                    del prepared
                    self.rows_written += n
                    release_free_memory()  # (the chunk's temporaries, see core.memory)
                    if data:
                        yield data
                pending = ahead
                if pending is None:
                    break
            tail = writer.finish()
            if tail:
                yield tail
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            writer.close()


def export_events(snap: Snapshot, body: Any, now: int | None = None,
                  segments: SegmentResolver | None = None,
                  chunk_rows: int | None = None) -> Export:
    """Parse a request body and prepare its export (library entry point)."""
    return Export(snap, parse_export(body, now), chunk_rows, segments=segments)
