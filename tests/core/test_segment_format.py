"""Segment format 2: exact column encodings, the decoded-column cache, damage found late."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rta.core.errors import DamagedSegmentError
from rta.core.events import INT64_MIN, EventValidator
from rta.core.store import ColumnStore, StoreConfig
from rta.core.store.column_cache import ColumnCache
from rta.core.store.encoding import decode_column, encode_column

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

    from rta.core.eventlist import list_events
    from rta.core.filters import EventFilter
    from rta.core.store.block import BASE_COLUMNS
    from rta.core.store.segment import segment_name

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
    listed = list_events(reopened.snapshot(), EventFilter(), limit=100)["events"]
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
