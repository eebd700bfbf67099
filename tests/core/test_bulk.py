"""Bulk load: the same query-visible data as the row-by-row ingest path, only faster."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.demo import generate_arrow, table_events
from rta.core.embedded.eventlist import list_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.embedded.store.bulk import BulkReadError, bulk_load, bulk_load_ndjson, load_table
from rta.core.events import EventValidator, Limits
from rta.core.queries.filters import EventFilter
from rta.core.queries.timeparse import now_ms

NOW = now_ms()  # bulk_load validates against the real clock
END = NOW - 60_000


def visible(store: ColumnStore, drop_ids: bool = False) -> list[tuple[Any, ...]]:
    """Every event as the API lists it, numbers normalised to float (see bulk.py: a key with
    ints and decimals in one JSON block is typed float by pyarrow)."""
    out = []
    for e in list_events(store.snapshot(), EventFilter(), limit=10_000).events:
        props = tuple(sorted((k, float(v) if isinstance(v, int | float) and
                              not isinstance(v, bool) else v)
                             for k, v in e["properties"].items()))
        out.append(("" if drop_ids else e["id"], e["type"], e["userId"], e["sessionId"],
                    e["timestamp"], props))
    return sorted(out, key=repr)


def row_path(events: list[Any], store: ColumnStore, limits: Limits | None = None,
             batch: int = 97) -> list[dict[str, Any]]:
    """The normal path: validate in batches, append; returns the rejections (global index)."""
    validator = EventValidator(limits or Limits())
    rejected: list[dict[str, Any]] = []
    for i in range(0, len(events), batch):
        good, bad = validator.validate_batch(events[i:i + batch], now=NOW, index_offset=i)
        rejected += bad
        store.append(good)
    return rejected


def write_ndjson(path: Path, events: list[Any], blank_lines: bool = False) -> str:
    with open(path, "w") as f:
        for i, e in enumerate(events):
            f.write(json.dumps(e) + "\n")
            if blank_lines and i % 7 == 3:
                f.write("\n   \n")
    return str(path)


def tricky_events() -> list[Any]:
    """Valid, invalid and duplicate events covering every validator branch bulk must match."""
    base = list(table_events(generate_arrow(300, users=40, days=2, seed=3, end_ms=END)))
    events: list[Any] = list(base)
    events += [dict(base[5]), {**base[6], "properties": {"changed": 1}}]  # duplicate ids
    events += [
        {"type": "pageview"},  # no id, no timestamp: generated id, now
        {"id": "custom-id-1", "type": "click", "timestamp": END - 5,
         "properties": {"nested": {"a": 1, "b": {"c": "x"}}, "list": [1, 2], "flag": True}},
        {"id": str(uuid.uuid4()).upper(), "type": "click", "timestamp": END - 4},
        {"id": "iso", "type": "signup", "timestamp": "2026-01-15T12:00:00Z"},
        {"id": "float-ts", "type": "signup", "timestamp": float(END - 3)},
        {"id": "empty-user", "type": "x", "userId": "", "sessionId": "",
         "timestamp": END - 2},
        {"id": "spaces", "type": "  padded  ", "timestamp": END - 1},
        {"id": "nan-prop", "type": "y", "timestamp": END, "properties": {"v": None}},
        {"id": 12345, "type": "int-id", "timestamp": END},
        # invalid
        {"id": "no-type", "timestamp": END},
        {"id": "blank-type", "type": "   ", "timestamp": END},
        {"id": "future", "type": "x", "timestamp": NOW + 2 * 3_600_000},
        {"id": "negative", "type": "x", "timestamp": -5},
        {"id": "bad-user", "type": "x", "userId": 5, "timestamp": END},
        {"id": "bad-props", "type": "x", "properties": "nope", "timestamp": END},
        {"id": "long-type", "type": "t" * 201, "timestamp": END},
        {"id": "", "type": "x", "timestamp": END},
        {"id": "big", "type": "x", "timestamp": END, "properties": {"blob": "z" * 40_000}},
        {"id": "bad-ts", "type": "x", "timestamp": "yesterday-ish"},
        {"id": True, "type": "x"},
        [1, 2, 3],
    ]
    return events


def test_ndjson_matches_row_path_with_duplicates_and_invalid(tmp_path: Path) -> None:
    events = tricky_events()
    normal = ColumnStore(str(tmp_path / "a"), StoreConfig(max_head_events=50))
    expected_rejected = row_path(events, normal)
    bulk = ColumnStore(str(tmp_path / "b"), StoreConfig(max_head_events=50))
    path = write_ndjson(tmp_path / "e.ndjson", events, blank_lines=True)
    result = bulk_load_ndjson(bulk, path, now=NOW, chunk_bytes=4096)  # many small chunks
    assert [r["index"] for r in result.rejected] == [r["index"] for r in expected_rejected]
    assert result.rejected == expected_rejected  # same messages, details and codes
    assert result.accepted == len(events) - len(expected_rejected) - result.duplicates
    assert result.duplicates == normal.duplicates_dropped == 2
    # The event with no id got a fresh generated id on each path: compare it without ids.
    assert visible(bulk, drop_ids=True) == visible(normal, drop_ids=True)
    generated = {e[0] for e in visible(bulk)} - {e[0] for e in visible(normal)}
    assert len(generated) == 1 and uuid.UUID(generated.pop()).version == 8
    bulk.close()
    normal.close()


def test_arrow_table_matches_row_path_and_dedups_existing(tmp_path: Path) -> None:
    table = generate_arrow(3000, users=200, days=5, seed=9, end_ms=END)
    events = list(table_events(table))
    normal = ColumnStore(None, StoreConfig(max_head_events=700))
    row_path(events, normal)
    bulk = ColumnStore(str(tmp_path / "b"), StoreConfig(max_head_events=700))
    row_path(events[:1000], bulk)  # part arrives the normal way first (head + segment)
    result = load_table(bulk, table, now=NOW)
    assert (result.accepted, result.duplicates, result.rejected) == (2000, 1000, [])
    assert visible(bulk) == visible(normal)
    assert result.segments == 3  # 700 + 700 + 600 rows
    for seg in bulk.segments:  # each segment is time-sorted
        assert (seg.block.ts[1:] >= seg.block.ts[:-1]).all()
    bulk.close()
    reopened = ColumnStore(str(tmp_path / "b"), StoreConfig(max_head_events=700))
    assert visible(reopened) == visible(normal)
    assert bulk_load(reopened, table) == 0  # everything is a duplicate now
    reopened.close()


def test_bulk_after_unsealed_head_survives_a_crash(tmp_path: Path) -> None:
    """Bulk segments must not mark the head's WAL as covered."""
    cfg = StoreConfig(max_head_events=10_000)
    store = ColumnStore(str(tmp_path), cfg)
    first = list(table_events(generate_arrow(200, users=20, days=1, seed=1, end_ms=END)))
    row_path(first, store)  # stays in the head: only the WAL has it
    bulk_load(store, generate_arrow(500, users=20, days=1, seed=2, end_ms=END))
    before = visible(store)
    assert len(before) == 700
    os.close(store._lock_fd)  # type: ignore[arg-type]  # crash: no close(), no seal
    store._lock_fd = None
    reopened = ColumnStore(str(tmp_path), cfg)
    assert visible(reopened) == before
    reopened.close()


