"""Shipping acknowledged events from the local write-ahead log into ClickHouse (#17).

The local WAL stays the acknowledgement point: an event is acked once durable here, as with
the embedded store alone. The shipper then reads the WAL from its saved position and inserts
what it finds into ClickHouse, about a second or 100k events at a time. Exactly once:

- Before an insert the shipper writes the range it is about to send (`inflight`) to its
  position file; after the insert succeeds it writes the range's end as the new position.
  After a crash the same range is sent again, with the same deduplication token (daemon id,
  WAL file, start and end offsets), so ClickHouse stores it once whether or not the first
  attempt landed.
- WAL files are kept until the shipper is past them (`StoreConfig.wal_floor`), even after a
  segment covers them; if ClickHouse stays away, they pile up to `max_backlog_bytes`, and
  past that ingest answers 503 instead of acknowledging what could not be kept.

Each row's `seq` (arrival order) is (WAL file << 40) + the record's start offset + the row's
index in it: increasing in the order the store applied the events, unique per daemon.

Thread rule: `run()` is a trio task on the engine's loop; file reads and inserts run in
worker threads it waits on; `stats()` from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from rta.core.change_log import ChangeLog
from rta.core.clickhouse.connection import ClickHouse, ClickHouseError
from rta.core.clickhouse.inserts import insert_batch
from rta.core.embedded.store.records import fsync_dir, read_frames
from rta.core.events import EventBatch

log = logging.getLogger("rta.shipper")
_WAL_NAME = re.compile(r"^wal-(\d{8})\.log$")
MAX_BATCH_EVENTS = 100_000
INTERVAL_S = 1.0
SEQ_SHIFT = 40


@dataclass
class Position:
    """Everything before (file, offset) of the WAL is in ClickHouse; `inflight` is the range
    being sent, if any: (file, start, end)."""

    file: int = 1
    offset: int = 0
    inflight: tuple[int, int, int] | None = None


class ShipLog:
    """The shipper's durable state in `data_dir/ship`: its daemon id and its position."""

    def __init__(self, data_dir: str) -> None:
        self.directory = os.path.join(data_dir, "ship")
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(self.directory, "position.json")
        self.daemon_id, self.position = self._load()

    def _load(self) -> tuple[str, Position]:
        try:
            with open(self.path) as f:
                raw = json.load(f)
        except FileNotFoundError:
            return uuid.uuid4().hex[:16], Position()
        inflight = raw.get("inflight")
        return str(raw["daemon"]), Position(int(raw["file"]), int(raw["offset"]),
                                            tuple(inflight) if inflight else None)  # type: ignore[arg-type]

    def save(self, position: Position) -> None:
        """Atomically replace the position file (write, fsync, rename, fsync the folder)."""
        tmp = self.path + ".tmp"
        body = {"daemon": self.daemon_id, "file": position.file, "offset": position.offset,
                "inflight": list(position.inflight) if position.inflight else None}
        with open(tmp, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.directory)
        self.position = position

    def floor(self) -> int:
        """The highest WAL file every record of which is shipped (StoreConfig.wal_floor)."""
        return self.position.file - 1


@dataclass
class _Range:
    file: int
    start: int
    end: int
    batch: EventBatch
    seqs: np.ndarray  # each row's arrival order
    oldest_received: int


