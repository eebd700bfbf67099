"""Exports answered by ClickHouse (`backend = "clickhouse"`): the same five formats, bytes for
bytes, as exports of the embedded store.

One streamed query reads the selected rows in time order (ties in arrival order: ORDER BY ts,
seq); each slice of rows becomes the writers' `Chunk` (strings dictionary-coded in
export-local dictionaries, properties as the store's sentinel-filled columns), so every
writer of `export_formats` serves both backends unchanged. The layout (which property
columns and kinds appear) comes from one aggregate query first, as the embedded export's
first pass does.

Thread rule: a worker thread (blocking I/O); the HTTP route drives `chunks()` as it drives
the embedded `Export`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.filter_sql import Params, where_sql
from rta.core.clickhouse.rows import MAP_COLUMNS
from rta.core.clickhouse.view import events_source, has_person_props
from rta.core.embedded.store.block import PropColumns
from rta.core.embedded.store.dictionary import Dictionaries, Dictionary
from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR
from rta.core.export import (
    CHUNK_ROWS,
    ExportSpec,
    PreparedExport,
    layout_of,
    resolve_segment,
    wanted_keys,
)
from rta.core.export_formats import WRITERS, Chunk, Layout, Writer
from rta.core.identity import RAW, identity_mode
from rta.core.memory import release_free_memory
from rta.core.queries.filters import SegmentResolver

_SELECT = "ts, recv, id, type, raw_user, user, session, props_s, props_i, props_f, props_b"


class ClickHouseExport(PreparedExport):
    """A prepared export over ClickHouse; the interface of `rta.core.export.Export`."""

    def __init__(self, ch: ClickHouse, spec: ExportSpec, chunk_rows: int | None = None,
                 now: float | None = None, segments: SegmentResolver | None = None,
                 ready: Callable[[], object] | None = None) -> None:
        if ready is not None:  # (read-your-writes: what was acknowledged has shipped)
            ready()
        self.ch = ch
        self.spec = spec = resolve_segment(spec, segments)
        self._params = Params()
        where = where_sql(spec.flt, self._params)
        # (raw_user for the userId filter; persons for saved segments' members)
        persons = identity_mode.get() != RAW
        if has_person_props(ch):  # filter on person.<key>, write the events' own maps
            merged = events_source(ch.database, persons=persons, person_props=True,
                                   keep_maps=True)
            maps = ", ".join(f"raw_{c} AS {c}" for c in MAP_COLUMNS.values())
            # (filtered in a subquery of its own: an alias named props_s would otherwise be
            # what the WHERE reads, ClickHouse resolving aliases before columns)
            events = (f"(SELECT ts, recv, seq, id, type, raw_user, user, session, {maps} "
                      f"FROM (SELECT * FROM {merged} WHERE {where}))")
            where = "1"
        else:
            events = events_source(ch.database, persons=persons)
        limit = f" LIMIT {int(spec.limit)}" if spec.limit is not None else ""
        self._rows_sql = f"SELECT {_SELECT} FROM {events} WHERE {where} ORDER BY ts, seq{limit}"
        source = f"({self._rows_sql})" if limit else f"(SELECT * FROM {events} WHERE {where})"
        if spec.fields is not None:  # (400 for a key no stored event has, as embedded)
            wanted_keys(spec, {str(k) for k, in ch.rows(
                f"SELECT DISTINCT key FROM `{ch.database}`.property_kinds")})
        found: dict[str, set[str]] = {}
        keys = ", ".join(f"groupUniqArrayArray(mapKeys({col}))" for col in MAP_COLUMNS.values())
        (rows, *per_kind), = ch.rows(f"SELECT count(), {keys} FROM {source}",
                                     self._params.values)
        for kind, names in zip(MAP_COLUMNS, per_kind, strict=True):
            for key in names:
                found.setdefault(str(key), set()).add(kind)
        self.layout, self.rows = layout_of(spec, found), int(rows)
        self.chunk_rows = self.table_chunk_rows(chunk_rows or CHUNK_ROWS[spec.format])
        self.rows_written = 0
        self.created = time.time() if now is None else now

    def chunks(self) -> Generator[bytes, None, None]:
        writer: Writer = WRITERS[self.spec.format](self.layout, self.rows)
        dicts = Dictionaries(None)  # (this export's own codes for the writers' decoding)
        try:
            head = writer.start()
            if head:
                yield head
            pending: list[pa.RecordBatch] = []
            held = 0
            for batch in self.ch.arrow_stream(self._rows_sql, self._params.values):
                pending.append(batch)
                held += batch.num_rows
                while held >= self.chunk_rows:
                    table = pa.Table.from_batches(pending)
                    data = self._write(writer, table.slice(0, self.chunk_rows), dicts)
                    rest = table.slice(self.chunk_rows)
                    pending, held = rest.to_batches(), rest.num_rows
                    if data:
                        yield data
            if held:
                data = self._write(writer, pa.Table.from_batches(pending), dicts)
                if data:
                    yield data
            tail = writer.finish()
            if tail:
                yield tail
        finally:
            writer.close()

    def _write(self, writer: Writer, table: pa.Table, dicts: Dictionaries) -> bytes:
        chunk = _chunk(table.combine_chunks(), self.layout, dicts)
        data = writer.write(writer.prepare(chunk))
        self.rows_written += chunk.n
        release_free_memory()
        return data


def _codes(arr: pa.ChunkedArray | pa.Array, dictionary: Dictionary) -> np.ndarray:
    """Dictionary codes of a string column (-1 for null), encoding each distinct value once."""
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    words = enc.dictionary.to_pylist()
    mapping = dictionary.encode(words) if words else np.zeros(0, np.int32)
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.full(len(idx), -1, dtype=np.int32)
    ok = idx >= 0
    out[ok] = mapping[idx[ok]]
    return out


def _sentinel(kind: str, values: pa.Array, dicts: Dictionaries) -> np.ndarray:
    if kind == STR:
        return _codes(values, dicts.values)
    if kind == INT:
        return values.fill_null(INT64_MIN).to_numpy(zero_copy_only=False).astype(np.int64)
    if kind == FLOAT:
        return values.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    assert kind == BOOL
    ints = pc.cast(values, pa.int8()).fill_null(-1)
    return ints.to_numpy(zero_copy_only=False).astype(np.int8)


def _chunk(table: pa.Table, layout: Layout, dicts: Dictionaries) -> Chunk:
    n = table.num_rows
    dense: dict[str, np.ndarray] = {}
    maps = {kind: table.column(column).combine_chunks() for kind, column in MAP_COLUMNS.items()}
    for col in layout.props:  # (the columns the layout names, as the embedded export reads)
        for kind in col.kinds:
            values = pc.map_lookup(maps[kind], pa.scalar(col.key), "first")
            dense[f"{kind}:{col.key}"] = _sentinel(kind, values, dicts)
    id_text = table.column("id").combine_chunks()
    zeros = np.zeros(n, dtype=np.uint64)
    return Chunk(table.column("ts").to_numpy().astype(np.int64),
                 table.column("recv").to_numpy().astype(np.int64),
                 _codes(table.column("type"), dicts.types),
                 _codes(table.column("raw_user"), dicts.users),
                 _codes(table.column("session"), dicts.sessions),
                 zeros, zeros, id_text, PropColumns(n, dense), dicts,
                 person=_codes(table.column("user"), dicts.users)
                 if "personId" in layout.base else None)
