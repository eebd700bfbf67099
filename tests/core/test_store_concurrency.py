"""Retention, sealing and long queries at once: a snapshot reads every segment it holds,
even one retention dropped meanwhile, and a dropped segment never comes back after a crash.

The column cache has no budget here, so every column read goes to the segment file: the
case where a query's lazy blocks re-open a file retention has dropped.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rta.core.embedded.eventlist import list_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.embedded.store.segment import DROPPED
from rta.core.embedded.store.store import SealJob
from rta.core.events import EventBatch, EventValidator
from rta.core.queries.filters import EventFilter

NOW = 1_800_000_000_000
ROWS = 200  # per segment
STEP = 1_000  # ms of event time per segment


def batch(seg: int) -> EventBatch:
    """ROWS events whose times all fall in [seg * STEP, (seg + 1) * STEP) and whose `n`
    property is the segment number, so a reader can check what it got."""
    events: list[dict[str, Any]] = [
        {"id": f"s{seg}-{i}", "type": ["view", "click"][i % 2], "userId": f"u{i % 13}",
         "timestamp": NOW + seg * STEP + i, "properties": {"n": seg, "page": f"/p{i % 5}"}}
        for i in range(ROWS)]
    out, rejected = EventValidator().validate_batch(events, now=NOW + 10**9)
    assert not rejected
    return out


def open_store(path: Path) -> ColumnStore:
    return ColumnStore(str(path), StoreConfig(max_head_events=ROWS, retention_ms=3 * STEP,
                                              column_cache_bytes=0, fsync=False))


def files(path: Path) -> list[str]:
    return sorted(os.listdir(path / "segments"))


def read_all(snap: Any) -> int:
    """Read every column a query would, from every block; check each row's segment."""
    rows = 0
    for block in snap.blocks:
        n = block.props["i:n"]
        seg = (block.ts - NOW) // STEP
        assert np.array_equal(n, seg), block.label
        assert (block.user >= 0).all() and len(block.type) == block.n
        rows += block.n
    return rows


def test_a_snapshot_reads_segments_dropped_after_it_was_taken(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for seg in range(4):
        store.append(batch(seg))
    snap = store.snapshot()
    assert store.apply_retention(now=NOW + 100 * STEP) == 4 * ROWS
    assert store.segments == [] and store.snapshot().blocks == []
    assert read_all(snap) == 4 * ROWS  # (today's files were gone: a 503 here)
    assert len(list_events(snap, EventFilter(), limit=10_000).events) == 4 * ROWS
    assert len(files(tmp_path)) == 8  # four segments and their drop markers
    del snap
    gc.collect()
    assert files(tmp_path) == []
    store.close()


def test_a_dropped_segment_stays_dropped_after_a_crash(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for seg in range(3):
        store.append(batch(seg))
    snap = store.snapshot()
    store.apply_retention(now=NOW + 4 * STEP)  # drops segment 0, still read by `snap`
    assert len(store.segments) == 2
    # Crash: the process dies with the snapshot alive, before the deferred deletion.
    store._closed = True
    assert store.wal is not None
    store.wal.close()
    store.dicts.close()
    store._release_lock()
    reopened = open_store(tmp_path)
    assert sum(s.block.n for s in reopened.segments) == 2 * ROWS
    assert not any(name.endswith(DROPPED) for name in files(tmp_path))
    assert len(files(tmp_path)) == 2
    del snap
    gc.collect()
    reopened.close()


def test_retention_sealing_and_long_queries_run_together(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    stop = threading.Event()
    errors: list[BaseException] = []
    read_dropped = [0]

    def query() -> None:
        while not stop.is_set():
            try:
                snap = store.snapshot()
                total = 0
                for block in snap.blocks:
                    time.sleep(0.002)  # a long query: retention runs between blocks
                    label = getattr(block, "path", "")
                    if label and os.path.exists(label + DROPPED):
                        read_dropped[0] += 1
                    total += read_all(type(snap)(blocks=[block], dicts=snap.dicts,
                                                 version=snap.version))
                assert total == snap.total_events
                events = list_events(snap, EventFilter(), limit=50).events
                assert len(events) == min(50, snap.total_events)
                del snap
            except BaseException as exc:  # (reported by the test thread)
                errors.append(exc)
                stop.set()

    readers = [threading.Thread(target=query) for _ in range(4)]
    for reader in readers:
        reader.start()
    seal: Future[None] | None = None
    job: SealJob | None = None
    try:
        with ThreadPoolExecutor(1) as sealer:
            for seg in range(60):
                if errors:
                    break
                kept, _ = store.reserve(batch(seg))
                store.apply(kept)
                if seal is not None and job is not None:
                    seal.result()
                    store.finish_seal(job)
                    seal = job = None
                if store.needs_seal():  # sealed in a worker, as the engine does
                    job = store.begin_seal()
                    seal = sealer.submit(store.run_seal, job)
                store.apply_retention(now=NOW + seg * STEP)
                time.sleep(0.005)
            if seal is not None and job is not None:
                seal.result()
                store.finish_seal(job)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    if errors:
        raise errors[0]
    assert read_dropped[0] > 0  # queries did read segments after their drop
    gc.collect()
    live = {os.path.basename(s.path) for s in store.segments}
    assert files(tmp_path) == sorted(live)  # every dropped file deleted, no marker left
    assert not store._doomed and not store._live
    store.close()