class Shipper:
    """Tails the engine's WAL into ClickHouse; see the module docstring."""

    def __init__(self, ch: ClickHouse, ship_log: ShipLog, wal_dir: str,
                 max_backlog_bytes: int = 10 << 30) -> None:
        self.ch = ch
        self.log = ship_log
        self.wal_dir = wal_dir
        self.max_backlog_bytes = max_backlog_bytes
        self.shipped_events = 0
        self.shipped_batches = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_shipped_at: float | None = None
        self.pending_events = 0  # read from the WAL, not yet in ClickHouse
        self.oldest_pending_ms: int | None = None
        self.backlog_bytes = 0
        self._backlog_at = 0.0
        self.reachable = True
        self.on_advance: list[Any] = []  # callables run on the loop after each advance
        # The data clock of what this daemon shipped (the result cache's invalidation, as
        # the store's version is for the embedded backend): (version, min ts, max ts).
        self._log = ChangeLog()
        self._shipped = threading.Condition()
        self._wake: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    # -- reading the WAL --------------------------------------------------------------------
    def _files(self) -> list[int]:
        out = []
        for name in os.listdir(self.wal_dir):
            m = _WAL_NAME.match(name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def _path(self, seq: int) -> str:
        return os.path.join(self.wal_dir, f"wal-{seq:08d}.log")

    def _backlog(self, files: list[int]) -> int:
        pos = self.log.position
        total = 0
        for f in files:
            if f < pos.file:
                continue
            try:
                size = os.path.getsize(self._path(f))
            except FileNotFoundError:
                continue
            total += size - (pos.offset if f == pos.file else 0)
        return max(0, total)

    def next_range(self, end_limit: int | None = None) -> _Range | None:
        """The next records after the position, up to MAX_BATCH_EVENTS (or exactly up to
        `end_limit` when re-sending an in-flight range); None when there is nothing new.
        Moves the position past finished files that hold nothing more."""
        pos = self.log.position
        files = self._files()
        self.backlog_bytes = self._backlog(files)
        later = [f for f in files if f > pos.file]
        if pos.file not in files:
            if later:  # the file is gone or never existed: start at the next one
                self.log.save(Position(later[0], 0))
                return self.next_range(end_limit)
            return None
        with open(self._path(pos.file), "rb") as f:
            f.seek(pos.offset)
            data = f.read() if end_limit is None else f.read(end_limit - pos.offset)
        batches: list[EventBatch] = []
        seq_starts: list[int] = []
        end = pos.offset
        events = 0
        header = 8
        for frame_end, payload in read_frames(data):
            start = pos.offset + frame_end - len(payload) - header
            batch = EventBatch.from_json(payload)
            batches.append(batch)
            seq_starts.append((pos.file << SEQ_SHIFT) + start)
            end = pos.offset + frame_end
            events += len(batch)
            if end_limit is None and events >= MAX_BATCH_EVENTS:
                break
        if not batches:
            if later and end_limit is None:  # this file is finished (appends go to the newest)
                self.log.save(Position(later[0], 0))
                return self.next_range()
            return None
        merged = EventBatch.concat(batches) if len(batches) > 1 else batches[0]
        seqs = np.concatenate([np.arange(s, s + len(b), dtype=np.uint64)
                               for b, s in zip(batches, seq_starts, strict=True)])
        return _Range(pos.file, pos.offset, end, merged, seqs,
                      min(b.received_at for b in batches))

    # -- shipping ---------------------------------------------------------------------------
    def ship_once(self) -> int:
        """Send one range (the in-flight one first, after a crash); events shipped. Blocking:
        a worker thread."""
        pos = self.log.position
        if pos.inflight is not None:
            file, start, end = pos.inflight
            self.log.position = Position(file, start)
            rng = self.next_range(end_limit=end)
            if rng is None or rng.end != end:  # the range is gone (cannot happen unless the
                log.error("in-flight WAL range %s is no longer readable", pos.inflight)
                self.log.save(Position(file, end))  # WAL was removed by hand): skip it
                return 0
        else:
            rng = self.next_range()
            if rng is None:
                self.pending_events = 0
                self.oldest_pending_ms = None
                return 0
            self.log.save(Position(rng.file, rng.start, (rng.file, rng.start, rng.end)))
        self.pending_events = len(rng.batch)
        self.oldest_pending_ms = rng.oldest_received
        token = f"{self.log.daemon_id}-{rng.file}-{rng.start}-{rng.end}"
        insert_batch(self.ch, rng.batch, rng.seqs, token)
        self.log.save(Position(rng.file, rng.end))
        ts = rng.batch.timestamps
        with self._shipped:
            self._log.record(min(ts), max(ts))
            self._shipped.notify_all()
        self.shipped_events += len(rng.batch)
        self.shipped_batches += 1
        self.last_shipped_at = time.time()
        self.pending_events = 0
        self.oldest_pending_ms = None
        return len(rng.batch)

    # -- what queries need: a data clock, and read-your-writes ---------------------------------
    @property
    def version(self) -> int:
        """The data version: bumped by every shipped range."""
        return self._log.version

    def touch(self, lo: int, hi: int) -> None:
        """Record a change of answers over lo..hi without events (identity links shipped),
        so the result cache drops what they changed."""
        with self._shipped:
            self._log.record(lo, hi)

    def changed_since(self, version: int, start: int | None, end: int | None) -> bool:
        """Whether this daemon shipped events with start <= ts < end after `version` (other
        daemons' shipments are not seen: cached answers are then up to cache_ttl_ms old)."""
        return self._log.since(version, start, end)

    def shipped_through(self, mark: tuple[int, int]) -> bool:
        """Whether everything before WAL position `mark` (file, offset) is in ClickHouse."""
        pos = self.log.position
        return (pos.file, pos.offset) >= mark  # (an in-flight range starts at the position)

    def wait_shipped(self, mark: tuple[int, int], timeout: float = 10.0) -> bool:
        """Block (a query's worker thread) until every event acknowledged before `mark`
        is in ClickHouse, asking the shipper to go now; False after `timeout`."""
        if self.shipped_through(mark):
            return True
        if not self.reachable:  # (ClickHouse is down: the query itself will say so at once)
            return False
        self.request_ship()
        deadline = time.monotonic() + timeout
        with self._shipped:
            while not self.shipped_through(mark):
                left = deadline - time.monotonic()
                if left <= 0 or not self.reachable:
                    return False
                self._shipped.wait(min(left, 0.5))
        return True

    def request_ship(self) -> None:
        """Wake the shipping loop now instead of at its next tick (from any thread)."""
        wake, token = self._wake, self._token
        if wake is None or token is None:
            return
        try:
            trio.from_thread.run_sync(wake.set, trio_token=token)
        except (trio.RunFinishedError, RuntimeError):  # (the loop thread itself, or gone)
            wake.set()

    async def _pause(self, seconds: float) -> None:
        wake = self._wake = trio.Event()
        with trio.move_on_after(seconds):
            await wake.wait()

    async def run(self) -> None:
        """Ship forever: at once while there is a backlog, else every INTERVAL_S or when a
        query asks (`request_ship`); back off (up to 30 s) while ClickHouse fails."""
        self._token = trio.lowlevel.current_trio_token()
        self._wake = trio.Event()
        delay = INTERVAL_S
        while True:
            try:
                shipped = await trio.to_thread.run_sync(self.ship_once)
            except (ClickHouseError, OSError) as exc:
                self.failures += 1
                self.reachable = False
                if self.last_error != str(exc):
                    log.warning("shipping to ClickHouse failed (will retry): %s", exc)
                self.last_error = str(exc)
                with self._shipped:
                    self._shipped.notify_all()  # (waiting queries give up: it is down)
                await self._pause(delay)
                delay = min(30.0, delay * 2)
                continue
            self.reachable = True
            self.last_error = None
            delay = INTERVAL_S
            with self._shipped:  # (the position may have moved without an insert)
                self._shipped.notify_all()
            for callback in self.on_advance:
                callback()
            if shipped < MAX_BATCH_EVENTS:
                await self._pause(INTERVAL_S)

    def measure_backlog(self, max_age_s: float = 0.0) -> int:
        """Unshipped WAL bytes (a directory listing), re-measured when older than
        `max_age_s`."""
        now = time.monotonic()
        if now - self._backlog_at >= max_age_s:
            self._backlog_at = now
            try:
                self.backlog_bytes = self._backlog(self._files())
            except OSError:  # (a WAL file removed mid-listing: the next call sees it right)
                pass
        return self.backlog_bytes

    @property
    def backlog_full(self) -> bool:
        """Whether the unshipped WAL fills its bound (at most every 0.1 s: ingest asks on
        every request)."""
        return self.measure_backlog(0.1) >= self.max_backlog_bytes

    def stats(self) -> dict[str, Any]:
        """Shipping figures for /stats, /health and /metrics; the backlog is measured now
        (a directory listing), so an acknowledged event always shows until it has shipped."""
        self.measure_backlog()
        now = time.time() * 1000
        lag_s = 0.0 if self.oldest_pending_ms is None else max(
            0.0, (now - self.oldest_pending_ms) / 1000)
        return {"target": self.ch.target.display, "reachable": self.reachable,
                "shippedEvents": self.shipped_events, "shippedBatches": self.shipped_batches,
                "lagEvents": self.pending_events, "lagSeconds": round(lag_s, 3),
                "backlogBytes": self.backlog_bytes, "maxBacklogBytes": self.max_backlog_bytes,
                "failures": self.failures, "lastError": self.last_error,
                "position": {"file": self.log.position.file,
                             "offset": self.log.position.offset}}
