"""Export core: every format read back with an independent reader and compared with the store.

The reference is the store itself decoded by `rta.core.embedded.render` (a separate, per-row code
path) and ordered with a plain stable sort; values are compared with their Python types so
1 and 1.0 are different.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.client.readers import iter_batches
from rta.core import export_formats
from rta.core.embedded.render import render_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import ValidationError
from rta.core.events import EventValidator
from rta.core.export import Export, export_events, format_for_path, parse_export
from tests.core.test_export_support import custom_ids, numpy_block

NOW = 1_800_000_000_000
TS = 1_700_000_000_000
NASTY = ["a,b", 'say "hi"', "line\nbreak", "cr\r\nlf", "ünïcødé ✓ 日本", "", " padded ",
         "<tag>&amp;", "tab\there", "back\\slash", "ctl\x01x"]


def ndjson_lines(data: bytes) -> list[str]:
    """NDJSON rows split on LF only (str.splitlines would also split on U+0085, U+2028)."""
    return [line for line in data.decode().split("\n") if line]



def typed(value: Any) -> Any:
    """A structure where 1, 1.0 and True all differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def make_store(events: list[dict[str, Any]], head: int = 5) -> ColumnStore:
    """An in-memory store; `head` small so the events land in several segments."""
    store = ColumnStore(None, StoreConfig(max_head_events=head, fsync=False))
    validator = EventValidator()
    for i in range(0, len(events), 3):
        batch, rejected = validator.validate_batch(events[i:i + 3], now=NOW)
        assert not rejected
        store.append(batch)
    return store


def reference(snap: Snapshot) -> list[dict[str, Any]]:
    """Every event via render.py, blocks in snapshot order, stably sorted by timestamp."""
    events = []
    for block in snap.blocks:
        events += render_events(block, np.arange(block.n), snap.dicts)
    return sorted(events, key=lambda e: e["timestamp"])


def sample_events() -> list[dict[str, Any]]:
    events = []
    for i in range(40):
        props: dict[str, Any] = {"page": NASTY[i % len(NASTY)], "n": i}
        if i % 3 == 0:
            props["mixed"] = [1, 2.5, "text", True, 3.0][i % 5]
        if i % 4 == 0:
            props["nested"] = {"deep": i * 0.5}
        if i % 5 == 0:
            props["flag"] = i % 2 == 0
        events.append({
            "id": f"custom,{i}\"" if i % 7 == 0 else None,
            "type": ["pageview", "click", "purchase"][i % 3],
            "userId": None if i % 6 == 0 else f"user-{i % 4}",
            "sessionId": f"s{i % 3}" if i % 2 else None,
            "timestamp": TS + (i * 37) % 25,  # out of order, ties, overlapping segments
            "properties": props,
        })
    for e in events:
        if e["id"] is None:
            del e["id"]
    return events


@pytest.fixture
def snap() -> Snapshot:
    return make_store(sample_events()).snapshot()


def run(snap: Snapshot, body: dict[str, Any], chunk_rows: int = 7) -> tuple[Export, bytes]:
    ex = export_events(snap, body, now=NOW, chunk_rows=chunk_rows)
    return ex, b"".join(ex.chunks())


def test_ndjson_matches_store_in_order(snap: Snapshot) -> None:
    assert len(snap.blocks) > 3
    ex, data = run(snap, {"format": "ndjson"})
    got = [json.loads(line) for line in ndjson_lines(data)]
    assert typed(got) == typed(reference(snap))
    assert ex.rows == len(got) == 40
    assert data.endswith(b"\n")


def test_json_array_matches_ndjson(snap: Snapshot) -> None:
    _, data = run(snap, {"format": "json"})
    assert typed(json.loads(data)) == typed(reference(snap))
    _, empty = run(snap, {"format": "json", "filter": {"type": "nope"}})
    assert json.loads(empty) == []