def test_in_memory_store_and_empty_inputs(tmp_path: Path) -> None:
    store = ColumnStore(None, StoreConfig(max_head_events=100))
    assert bulk_load(store, generate_arrow(0, seed=1, end_ms=END)) == 0
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n\n")
    assert bulk_load_ndjson(store, str(empty)).accepted == 0
    table = generate_arrow(250, users=10, days=1, seed=4, end_ms=END)
    assert bulk_load(store, table) == 250
    assert [s.block.n for s in store.segments] == [100, 100, 50]
    assert store.stats()["events"] == 250


def test_gzip_and_bad_json_line(tmp_path: Path) -> None:
    events = list(table_events(generate_arrow(50, users=5, days=1, seed=5, end_ms=END)))
    gz = tmp_path / "e.ndjson.gz"
    with gzip.open(gz, "wt") as f:
        f.write("\n".join(json.dumps(e) for e in events))  # no final newline
    store = ColumnStore(None)
    assert bulk_load_ndjson(store, str(gz), now=NOW).accepted == 50
    bad = tmp_path / "bad.ndjson"
    bad.write_text(json.dumps(events[0]) + "\n\n{not json\n")
    with pytest.raises(BulkReadError, match=r"bad.ndjson:3: not valid JSON"):
        bulk_load_ndjson(ColumnStore(None), str(bad), now=NOW)
    # pyarrow reads NaN and Infinity; JSON has no such numbers, so they are refused too
    nan = tmp_path / "nan.ndjson"
    nan.write_text(json.dumps(events[0]) + '\n{"type": "t", "properties": {"v": NaN}}\n')
    with pytest.raises(BulkReadError, match=r"nan.ndjson:2: not valid JSON: NaN"):
        bulk_load_ndjson(ColumnStore(None), str(nan), now=NOW)


