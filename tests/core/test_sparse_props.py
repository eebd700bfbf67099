"""Sparse property columns (#24 finding 1): storage grows with the values present.

One batch of 100 events with 1,000 unique keys each (100k keys) next to ordinary traffic used
to become 100k dense columns x every row of the head (GBs) at the first query, on sealing
and again at every restart. These tests pin the cost to the values, and check that a block
holding rare keys sparse answers exactly as the same block held dense, through every path
that reads all columns (reorder, merge, seal and reopen, rendering, exports).
"""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.ipc as ipc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.config import EngineConfig
from rta.core.embedded.render import render_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.embedded.store.block import Block, block_from_batch, concat_blocks, sort_block
from rta.core.embedded.store.column_cache import ColumnCache
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.embedded.store.segment import read_segment, write_segment
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.engine import Engine
from rta.core.events import INT64_MIN, EventBatch, EventValidator, Limits
from rta.core.export import export_events
from rta.core.queries import analytics

NOW = 1_800_000_000_000
MB = 1 << 20
BOUND = 50 * MB  # the old code needed ~8 GB here (100k columns x 10,100 rows x 8 bytes)
# Replaying the attack batch from the WAL: EventBatch.from_json alone peaks at ~60 MB for its
# 2.5 MB of JSON (Python lists per key); the store's own share stays well inside BOUND.
REPLAY_BOUND = 2 * BOUND
WIDE = Limits(max_event_properties=1000, max_batch_property_keys=200_000)


def attack_events() -> list[dict[str, Any]]:
    return [{"type": "x", "userId": "mallory", "timestamp": NOW - 50_000 + i,
             "properties": {f"k{i}_{j}": j for j in range(1000)}} for i in range(100)]


def ordinary_events(r: int) -> list[dict[str, Any]]:
    return [{"type": ["pageview", "click"][i % 2], "userId": f"u{i % 50}",
             "timestamp": NOW - 40_000 + r * 1000 + i,
             "properties": {"page": f"/p{i % 7}", "n": i, "ok": i % 3 == 0}}
            for i in range(1000)]