def cell_matches(cell: str, value: Any) -> bool:
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == ("true" if value else "false")
    if isinstance(value, int):
        return int(cell) == value
    if isinstance(value, float):
        return float(cell) == value
    return bool(cell == value)


def test_csv_round_trips_through_csv_module(snap: Snapshot) -> None:
    ex, data = run(snap, {"format": "csv"})
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    header, body = rows[0], rows[1:]
    ref = reference(snap)
    assert header == ex.columns
    assert header[:7] == ["id", "type", "userId", "sessionId", "timestamp", "receivedAt",
                          "personId"]
    assert sorted(header[7:]) == header[7:] == [
        "properties.flag", "properties.mixed", "properties.n", "properties.nested.deep",
        "properties.page"]
    assert len(body) == len(ref)
    for row, event in zip(body, ref, strict=True):
        for name, cell in zip(header, row, strict=True):
            value = event["properties"].get(name[11:]) if name.startswith("properties.") \
                else event[name]
            assert cell_matches(cell, value), (name, cell, value)
    # an empty string is quoted, a missing value is not: they stay distinguishable
    text = data.decode()
    assert ',"",' in text or ',""\n' in text
    # a mixed column keeps each value's own text: floats show their point
    mixed = {row[header.index("properties.mixed")] for row in body}
    assert {"1", "2.5", "text", "true", "3.0"} <= mixed


def test_parquet_typed_columns_and_mixed_json(snap: Snapshot) -> None:
    ex, data = run(snap, {"format": "parquet"})
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == ex.columns
    assert table.schema.field("properties.n").type == pa.int64()
    assert table.schema.field("properties.flag").type == pa.bool_()
    assert table.schema.field("properties.nested.deep").type == pa.float64()
    # times are times (#23): pandas, DuckDB and Spark read them as such, to the ms
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("receivedAt").type == pa.timestamp("ms", tz="UTC")
    table = table.set_column(table.column_names.index("timestamp"), "timestamp",
                             table.column("timestamp").cast(pa.int64()))
    table = table.set_column(table.column_names.index("receivedAt"), "receivedAt",
                             table.column("receivedAt").cast(pa.int64()))
    meta = pq.ParquetFile(io.BytesIO(data)).metadata  # a row group per chunk (<= 7 rows)
    assert meta.num_row_groups >= 6
    assert all(meta.row_group(i).num_rows <= 7 for i in range(meta.num_row_groups))
    ref = reference(snap)
    for row, event in zip(table.to_pylist(), ref, strict=True):
        props = {k[11:]: v for k, v in row.items() if k.startswith("properties.")
                 and v is not None}
        if row["properties"] is not None:
            props.update(json.loads(row["properties"]))
        assert typed(props) == typed(event["properties"])
        assert typed({k: row[k] for k in ("id", "type", "userId", "sessionId", "timestamp",
                                          "receivedAt")}) == typed(
            {k: event[k] for k in ("id", "type", "userId", "sessionId", "timestamp",
                                   "receivedAt")})


def test_parquet_timestamps_read_as_times_in_duckdb(snap: Snapshot, tmp_path: Any) -> None:
    """DuckDB (like pandas and Spark) sees a time, not a number of ms; CSV keeps the ms."""
    import duckdb

    _, data = run(snap, {"format": "parquet", "fields": ["timestamp", "receivedAt"]})
    path = tmp_path / "x.parquet"
    path.write_bytes(data)
    first = reference(snap)[0]
    con = duckdb.connect()
    kinds = con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
    assert [(k[0], k[1]) for k in kinds] == [("timestamp", "TIMESTAMP WITH TIME ZONE"),
                                             ("receivedAt", "TIMESTAMP WITH TIME ZONE")]
    ms = con.execute(f"SELECT epoch_ms(timestamp) FROM '{path}' LIMIT 1").fetchone()
    assert ms == (first["timestamp"],)
    _, text = run(snap, {"format": "csv", "fields": ["timestamp"]})
    assert text.decode().split("\n")[1] == str(first["timestamp"])