@pytest.mark.parametrize("blank", ["\n", "   \n", "\t\r\n"])
def test_two_objects_on_one_line_are_not_two_events(tmp_path: Path, blank: str) -> None:
    """pyarrow reads `{..} {..}` on one line as two rows; with a blank line elsewhere the row
    count equals the line count, and still the line must be refused as `rta ingest` does."""
    one = json.dumps({"type": "a", "timestamp": NOW - 5})
    path = tmp_path / "two.ndjson"
    path.write_text(one + "\n" + one + " " + one + "\n" + blank + one + "\n")
    with pytest.raises(BulkReadError, match=r"two.ndjson:2: not valid JSON"):
        bulk_load_ndjson(ColumnStore(None), str(path), now=NOW)
    path.write_text(one + "\n" + blank + one + "\n")  # a blank line alone is skipped
    assert bulk_load_ndjson(ColumnStore(None), str(path), now=NOW).accepted == 2


def test_counts_match_duckdb_on_the_same_table(tmp_path: Path) -> None:
    table = generate_arrow(5000, users=300, days=10, seed=12, end_ms=END)
    store = ColumnStore(None, StoreConfig(max_head_events=1000))
    bulk_load(store, table)
    snap = store.snapshot()
    ours: dict[str, int] = {}
    users: set[int] = set()
    for block in snap.blocks:
        for code, count in enumerate(block.type_counts.tolist()):
            if count:
                name = store.dicts.types.strings[code]
                ours[name] = ours.get(name, 0) + count
        users.update(block.user.tolist())
    con = duckdb.connect()
    con.register("events", table)
    theirs = dict(con.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
    assert ours == theirs
    assert len(users) == con.execute("SELECT count(DISTINCT userId) FROM events").fetchone()[0]
    revenue = sum(float(b.numeric("revenue")[~pc.is_nan(pa.array(b.numeric("revenue")))
                                              .to_numpy(zero_copy_only=False)].sum())
                  for b in snap.blocks)
    duck = con.execute('SELECT sum("properties.revenue") FROM events').fetchone()[0]
    assert revenue == pytest.approx(duck)


scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
                   st.lists(st.integers(0, 3), max_size=2))
event = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.sampled_from(["a", "b", "c", str(uuid.UUID(int=7))]),
                        st.integers(0, 3), st.booleans(), st.none()),
        "type": st.one_of(st.sampled_from(["pageview", "click", " ", ""]), st.integers(0, 2)),
        "userId": st.one_of(st.sampled_from(["u1", "u2", ""]), st.none(), st.integers(0, 1)),
        "sessionId": st.sampled_from(["s1", "s2"]),
        "timestamp": st.one_of(st.integers(END - 10_000, NOW + 4_000_000),
                               st.sampled_from([-1, "2026-01-01T00:00:00Z", "soon"])),
        "properties": st.one_of(
            st.dictionaries(st.sampled_from(["a", "b", "c.d", ""]), scalar, max_size=3),
            st.fixed_dictionaries({"c": st.fixed_dictionaries({"d": scalar})}),
            st.sampled_from(["str", 3])),
    })


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(event, max_size=25))
def test_property_ndjson_equals_row_path(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    """Random mixes of good, bad and duplicate events: same rejections, same visible data."""
    for e in events:  # ids decide dedup; keep generated ids out of the comparison
        e.setdefault("id", "fixed")
        if e["id"] is None:
            e["id"] = "none"
    normal = ColumnStore(None, StoreConfig(max_head_events=7))
    expected_rejected = row_path(events, normal, batch=len(events) or 1)
    path = write_ndjson(tmp_path / "p.ndjson", events)
    bulk = ColumnStore(None, StoreConfig(max_head_events=7))
    result = bulk_load_ndjson(bulk, path, now=NOW, chunk_bytes=512)
    assert result.rejected == expected_rejected
    assert result.duplicates == normal.duplicates_dropped
    assert visible(bulk) == visible(normal)