def batches(validator: EventValidator) -> list[EventBatch]:
    out = []
    for events in [attack_events()] + [ordinary_events(r) for r in range(10)]:
        batch, rejected = validator.validate_batch(events, now=NOW)
        assert not rejected
        out.append(batch)
    return out


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of Python-allocated memory (numpy included) inside the block, in a list."""
    gc.collect()
    tracemalloc.start()
    out: list[int] = []
    try:
        yield out
    finally:
        out.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def footer(path: str) -> tuple[int, int]:
    """(schema fields, bytes of rta metadata) of a segment file."""
    schema = ipc.open_file(path).schema
    return len(schema.names), len(schema.metadata[b"rta"])


def test_many_rare_keys_cost_their_values_not_keys_times_rows(tmp_path: Path) -> None:
    cfg = StoreConfig(max_head_events=100_000)
    todo = batches(EventValidator(WIDE))
    with peak_memory() as peak:
        store = ColumnStore(str(tmp_path), cfg)
        for batch in todo:
            store.append(batch)
        head = store.snapshot().blocks[-1]
        assert head.n == 10_100
        assert head.nbytes() < 10 * MB
        assert int(np.count_nonzero(head.props["i:k7_7"] != INT64_MIN)) == 1
        assert int(np.count_nonzero(head.present("page"))) == 10_000
        assert head.numeric("k99_999")[head.ts == NOW - 50_000 + 99].tolist() == [999.0]
    assert peak[0] < BOUND

    # A crash now (no seal): the restart replays the WAL into the head and merges it.
    os.close(store._lock_fd)  # type: ignore[arg-type]
    store._lock_fd = None
    del store, head
    with peak_memory() as peak:
        store = ColumnStore(str(tmp_path), cfg)
        snap = store.snapshot()
        assert snap.total_events == 10_100
        store.close()  # seals the head
    assert peak[0] < REPLAY_BOUND
    (path,) = (tmp_path / "segments").glob("seg-*.arrow")
    assert os.path.getsize(path) < 4 * MB  # ~100k values, a few bytes each
    fields, meta_bytes = footer(str(path))
    assert fields < 20  # base columns, page/n/ok dense, one sparse field for the ints
    assert meta_bytes < 2 * MB  # ~10 bytes per key name; no per-key has_values/encodings

    with peak_memory() as peak:
        store = ColumnStore(str(tmp_path), cfg)
        block = store.snapshot().blocks[0]
        assert block.nbytes() < 10 * MB
        assert block.has_values("i:k3_3") and not block.has_values("i:nope")
        assert int(np.count_nonzero(block.props["i:k3_3"] != INT64_MIN)) == 1
        assert int(np.count_nonzero(block.present("k3_3"))) == 1
        store.close()
    assert peak[0] < BOUND


def test_attack_through_the_engine_then_queries_and_restart(tmp_path: Path) -> None:
    config = EngineConfig(data_dir=str(tmp_path), max_events=100_000, limits=WIDE,
                          max_property_keys=200_000)
    eng = Engine(config)
    todo = batches(eng.validator)
    with peak_memory() as peak:
        for batch in todo:
            eng.store.append(batch)
        assert analytics.run_count(eng, {})["count"] == 10_100
        assert analytics.run_count(eng, {"properties.k42_42": "42"})["count"] in (0, 1)
        assert analytics.run_count(eng, {"where": "k42_42>=0"})["count"] == 1
        assert analytics.run_count(eng, {"properties.page": "/p3"})["count"] == 10 * 143
    assert peak[0] < BOUND
    eng.close()
    with peak_memory() as peak:
        eng = Engine(config)
        assert analytics.run_count(eng, {"where": "k42_42>=0"})["count"] == 1
        assert analytics.run_count(eng, {})["count"] == 10_100
        eng.close()
    assert peak[0] < BOUND


# -- a sparse block answers as the same block held dense --------------------------------

KEYS = ["a", "b", "c", "d", "e", "f"]
VALUES = st.one_of(st.integers(-2**62, 2**62), st.floats(-1e9, 1e9, allow_nan=False),
                   st.sampled_from(["x", "y", "", "a,b", 'q"t', "ü"]), st.booleans())


@st.composite
def event_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 60))
    # Each key is set on a few rows (sparse) or on most rows (dense).
    shares = {k: draw(st.sampled_from([0.01, 0.05, 0.5, 1.0])) for k in KEYS}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    events = []
    for i in range(n):
        props = {k: draw(VALUES) for k in KEYS if rng.random() < shares[k]}
        if i == 0:
            props["only_first"] = draw(VALUES)
        events.append({"id": f"e{i}", "type": ["t1", "t2"][i % 2], "userId": f"u{i % 3}",
                       "timestamp": NOW - int(rng.integers(0, 5000)), "properties": props})
    return events


def built(events: list[dict[str, Any]], dicts: Dictionaries) -> Block:
    batch, rejected = EventValidator().validate_batch(events, now=NOW)
    assert not rejected
    return block_from_batch(batch, dicts)


def dense(block: Block) -> Block:
    return Block(**{c: getattr(block, c) for c in
                    ("ts", "recv", "type", "user", "session", "id_hi", "id_lo")},
                 id_text=block.id_text, props=block.prop_columns.densified(),
                 label=block.label)


def same_props(a: Block, b: Block) -> None:
    assert sorted(a.props) == sorted(b.props)
    for name in a.props:
        assert a.props[name].dtype == b.props[name].dtype
        assert np.array_equal(a.props[name], b.props[name], equal_nan=name[0] == "f"), name
        assert a.has_values(name) == b.has_values(name)
    for key in {name[2:] for name in a.props} | {"missing"}:
        assert np.array_equal(a.numeric(key), b.numeric(key), equal_nan=True)
        assert np.array_equal(a.present(key), b.present(key))
        assert set(a.property_keys.get(key, ())) == set(b.property_keys.get(key, ()))


def export_bytes(blocks: list[Block], dicts: Dictionaries, fmt: str) -> bytes:
    snap = Snapshot(blocks=blocks, dicts=dicts, version=1)
    out = bytearray()
    for part in export_events(snap, {"format": fmt}, now=NOW, chunk_rows=16).chunks():
        out += part
    return bytes(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=event_lists(), second=event_lists())
def test_sparse_and_dense_blocks_answer_alike(tmp_path_factory: Any,
                                             first: list[dict[str, Any]],
                                             second: list[dict[str, Any]]) -> None:
    dicts = Dictionaries(None)
    for e in second:
        e["id"] = "s" + e["id"]
    a, b = built(first, dicts), built(second, dicts)
    assert any(a.prop_columns.is_sparse(n) for n in a.props) or len(first) <= 16
    same_props(a, dense(a))

    perm = np.random.default_rng(len(first)).permutation(a.n)
    same_props(a.take(perm), dense(a).take(perm))
    sub = np.sort(perm[: a.n // 2])  # (bulk loads take subsets)
    same_props(a.take(sub), dense(a).take(sub))

    merged = sort_block(concat_blocks([a, b]))
    merged_dense = sort_block(concat_blocks([dense(a), dense(b)]))
    same_props(merged, merged_dense)
    same_props(sort_block(concat_blocks([dense(a), b])), merged_dense)  # mixed forms
    assert merged.nbytes() <= merged_dense.nbytes()

    directory = tmp_path_factory.mktemp("seg")
    segs = [write_segment(str(directory), i + 1, blk, 0, ColumnCache(1 << 20))
            for i, blk in enumerate((merged, merged_dense))]
    for seg in segs:
        same_props(seg.block, merged_dense)
        again = read_segment(seg.seq, seg.path, ColumnCache(1 << 20))  # (cold cache)
        same_props(again.block, merged_dense)
        assert again.block.scan_many(["p:" + n for n in merged.props]).keys() == {
            "p:" + n for n in merged.props}

    rows = np.arange(merged.n)[::-1]
    assert render_events(merged, rows, dicts) == render_events(merged_dense, rows, dicts)
    assert render_events(segs[0].block, rows[:7], dicts) == \
        render_events(merged_dense, rows[:7], dicts)
    for fmt in ("ndjson", "csv", "json", "parquet"):
        want = export_bytes([merged_dense], dicts, fmt)
        assert export_bytes([merged], dicts, fmt) == want
        assert export_bytes([segs[0].block], dicts, fmt) == want
        assert export_bytes([segs[1].block], dicts, fmt) == want


def test_rare_keys_are_stored_sparse_and_common_ones_dense() -> None:
    dicts = Dictionaries(None)
    events = [{"type": "t", "timestamp": NOW - i,
               "properties": {"page": "/x", **({"rare": i} if i % 50 == 0 else {})}}
              for i in range(1000)]
    block = built(events, dicts)
    columns = block.prop_columns
    assert not columns.is_sparse("s:page") and columns.is_sparse("i:rare")
    assert block.props["i:rare"][::50].tolist() == list(range(0, 1000, 50))
    # A key common in a small batch turns sparse once merged into a larger head.
    small = built([{"type": "t", "timestamp": NOW, "properties": {"once": 1}}], dicts)
    assert not small.prop_columns.is_sparse("i:once")
    merged = concat_blocks([block, small])
    assert merged.prop_columns.is_sparse("i:once")
    assert merged.props["i:once"][-1] == 1
    # ... next to the rare keys already sparse in the head (the merge's fast path).
    other = built([{"type": "t", "timestamp": NOW, "properties": {"twice": 2}}], dicts)
    again = concat_blocks([merged, other])
    assert again.props["i:twice"][-1] == 2 and again.props["i:once"][-2] == 1
    assert again.props["i:rare"][:1000:50].tolist() == list(range(0, 1000, 50))
    same_props(again, dense(concat_blocks([dense(merged), dense(other)])))


def test_export_of_many_rare_keys_stays_small() -> None:
    # (small segments: most chunks come from blocks without the rare keys, which the
    # export's layout still lists)
    store = ColumnStore(None, StoreConfig(max_head_events=1000, fsync=False))
    for batch in batches(EventValidator(WIDE)):
        store.append(batch)
    snap = store.snapshot()
    with peak_memory() as peak:
        size = 0
        lines = 0
        for part in export_events(snap, {"format": "ndjson"}, now=NOW,
                                  chunk_rows=1000).chunks():
            size += len(part)
            lines += part.count(b"\n")
    assert lines == 10_100
    assert peak[0] < 100 * MB  # (the text itself is ~2 MB; dense chunks were GBs)
    first = json.loads(next(export_events(
        snap, {"format": "ndjson", "limit": 1}, now=NOW).chunks()).splitlines()[0])
    assert len(first["properties"]) == 1000 and first["properties"]["k0_5"] == 5