def test_integers_and_fractions_of_one_key_are_one_number_column() -> None:
    """Prices like 49 and 49.99 are ordinary data: tables get one double column (not JSON
    text in Parquet, not quoted text in CSV), whichever rows the export covers."""
    store = make_store([{"type": "buy", "timestamp": TS + i, "properties": {"amount": v}}
                        for i, v in enumerate([49, 49.99, None, -3, 2**40 + 1])])
    snap = store.snapshot()
    ex, data = run(snap, {"format": "parquet", "fields": ["timestamp", "properties.amount"]})
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == ex.columns == ["timestamp", "properties.amount"]
    assert table.schema.field("properties.amount").type == pa.float64()
    assert table.column("properties.amount").to_pylist() == [49.0, 49.99, None, -3.0,
                                                             2.0**40 + 1]
    _, data = run(snap, {"format": "csv", "fields": ["properties.amount"]})
    lines = data.decode().split("\n")
    assert lines[:5] == ['"properties.amount"', "49", "49.99", "", "-3"]
    assert float(lines[5]) == 2**40 + 1  # (pyarrow writes large doubles with an exponent)
    store.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_table_columns_follow_the_fields_asked_for(snap: Snapshot, fmt: str) -> None:
    fields = ["properties.n", "userId", "properties", "timestamp", "properties.flag", "type"]
    ex, data = run(snap, {"format": fmt, "fields": fields})
    if fmt == "csv":
        header = next(csv.reader(io.StringIO(data.decode())))
    elif fmt == "parquet":
        header = pq.read_table(io.BytesIO(data)).column_names
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
        header = list(next(sheet.iter_rows(values_only=True)))
    assert header == ex.columns
    others = [c for c in header if c.startswith("properties.") and
              c not in ("properties.n", "properties.flag")]
    want = ["properties.n", "userId", *others, "timestamp", "properties.flag", "type"]
    if fmt == "parquet":  # (keys of varying type go last, together, as JSON)
        want = [c for c in want if c != "properties.mixed"] + ["properties"]
        others = [c for c in others if c != "properties.mixed"]
    assert header == want
    assert others == sorted(others) and others


def test_xlsx_read_back_with_openpyxl(snap: Snapshot) -> None:
    ex, data = run(snap, {"format": "xlsx"})
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert list(rows[0]) == ex.columns
    ref = reference(snap)
    assert len(rows) - 1 == len(ref)
    for row, event in zip(rows[1:], ref, strict=True):
        for name, cell in zip(rows[0], row, strict=True):
            value = event["properties"].get(name[11:]) if name.startswith("properties.") \
                else event[name]
            if isinstance(value, str):
                value = value.replace("\x01", "\ufffd")
                if value == "":
                    assert cell in ("", None)
                    continue
            assert typed(cell) == typed(value), (name, cell, value)
    wb.close()


def test_xlsx_continues_on_new_sheets(snap: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_formats, "XLSX_MAX_ROWS", 11)  # 10 data rows + header a sheet
    _, data = run(snap, {"format": "xlsx", "fields": ["id", "timestamp"]}, chunk_rows=7)
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert wb.sheetnames == ["events", "events 2", "events 3", "events 4"]
    ids = []
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0] == ("id", "timestamp")
        assert len(rows) <= 11
        ids += [r[0] for r in rows[1:]]
    assert ids == [e["id"] for e in reference(snap)]
    wb.close()


def test_fields_filter_and_limit(snap: Snapshot) -> None:
    body = {"format": "ndjson", "fields": ["timestamp", "id", "properties.page"],
            "filter": {"type": ["pageview", "click"], "where": [
                {"property": "n", "operator": "gte", "value": 4}]}, "limit": 9}
    ex, data = run(snap, body, chunk_rows=4)
    got = [json.loads(line) for line in ndjson_lines(data)]
    want = [e for e in reference(snap)
            if e["type"] in ("pageview", "click") and e["properties"]["n"] >= 4][:9]
    assert [list(g) for g in got] == [["timestamp", "id", "properties"]] * 9
    assert got == [{"timestamp": e["timestamp"], "id": e["id"],
                    "properties": {"page": e["properties"]["page"]}} for e in want]
    assert ex.columns == ["timestamp", "id", "properties.page"]


