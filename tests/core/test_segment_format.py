"""Segment format 2: exact column encodings, the decoded-column cache, damage found late."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.embedded.store.column_cache import ColumnCache
from rta.core.embedded.store.encoding import (
    compact_floats,
    decode_column,
    encode_column,
    restore_floats,
)
from rta.core.errors import DamagedSegmentError
from rta.core.events import INT64_MIN, EventValidator

DTYPES = [np.int64, np.int32, np.int8, np.uint64]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), name=st.sampled_from(["ts", "recv", "id_lo", "user", "p:i:n"]),
       dtype=st.sampled_from(DTYPES))
def test_encodings_round_trip_exactly(data: st.DataObject, name: str, dtype: type) -> None:
    info = np.iinfo(dtype)
    values = data.draw(hnp.arrays(dtype, st.integers(0, 300), elements=st.one_of(
        st.integers(int(info.min), int(info.max)), st.sampled_from([int(info.min), -1, 0])
        if info.min < 0 else st.just(int(info.max)))))
    stored, meta = encode_column(name, values)
    assert stored.dtype.kind in "u" or meta["enc"] == "raw"
    back = decode_column(stored.copy(), meta)
    assert back.dtype == values.dtype
    assert np.array_equal(back, values)


def test_encodings_narrow_typical_columns() -> None:
    ts = np.sort(np.random.default_rng(1).integers(1_700_000_000_000, 1_700_086_400_000,
                                                    100_000))
    stored, meta = encode_column("ts", ts)
    assert meta["enc"] == "delta" and stored.dtype == np.uint16  # gaps < 65.5 s
    codes = np.random.default_rng(2).integers(-1, 40, 1000).astype(np.int32)
    stored, _ = encode_column("type", codes)
    assert stored.dtype == np.uint8
    sentinel = np.array([INT64_MIN, 5, 7], dtype=np.int64)  # a missing int next to values
    stored, meta = encode_column("p:i:n", sentinel)
    assert stored.dtype == np.uint64 and np.array_equal(decode_column(stored, meta), sentinel)


FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-10**9, 10**9).map(float),  # integral: float32 or int32 decimals
    st.tuples(st.integers(-10**7, 10**7), st.sampled_from([1, 2, 3, 4, 5])).map(
        lambda t: float(f"{t[0]}e-{t[1]}")),  # what JSON like 49.54 parses to
    st.sampled_from([0.0, -0.0, float("nan"), 1e-300, 2.0**31, 167772.15, 167772.16]))


@settings(max_examples=400, deadline=None)
@given(values=hnp.arrays(np.float64, st.integers(0, 200), elements=FLOATS))
def test_cache_forms_of_floats_restore_bit_for_bit(values: np.ndarray) -> None:
    compact = compact_floats(values)
    if compact is None:
        return  # (kept as float64: nothing to restore)
    kept, scale = compact
    assert kept.itemsize == 4
    back = restore_floats(kept, scale)
    assert back.dtype == np.float64
    assert np.array_equal(back.view(np.uint64)[~np.isnan(values)],
                          values.view(np.uint64)[~np.isnan(values)])
    assert np.array_equal(np.isnan(back), np.isnan(values))


def test_typical_floats_take_half_the_bytes() -> None:
    timings = np.array([49.54, np.nan, 9.38, 70691.0, 0.01, np.nan])
    kept, scale = compact_floats(timings) or (timings, -1.0)
    assert kept.dtype == np.float32 and scale == 100.0
    large = np.array([49.54, np.nan, 9_999_999.99])  # (beyond 2**24 / 100)
    kept, scale = compact_floats(large) or (large, -1.0)
    assert kept.dtype == np.int32 and scale == 100.0
    counts = np.array([1.0, 2.0, np.nan, 1e6])
    kept, scale = compact_floats(counts) or (counts, -1.0)
    assert kept.dtype == np.float32 and scale == 0.0
    assert compact_floats(np.array([0.1 + 0.2])) is None  # 17 significant digits


def test_cached_columns_are_compact_and_read_back_exactly(tmp_path: Path) -> None:
    """A whole-history working set is what the cache holds: one byte per page code and four
    per timing instead of four and eight, with every read equal to the decoded column."""
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=1000))
    events = [{"type": "view", "userId": f"u{i % 7}", "timestamp": 1_700_000_000_000 + i,
               "properties": {"page": f"/p{i % 5}", "ms": round(i * 1.37, 2), "n": i % 300,
                              "big": 2**40 + i}} for i in range(1000)]
    batch, rejected = EventValidator().validate_batch(events, now=1_700_000_600_000)
    assert not rejected
    store.append(batch)
    block = store.segments[0].block
    cache = store.column_cache
    reads = {name: block.props[name] for name in ("s:page", "f:ms", "i:n", "i:big")}
    again = {name: block.props[name] for name in reads}  # (from the cache this time)
    kept = {k[1]: v for k, v in cache._items.items()}
    assert kept["p:s:page"].itemsize == 1 and kept["p:f:ms"].itemsize == 4
    assert kept["p:i:n"].itemsize == 2 and kept["p:i:big"].itemsize == 2  # (offset from 2**40)
    assert block.scan("p:f:ms").tolist() == [e["properties"]["ms"] for e in events]
    for name, value in reads.items():
        assert again[name].dtype == value.dtype
        assert np.array_equal(again[name], value, equal_nan=value.dtype.kind == "f")
    assert again["i:big"].tolist() == [2**40 + i for i in range(1000)]
    store.close()


def test_cache_evicts_least_recently_used_within_budget() -> None:
    cache = ColumnCache(250)
    a, b, c = (np.zeros(10, np.int64) for _ in range(3))  # 80 bytes each
    loads: list[str] = []

    def loader(name: str, value: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda: loads.append(name) or value

    assert cache.get(("s", "a"), loader("a", a)) is a
    cache.get(("s", "b"), loader("b", b))
    cache.get(("s", "a"), loader("a", a))  # a is now the most recent
    cache.get(("s", "c"), loader("c", c))
    cache.get(("t", "c"), loader("c2", c))  # over budget: b goes first
    assert loads == ["a", "b", "c", "c2"] and cache.bytes <= 250
    assert cache.peek(("s", "b")) is None and cache.peek(("s", "a")) is a
    cache.drop("s")
    assert cache.stats()["columns"] == 1 and cache.bytes == 80
    cache.put(("big", "x"), np.zeros(100, np.int64))  # larger than the budget: not kept
    assert cache.peek(("big", "x")) is None


def test_damage_inside_a_column_is_a_clear_error(tmp_path: Path) -> None:
    """A footer intact but a column's bytes rotten: opening works (it reads only metadata),
    reading that column raises DamagedSegmentError naming the segment."""
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=500))
    batch, rejected = EventValidator().validate_batch(
        [{"type": "t", "userId": f"u{i}", "timestamp": 1_700_000_000_000 + i * 997,
          "properties": {"n": i * 7919 % 1000}} for i in range(500)],
        now=1_700_000_600_000)
    assert not rejected
    store.append(batch)
    path = Path(store.segments[0].path)
    store.close()
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 64] = bytes(64)  # zero a run inside the column data
    path.write_bytes(bytes(data))
    reopened = ColumnStore(str(tmp_path), StoreConfig(max_head_events=500))
    block = reopened.segments[0].block
    with pytest.raises(DamagedSegmentError) as err:
        for name in ("ts", "recv", "type", "user", "session", "id_hi", "id_lo"):
            getattr(block, name)
        dict(block.props)
    assert block.label in str(err.value)
    # The store stops serving it, as it skips a segment found damaged at startup.
    assert reopened.segments == [] and [d["segment"] for d in reopened.damaged] == [path.name]
    assert reopened.column_cache.stats()["columns"] == 0
    reopened.close()


def test_format_1_segments_still_read_beside_new_ones(tmp_path: Path) -> None:
    """A data directory from before compression: its uncompressed segment is served as is
    (memory-mapped) and new segments are written compressed next to it."""
    import json

    import pyarrow as pa
    import pyarrow.ipc as ipc

    from rta.core.embedded.eventlist import list_events
    from rta.core.embedded.store.block import BASE_COLUMNS
    from rta.core.embedded.store.segment import segment_name
    from rta.core.queries.filters import EventFilter

    def events(start: int) -> list[dict[str, object]]:
        return [{"id": f"e{start + i}", "type": "t", "userId": f"u{i % 3}",
                 "timestamp": 1_700_000_000_000 + start + i, "properties": {"n": start + i}}
                for i in range(5)]

    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=5))
    batch, _ = EventValidator().validate_batch(events(0), now=1_700_000_600_000)
    store.append(batch)
    block = store.segments[0].block
    columns = {c: getattr(block, c) for c in BASE_COLUMNS}
    columns.update({"p:" + k: v for k, v in block.props.items()})
    text_ids = block.id_text
    path = store.segments[0].path
    store.close()
    meta = {"version": 1, "wal_seq": 1, "rows": 5, "min_ts": int(block.ts[0]),
            "max_ts": int(block.ts[-1]), "min_recv": int(block.recv.min()),
            "max_recv": int(block.recv.max())}
    names = [*columns, "id_text"]
    table = pa.Table.from_arrays([*(pa.array(v) for v in columns.values()), text_ids],
                                 names=names).replace_schema_metadata({"rta": json.dumps(meta)})
    with open(path, "wb") as f, ipc.new_file(f, table.schema) as writer:  # (the old writer)
        writer.write_table(table)
    assert path.endswith(segment_name(1))

    reopened = ColumnStore(str(tmp_path), StoreConfig(max_head_events=5))
    assert not reopened.damaged
    batch, _ = EventValidator().validate_batch(events(5), now=1_700_000_600_000)
    reopened.append(batch)
    assert len(reopened.segments) == 2
    first, second = (s.block for s in reopened.segments)
    assert type(first).__name__ == "Block" and type(second).__name__ == "LazyBlock"
    listed = list_events(reopened.snapshot(), EventFilter(), limit=100).events
    assert sorted(e["id"] for e in listed) == sorted(f"e{i}" for i in range(10))
    assert sorted(e["properties"]["n"] for e in listed) == list(range(10))
    reopened.close()


def test_sealing_keeps_decoded_only_the_columns_queries_read(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=10))
    validator = EventValidator()

    def seal(start: int) -> None:
        batch, rejected = validator.validate_batch(
            [{"type": "t", "userId": f"u{i}", "timestamp": 1_700_000_000_000 + start + i,
              "properties": {"n": i, "page": "/"}} for i in range(10)], now=1_700_000_600_000)
        assert not rejected
        store.append(batch)

    seal(0)
    cache = store.column_cache
    first = store.segments[0]
    assert {k[1] for k in cache._items} == {"ts"}  # nothing read yet: the time column only
    assert first.block.user.tolist() == list(range(10))  # a query reads users...
    seal(100)
    second = store.segments[1]
    assert {k[1] for k in cache._items if k[0] == second.path} == {"ts", "user"}  # ...kept
    assert cache.in_use("user") and not cache.in_use("p:i:n")
    store.close()
