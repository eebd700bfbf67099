"""The columnar store: durability, recovery, dedup, sealing, retention, damage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.embedded.eventlist import list_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.embedded.store.block import arrow_uuid_words, dedup_keys, id_parts, parse_ids
from rta.core.errors import StoreLockedError
from rta.core.events import EventBatch, EventValidator
from rta.core.queries.filters import EventFilter

NOW = 1_800_000_000_000


def batch_of(events: list[dict[str, Any]]) -> EventBatch:
    batch, rejected = EventValidator().validate_batch(events, now=NOW)
    assert not rejected
    return batch


def make_events(n: int, start: int = 0, prefix: str = "e") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{start + i}", "type": ["pageview", "click", "signup"][i % 3],
             "userId": f"u{(start + i) % 7}", "sessionId": f"s{(start + i) % 3}",
             "timestamp": NOW - 10_000 + start + i,
             "properties": {"n": start + i, "page": f"/p{i % 4}", "even": i % 2 == 0,
                            "ratio": (start + i) / 3}}
            for i in range(n)]


def all_events(store: ColumnStore) -> list[dict[str, Any]]:
    out = list_events(store.snapshot(), EventFilter(), limit=10_000).events
    for e in out:
        e.pop("receivedAt")
    return sorted(out, key=lambda e: e["id"])


def expected(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({**e, "personId": e.get("userId"), "properties": e["properties"]}
                   for e in events),
                  key=lambda e: e["id"])


def test_round_trip_across_restart_with_segments_and_wal(tmp_path: Path) -> None:
    cfg = StoreConfig(max_head_events=40)
    events = make_events(100)
    store = ColumnStore(str(tmp_path), cfg)
    for i in range(0, 100, 10):
        store.append(batch_of(events[i:i + 10]))
    assert len(store.segments) == 2  # 40 + 40 sealed, 20 in the head (only in the WAL)
    before = all_events(store)
    assert before == expected(events)
    # simulate a crash: drop the object without close(); the lock dies with the fd
    os.close(store._lock_fd)  # type: ignore[arg-type]
    store._lock_fd = None
    reopened = ColumnStore(str(tmp_path), cfg)
    assert all_events(reopened) == before
    reopened.close()
    again = ColumnStore(str(tmp_path), cfg)  # after a clean close, no WAL replay needed
    assert all_events(again) == before
    assert again.stats()["walBytes"] == 0
    again.close()


def arrow_batch_of(events: list[dict[str, Any]]) -> EventBatch:
    """The events as an Arrow body cleared column-wise: a columnar batch."""
    from rta.core.arrow_ingest import read_stream, validate_arrow

    table = pa.table({
        "id": [e["id"] for e in events], "type": [e["type"] for e in events],
        "userId": [e["userId"] for e in events], "sessionId": [e["sessionId"] for e in events],
        "timestamp": pa.array([e["timestamp"] for e in events], pa.int64()),
        **{f"properties.{k}": [e["properties"][k] for e in events]
           for k in events[0]["properties"]}})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    batch, rejected = validate_arrow(EventValidator(), read_stream(
        sink.getvalue().to_pybytes(), 10_000), NOW)
    assert not rejected and batch.columns is not None
    return batch


def test_columnar_batches_survive_a_crash_through_their_wal_records(tmp_path: Path) -> None:
    """Arrow-cleared batches are logged as Arrow records; replay after a crash rebuilds the
    same events (sealed and head), and their ids stay known to dedup."""
    cfg = StoreConfig(max_head_events=40)
    events = make_events(100)
    store = ColumnStore(str(tmp_path), cfg)
    for i in range(0, 100, 10):
        store.append(arrow_batch_of(events[i:i + 10]))
    before = all_events(store)
    assert before == expected(events)
    os.close(store._lock_fd)  # type: ignore[arg-type]
    store._lock_fd = None
    reopened = ColumnStore(str(tmp_path), cfg)
    assert all_events(reopened) == before
    again = reopened.append(arrow_batch_of(events[85:95] + make_events(3, start=200)))
    assert (again.accepted, again.duplicates) == (3, 10)
    assert sorted(again.ids) == ["e-200", "e-201", "e-202"]
    reopened.close()


def test_torn_wal_tail_is_truncated_not_fatal(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path))
    events = make_events(6)
    store.append(batch_of(events[:3]))
    store.append(batch_of(events[3:]))
    wal_path = store.wal.path(store.wal.seq)  # type: ignore[union-attr]
    os.close(store._lock_fd)  # type: ignore[arg-type]
    store._lock_fd = None
    size = os.path.getsize(wal_path)
    with open(wal_path, "r+b") as f:
        f.truncate(size - 5)  # tear the second record
    reopened = ColumnStore(str(tmp_path))
    assert [e["id"] for e in all_events(reopened)] == sorted(e["id"] for e in events[:3])
    reopened.close()


def test_corrupted_wal_record_stops_replay_at_the_damage(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path))
    events = make_events(4)
    store.append(batch_of(events[:2]))
    store.append(batch_of(events[2:]))
    wal_path = store.wal.path(store.wal.seq)  # type: ignore[union-attr]
    os.close(store._lock_fd)  # type: ignore[arg-type]
    store._lock_fd = None
    data = bytearray(Path(wal_path).read_bytes())
    data[-3] ^= 0xFF  # flip a byte inside the last record: its checksum fails
    Path(wal_path).write_bytes(bytes(data))
    reopened = ColumnStore(str(tmp_path))
    assert len(all_events(reopened)) == 2
    reopened.close()


def test_duplicates_dropped_within_batch_across_batches_and_segments(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=5))
    events = make_events(5)
    r1 = store.append(batch_of(events + events[:2]))
    assert (r1.accepted, r1.duplicates) == (5, 2)
    assert len(store.segments) == 1
    r2 = store.append(batch_of(events[3:] + make_events(1, start=50)))
    assert (r2.accepted, r2.duplicates) == (1, 2)
    store.close()
    reopened = ColumnStore(str(tmp_path), StoreConfig(max_head_events=5))
    r3 = reopened.append(batch_of(events[:1]))
    assert (r3.accepted, r3.duplicates) == (0, 1)
    assert len(all_events(reopened)) == 6
    reopened.close()


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=30), min_size=1,
                max_size=6))
def test_dedup_across_many_segments_keeps_first_sightings(
        tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]]) -> None:
    """Whatever the order of ids within and across batches, sealed into several segments
    (each searched with the batch's keys in sorted order), exactly the first sighting of
    each id is kept, in the order sent."""
    store = ColumnStore(str(tmp_path_factory.mktemp("dedup")),
                        StoreConfig(max_head_events=7, fsync=False))
    seen: set[str] = set()
    for numbers in batches:
        ids = [f"id-{k}" for k in numbers]
        want = []
        for i in ids:
            if i not in seen:
                seen.add(i)
                want.append(i)
        result = store.append(batch_of([{"id": i, "type": "t", "timestamp": NOW}
                                        for i in ids]))
        assert result.ids == want
        assert (result.accepted, result.duplicates) == (len(want), len(ids) - len(want))
    store.close()


def test_sealing_forgets_only_the_sealed_ids(tmp_path: Path) -> None:
    """Ids reserved by a batch still in flight when the head is sealed stay reserved (a
    second copy is a duplicate); the sealed ones are found in the segment instead."""
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=1000, fsync=False))
    sealed_events, flying = make_events(6), make_events(30, start=100)
    store.append(batch_of(sealed_events))
    kept, _ = store.reserve(batch_of(flying))  # (not yet durable when the seal runs)
    job = store.begin_seal()
    store.run_seal(job)
    store.finish_seal(job)
    assert len(store._recent_ids) == len(flying)
    assert store.reserve(batch_of(flying[:3] + sealed_events[:2]))[1] == 5
    store.release(kept)
    store.close()


def test_dedup_window_counts_segments_by_their_latest_arrival(tmp_path: Path) -> None:
    """A segment whose events all arrived before the dedup window is not searched (its ids
    may come again); one that received an event within it is, through the merged index,
    as segments come and go."""
    from rta.core.queries.timeparse import now_ms

    hour = 3_600_000
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=4, fsync=False,
                                                   dedup_window_ms=hour))
    now = now_ms()

    def batch(ids: list[str], received: int) -> EventBatch:
        got, rejected = EventValidator().validate_batch(
            [{"id": i, "type": "t", "timestamp": received - 1000} for i in ids], now=received)
        assert not rejected
        return got

    assert store.append(batch([f"old-{i}" for i in range(8)], now - 2 * hour)).accepted == 8
    assert store.append(batch([f"new-{i}" for i in range(8)], now)).accepted == 8
    assert len(store.segments) >= 2 and len(store._recent_ids) == 0
    again = store.append(batch([f"old-{i}" for i in range(3)] + [f"new-{i}" for i in range(5)]
                               + ["fresh"], now))
    assert (again.ids, again.duplicates) == (["old-0", "old-1", "old-2", "fresh"], 5)
    store.segments = store.segments[-1:]  # (as retention or quarantine would drop them)
    probe = ["new-0", "new-7", "fresh", "old-1", "old-5"]
    expected = [i for i in probe if not _in_window(store, i, now - hour)]
    late = store.append(batch(probe, now))
    assert late.ids == expected and late.duplicates == len(probe) - len(expected)
    assert 0 < late.duplicates < len(probe)
    store.close()


def _in_window(store: ColumnStore, event_id: str, horizon: int) -> bool:
    """The naive rule: the id is in a segment that received an event since `horizon`."""
    hi, lo, _ = parse_ids([event_id])
    key = int(dedup_keys(hi, lo)[0])
    return any(key in dedup_keys(s.block.id_hi, s.block.id_lo).tolist()
               for s in store.segments if s.max_recv >= horizon)


def test_property_types_survive_sealing_and_restart(tmp_path: Path) -> None:
    events = [
        {"id": "a", "type": "t", "timestamp": NOW, "properties": {"v": 1}},
        {"id": "b", "type": "t", "timestamp": NOW + 1, "properties": {"v": "one"}},
        {"id": "c", "type": "t", "timestamp": NOW + 2, "properties": {"v": 1.5}},
        {"id": "d", "type": "t", "timestamp": NOW + 3, "properties": {"v": False}},
        {"id": "e", "type": "t", "timestamp": NOW + 4, "properties": {"v": 2**62, "ü": "ü€😀"}},
    ]
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=2))
    store.append(batch_of(events))
    store.close()
    reopened = ColumnStore(str(tmp_path))
    got = {e["id"]: e["properties"] for e in all_events(reopened)}
    assert got == {"a": {"v": 1}, "b": {"v": "one"}, "c": {"v": 1.5}, "d": {"v": False},
                   "e": {"v": 2**62, "ü": "ü€😀"}}
    assert type(got["a"]["v"]) is int and type(got["c"]["v"]) is float
    reopened.close()


def test_segments_are_sorted_compressed_and_decoded_lazily(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=2000))
    events = make_events(2000)
    events.reverse()
    for event in events:
        del event["id"]  # (ids the server generates compress; random custom ones do not)
    store.append(batch_of(events))
    expected = all_events(store)
    seg = store.segments[0]
    assert np.all(np.diff(seg.block.ts) >= 0)
    assert seg.size_bytes < seg.block.nbytes() / 4  # encoded + zstd, not dense columns
    store.close()

    reopened = ColumnStore(str(tmp_path), StoreConfig(max_head_events=2000))
    cache = reopened.column_cache
    block = reopened.segments[0].block
    assert (block.n, block.min_ts, block.max_ts) == (2000, NOW - 10_000, NOW - 10_000 + 1999)
    assert block.type_counts.sum() == 2000
    assert cache.misses == 0  # opening decoded nothing: the zone map is in the metadata
    assert list(block.ts[:3]) == [NOW - 10_000, NOW - 10_000 + 1, NOW - 10_000 + 2]
    assert cache.misses == 1 and cache.bytes == block.ts.nbytes
    assert all_events(reopened) == expected
    reopened.close()


def test_column_cache_stays_within_its_budget(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=500,
                                                   column_cache_bytes=6000))
    for start in range(0, 2000, 500):
        store.append(batch_of(make_events(500, start=start)))
    expected = all_events(store)
    assert len(store.segments) == 4 and len(expected) == 2000
    assert store.column_cache.bytes <= 6000 and store.column_cache.evictions
    assert all_events(store) == expected  # evicted columns decode again, identically
    store.close()


def test_second_store_on_same_dir_is_refused(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path))
    with pytest.raises(StoreLockedError):
        ColumnStore(str(tmp_path))
    store.close()
    ColumnStore(str(tmp_path)).close()


def test_retention_drops_whole_expired_segments(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=3, retention_ms=1000))
    store.append(batch_of(make_events(3)))
    assert len(store.segments) == 1
    dropped = store.apply_retention(now=NOW + 10**6)
    assert dropped == 3 and store.segments == []
    assert os.listdir(tmp_path / "segments") == []
    store.close()


def test_damaged_segment_is_reported_and_the_rest_served(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=3))
    store.append(batch_of(make_events(3)))
    store.append(batch_of(make_events(3, start=10)))
    path = store.segments[0].path
    store.close()
    Path(path).write_bytes(b"garbage" * 10)
    reopened = ColumnStore(str(tmp_path), StoreConfig(max_head_events=3))
    assert [d["segment"] for d in reopened.damaged] == [os.path.basename(path)]
    assert len(all_events(reopened)) == 3
    reopened.close()


def test_changed_since_tracks_ranges() -> None:
    store = ColumnStore(None)
    v = store.version
    store.append(batch_of(make_events(2)))
    assert store.changed_since(v, NOW - 20_000, NOW)
    v2 = store.version
    assert not store.changed_since(v2, None, None)
    store.append(batch_of(make_events(1, start=100)))
    assert not store.changed_since(v2, 0, NOW - 20_000)
    assert store.changed_since(v2, NOW - 10_000, NOW)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.uuids().map(str), min_size=14, max_size=30),
       st.lists(st.tuples(st.integers(0, 29), st.one_of(
           st.uuids().map(lambda u: str(u).upper()), st.text(max_size=40),
           st.text(min_size=36, max_size=36), st.just("é" * 36), st.just("0" * 36))),
           max_size=3))
def test_vectorised_id_parsing_equals_id_parts(ids: list[str],
                                               odd: list[tuple[int, str]]) -> None:
    for i, text in odd:
        ids[i % len(ids)] = text
    hi, lo, custom = parse_ids(ids)
    for i, text in enumerate(ids):
        h, low, is_custom = id_parts(text)
        assert (int(hi[i]), int(lo[i])) == (h, low)
        assert (custom is not None and custom[i] == text) == is_custom
    if all(not id_parts(t)[2] for t in ids):
        assert custom is None
    if all(ids):  # (the Arrow path's words, from an Arrow column's buffers, when it has them)
        column = pa.chunked_array([pa.array(ids[:5]), pa.array(ids[5:])])  # (2 chunks)
        words = arrow_uuid_words(column)
        if words is not None:
            assert words[0].tolist() == hi.tolist() and words[1].tolist() == lo.tolist()
            assert custom is None
        else:
            assert any(len(t) != 36 or id_parts(t)[2] for t in ids)
        if not odd:
            assert words is not None
            large = arrow_uuid_words(pa.array(ids, pa.large_string()).slice(1))
            assert large is not None and large[0].tolist() == hi[1:].tolist()


def test_reserve_fast_and_slow_paths_agree(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=6))
    first = batch_of(make_events(4))
    kept, dups = store.reserve(first)
    assert kept is first and dups == 0  # all new: the whole batch, untouched
    store.release(first)  # a failed WAL write gives the ids back
    assert store.append(batch_of(make_events(4))).accepted == 4
    mixed = batch_of(make_events(3, start=2) + make_events(2, start=10)[:1] * 2)
    result = store.append(mixed)  # 2 and 3 known, 4 new, 10 twice in the batch
    assert (result.accepted, result.duplicates) == (2, 3)
    assert sorted(result.ids) == ["e-10", "e-4"]
    assert len(store.segments) == 1 and not store._recent_ids  # sealed: ids forgotten
    again = store.append(batch_of(make_events(6)))  # the segment knows e-0 .. e-4
    assert (again.accepted, again.duplicates, again.ids) == (1, 5, ["e-5"])
    hi, lo, _ = id_parts("e-5")
    assert store._recent_ids.array().tolist() == dedup_keys(np.array([hi], np.uint64),
                                                 np.array([lo], np.uint64)).tolist()


def test_wal_record_round_trips_every_value_kind(tmp_path: Path) -> None:
    events = [{"id": "x-1", "type": "t", "userId": "ü", "timestamp": NOW - 1,
               "properties": {"i": -2**63, "j": 2**63 - 1, "f": 1e300, "g": -0.0, "s": "é\n",
                              "b": False, "big": 2**64, "arr": [1, "a"]}}]
    store = ColumnStore(str(tmp_path), StoreConfig())
    store.append(batch_of(events))
    before = all_events(store)
    os.close(store._lock_fd)  # type: ignore[arg-type]
    store._lock_fd = None
    reopened = ColumnStore(str(tmp_path), StoreConfig())
    assert all_events(reopened) == before
    assert before[0]["properties"]["big"] == float(2**64)
    reopened.close()


def test_apply_many_builds_the_head_apply_builds() -> None:
    """Small batches (single events) are encoded together: the head is the same, arrival
    times per batch included."""
    events = make_events(12)
    events[3]["properties"] = {"only_here": "x"}
    events[5]["id"] = "78d44105-b207-46ed-b4ef-3676c0c988b6"
    batches = []
    for i, size in enumerate([1, 1, 3, 70, 1, 2]):
        start = sum([1, 1, 3, 70, 1, 2][:i])
        items = (events + make_events(80, start=100, prefix="big"))[start:start + size]
        batch, _ = EventValidator().validate_batch(items, now=NOW + i)
        batches.append(batch)
    one, many = ColumnStore(None), ColumnStore(None)
    for b in batches:
        one.reserve(b)
        one.apply(b)
    for b in batches:
        b.id_words = None  # (also rebuilt from the text when not cached)
    many.apply_many(batches)
    a, b = one.head_block(), many.head_block()
    for col in ("ts", "recv", "type", "user", "session", "id_hi", "id_lo"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    assert list(a.props) == list(b.props)
    for name in a.props:
        assert np.array_equal(a.props[name], b.props[name], equal_nan=True), name
    assert a.ids(np.arange(a.n)) == b.ids(np.arange(b.n))
    assert many.events_ingested == one.events_ingested == 78


def test_generated_ids_sent_back_are_duplicates_after_a_restart(tmp_path: Path) -> None:
    """Ids the store generated (prefix + counter, compressed to almost nothing) still dedup:
    a client retrying with the id it was given gets a duplicate, sealed or not."""
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=2))
    plain = [{"type": "t", "timestamp": NOW - 5}, {"type": "t", "timestamp": NOW - 4}]
    first = store.append(batch_of(plain))
    head = store.append(batch_of([{"type": "t", "timestamp": NOW - 3}]))
    store.close()
    reopened = ColumnStore(str(tmp_path), StoreConfig(max_head_events=2))
    retry = [{"id": i, "type": "t", "timestamp": NOW - 5} for i in first.ids + head.ids]
    again = reopened.append(batch_of(retry))
    assert (again.accepted, again.duplicates) == (0, 3)
    assert len(all_events(reopened)) == 3
    reopened.close()


def test_retention_forgets_the_decoded_columns_of_dropped_segments(tmp_path: Path) -> None:
    store = ColumnStore(str(tmp_path), StoreConfig(max_head_events=3, retention_ms=1000))
    store.append(batch_of(make_events(3)))
    assert len(all_events(store)) == 3 and store.column_cache.bytes
    store.apply_retention(now=NOW + 10**6)
    assert store.column_cache.bytes == 0 and store.column_cache.stats()["columns"] == 0
    store.close()