def test_properties_field_expands_and_unused_keys_are_dropped(snap: Snapshot) -> None:
    ex, _ = run(snap, {"format": "csv", "fields": ["id", "properties"],
                       "filter": {"type": "click"}})
    # clicks are i % 3 == 1: they never carry `mixed` (i % 3 == 0)
    assert "properties.mixed" not in ex.columns
    assert ex.columns[0] == "id" and "properties.page" in ex.columns


@pytest.mark.parametrize("body,field", [
    ({"format": "pdf"}, "format"),
    ({"format": 3}, "format"),
    ({"fields": ["id", "nope"]}, "fields[1]"),
    ({"fields": "id"}, "fields"),
    ({"fields": []}, "fields"),
    ({"fields": ["id", "id"]}, "fields[1]"),
    ({"limit": 0}, "limit"),
    ({"limit": -5}, "limit"),
    ({"limit": "10"}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": 2.5}, "limit"),
    ({"filter": {"startTime": "soon"}}, "filter.startTime"),
    ({"filter": {"where": [{"property": "x", "operator": "like"}]}},
     "filter.where[0].operator"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_export(body, now=NOW)
    assert info.value.details[0]["field"] == field


def test_unknown_property_field_is_rejected(snap: Snapshot) -> None:
    with pytest.raises(ValidationError) as info:
        export_events(snap, {"fields": ["id", "properties.never_seen"]}, now=NOW)
    assert info.value.details[0]["field"] == "fields[1]"


def test_format_for_path() -> None:
    assert format_for_path("a/b.CSV") == "csv"
    assert format_for_path("x.jsonl") == "ndjson"
    assert format_for_path("x.json") == "json"
    assert format_for_path("x.parquet") == "parquet"
    assert format_for_path("x.xlsx") == "xlsx"
    assert format_for_path("x.txt") is None


def test_uuid_text_matches_python() -> None:
    import uuid

    rng = np.random.default_rng(3)
    hi = rng.integers(0, 2**63, 500).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    lo = rng.integers(0, 2**63, 500).astype(np.uint64)
    got = export_formats.uuid_strings(hi, lo).to_pylist()
    assert got == [str(uuid.UUID(int=(int(h) << 64) | int(low)))
                   for h, low in zip(hi.tolist(), lo.tolist(), strict=True)]


def test_overlapping_blocks_merge_in_time_order() -> None:
    """Numpy blocks that overlap in time, with a tie longer than a chunk."""
    d = Dictionaries(None)
    a = numpy_block(d, 3000, TS, seed=1, step=2)
    b = custom_ids(numpy_block(d, 2000, TS + 1, seed=2, step=3))
    c = numpy_block(d, 500, TS + 100, seed=3, step=0)  # 500 events in one millisecond
    snap = Snapshot([a, b, c], d, 1)
    _, data = run(snap, {"format": "ndjson", "fields": ["id", "timestamp"]}, chunk_rows=128)
    got = [json.loads(line) for line in ndjson_lines(data)]
    want = reference(snap)
    assert [(g["id"], g["timestamp"]) for g in got] == [(e["id"], e["timestamp"])
                                                        for e in want]
    _, data2 = run(snap, {"format": "ndjson", "fields": ["id"], "limit": 777},
                     chunk_rows=50)
    assert [json.loads(line)["id"] for line in ndjson_lines(data2)] == [
        e["id"] for e in want[:777]]


@st.composite
def event_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 30))
    values = st.one_of(st.integers(-2**62, 2**62), st.floats(allow_nan=False,
                       allow_infinity=False), st.booleans(),
                       st.text(max_size=8), st.sampled_from(NASTY))
    out = []
    for i in range(n):
        props = draw(st.dictionaries(st.sampled_from(["a", "b", "c.d", "e"]), values,
                                     max_size=4))
        out.append({"id": f"e{i}", "type": draw(st.sampled_from(["x", "y", "z"])),
                    "userId": draw(st.sampled_from([None, "u1", "u2"])),
                    "timestamp": TS + draw(st.integers(0, 12)), "properties": props})
    return out


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_lists(), chunk=st.integers(1, 9), limit=st.none() | st.integers(1, 40),
       types=st.none() | st.sampled_from([["x"], ["x", "z"]]))
def test_ndjson_export_is_the_filtered_store(events: list[dict[str, Any]], chunk: int,
                                             limit: int | None,
                                             types: list[str] | None) -> None:
    snap = make_store(events, head=4).snapshot()
    body: dict[str, Any] = {"format": "ndjson", "limit": limit,
                            "filter": {"type": types} if types else {}}
    ex, data = run(snap, body, chunk_rows=chunk)
    got = [json.loads(line) for line in ndjson_lines(data)]
    want = [e for e in reference(snap) if types is None or e["type"] in types][:limit]
    assert typed(got) == typed(want)
    assert ex.rows == len(want)
    # parquet read back through the ingest reader gives the same values and types
    ex, pdata = run(snap, {**body, "format": "parquet"}, chunk_rows=chunk)
    back = [e for batch in _parquet_events(pdata) for e in batch]
    kinds: dict[str, set[str]] = {}
    for e in want:
        for k, v in e["properties"].items():
            kinds.setdefault(k, set()).add(type(v).__name__)
    numbers = {k for k, seen in kinds.items() if seen == {"int", "float"}}  # one double column
    assert typed([e.get("properties", {}) for e in back]) == typed(
        [{k: float(v) if k in numbers else v for k, v in e["properties"].items()}
         for e in want])


def _parquet_events(data: bytes) -> list[list[Any]]:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.parquet")
        with open(path, "wb") as f:
            f.write(data)
        return list(iter_batches(path, "parquet", 1000))


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_round_trip_through_ingest_reader_gives_identical_store(fmt: str, tmp_path: Any,
                                                                 snap: Snapshot) -> None:
    _, data = run(snap, {"format": fmt})
    path = tmp_path / f"events.{fmt}"
    path.write_bytes(data)
    again = ColumnStore(None, StoreConfig(fsync=False))
    validator = EventValidator()
    for raw in iter_batches(str(path), fmt, 11):
        batch, rejected = validator.validate_batch(raw, now=NOW)
        assert not rejected
        again.append(batch)

    def canon(s: Snapshot) -> list[Any]:
        events = reference(s)
        for e in events:
            del e["receivedAt"]  # stamped by the ingesting server
        return typed(sorted(events, key=lambda e: e["id"]))

    assert canon(again.snapshot()) == canon(snap)


def test_write_to_and_rows_written(snap: Snapshot) -> None:
    ex = Export(snap, parse_export({"format": "csv"}, now=NOW), chunk_rows=6)
    out = io.BytesIO()
    total = ex.write_to(out)
    assert total == len(out.getvalue()) and ex.rows_written == 40
    assert ex.filename.startswith("events-") and ex.filename.endswith(".csv")
    assert ex.media_type.startswith("text/csv")


def test_filter_keys_at_the_top_level_filter_too(snap: Snapshot) -> None:
    """{"type": ...} beside "filter", as the query endpoints take it, is not ignored."""
    types = {e["type"] for e in reference(snap)}
    one = sorted(types)[0]
    _, data = run(snap, {"format": "ndjson", "type": one})
    got = [json.loads(line) for line in ndjson_lines(data)]
    assert got and {e["type"] for e in got} == {one}
    assert len(got) == sum(e["type"] == one for e in reference(snap))
    with pytest.raises(ValidationError, match="both at the top level and in filter"):
        run(snap, {"format": "ndjson", "type": one, "filter": {"type": one}})
