"""ColumnStore: the embedded event store (WAL + in-memory head + sealed segments).

Ingest protocol, split so an async caller can group-commit (see rta.core.engine):
  reserve(batch) -> drop duplicate ids and reserve the rest,
  write_wal(payloads) -> durable (may run in a worker thread),
  apply(batch) -> visible to queries; then seal when the head is full.
`append()` runs the whole sequence synchronously for library use and bulk loads.

Retention never removes a file a live snapshot may still read: snapshots are counted per
epoch (bumped by each drop), a dropped segment is first marked on disk (`seg-N.arrow.dropped`,
so a crash cannot bring it back) and its file deleted once no snapshot taken before the drop
is alive. Quarantine keeps damaged files; sealing only adds files (no compaction).

Threads: ingest and lifecycle (`reserve`, `release`, `apply*`, `begin_seal`, `finish_seal`,
`append`, `apply_retention`, `close`) belong to one owner thread (the engine's event loop);
`write_wal` and `run_seal` may run in a worker the owner waits on; `snapshot`, `head_block`,
`changed_since` and `stats` are safe from any thread, and a snapshot's release (its
finaliser) may run in any thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from rta.core.change_log import ChangeLog
from rta.core.embedded.store.block import (
    Block,
    batch_dedup_keys,
    block_from_batch,
    concat_blocks,
    dedup_keys,
    empty_block,
    sort_block,
)
from rta.core.embedded.store.column_cache import ColumnCache
from rta.core.embedded.store.dedup_index import DedupIndex, RecentKeys
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.embedded.store.records import fsync_dir
from rta.core.embedded.store.segment import (
    DROPPED,
    LazyBlock,
    Segment,
    list_segments,
    read_segment,
    write_segment,
)
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.embedded.store.wal import WriteAheadLog
from rta.core.errors import StorageError, StoreLockedError
from rta.core.events import EventBatch
from rta.core.memory import release_free_memory
from rta.core.queries.timeparse import DAY, now_ms

log = logging.getLogger("rta.store")
SMALL_BATCH = 64  # batches below this many events are encoded together by apply_many


@dataclass(frozen=True)
class StoreConfig:
    max_head_events: int = 100_000  # MAX_EVENTS: bounds the in-memory head, not the data kept
    retention_ms: int | None = None  # None keeps everything
    dedup_window_ms: int = DAY
    fsync: bool = True
    column_cache_bytes: int = 1 << 30  # decoded segment columns kept in RAM (LRU)
    # The highest WAL file another reader (the ClickHouse shipper) has finished with; files
    # after it are kept even once a segment covers them. None: nobody else reads the WAL.
    wal_floor: Callable[[], int] | None = None


@dataclass
class IngestResult:
    """What an append did. `ids` (the stored events' ids) is read from `batch` when asked
    for: most answers do not list them, and a columnar batch holds no Python strings."""

    accepted: int
    duplicates: int
    _ids: list[str] | None = None
    batch: EventBatch | None = field(default=None, compare=False, repr=False)

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = self.batch.ids if self.batch is not None else []
        return self._ids


@dataclass
class SealJob:
    block: Block
    wal_seq: int
    seq: int
    segment: Segment | None = None


class ColumnStore:
    def __init__(self, data_dir: str | None, config: StoreConfig | None = None) -> None:
        """`data_dir=None` gives a purely in-memory store (no WAL, no files), for tests."""
        self.data_dir = data_dir
        self.config = config or StoreConfig()
        self.segments: list[Segment] = []
        self.column_cache = ColumnCache(self.config.column_cache_bytes)
        self.damaged: list[dict[str, str]] = []
        self._head: list[Block] = []
        # Queries may take snapshots from worker threads while the event loop appends; the
        # lock keeps head merges and appends from losing each other's chunks.
        self._head_lock = threading.Lock()
        self._head_rows = 0
        self._sealing: list[SealJob] = []
        # Low id halves reserved since the last seal. A dict of ints, not a set: it holds
        # only atomic values, so the garbage collector never tracks or traverses it.
        self._recent_ids = RecentKeys()
        self._dedup_index = DedupIndex()  # (the window's segments' keys, for `reserve`)
        self._lock_fd: int | None = None
        self._next_segment = 1
        self._log = ChangeLog()
        self.duplicates_dropped = 0
        self.events_ingested = 0
        self.wal: WriteAheadLog | None = None
        # Deferred deletion (see the module docstring). `_live`: epoch -> snapshots alive
        # that were taken in it; `_doomed`: (epoch of the drop, segment) not yet deleted;
        # `_released`: epochs of snapshots finalised, counted down by whoever holds
        # `_pin_lock` next (a finaliser may run inside any critical section, so it never
        # waits for the lock).
        self._pin_lock = threading.Lock()
        self._epoch = 0
        self._live: dict[int, int] = {}
        self._doomed: list[tuple[int, Segment]] = []
        self._released: deque[int] = deque()
        self._closed = False
        if data_dir is None:
            self.dicts = Dictionaries(None)
            return
        os.makedirs(data_dir, exist_ok=True)
        self._acquire_lock()
        try:
            for sub in ("dicts", "segments", "wal"):
                os.makedirs(os.path.join(data_dir, sub), exist_ok=True)
            self.dicts = Dictionaries(os.path.join(data_dir, "dicts"))
            self._load_segments()
            self.wal = WriteAheadLog(os.path.join(data_dir, "wal"), fsync=self.config.fsync)
            self._replay()
            self.wal.open_new()
        except BaseException:
            self._release_lock()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        assert self.data_dir is not None
        path = os.path.join(self.data_dir, "LOCK")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            try:
                with open(path) as f:
                    holder = f.read().strip()
            except OSError:
                pass
            raise StoreLockedError(
                f"data directory {self.data_dir} is in use by another rta process"
                + (f" (pid {holder})" if holder else ""),
                [{"field": "dataDir", "message": "locked", "path": self.data_dir}]) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _segments_dir(self) -> str:
        assert self.data_dir is not None
        return os.path.join(self.data_dir, "segments")

    def _load_segments(self) -> None:
        directory = self._segments_dir()
        for name in os.listdir(directory):
            if name.endswith(".tmp"):
                os.remove(os.path.join(directory, name))
            elif name.endswith(DROPPED):  # dropped before a crash: finish the deletion
                _remove_quietly(os.path.join(directory, name[:-len(DROPPED)]))
                os.remove(os.path.join(directory, name))
        for seq, path in list_segments(directory):
            self._next_segment = max(self._next_segment, seq + 1)
            try:
                seg = read_segment(seq, path, self.column_cache)
                if seg.block.n and not self._codes_known(seg.block):
                    raise ValueError("refers to dictionary entries that do not exist")
            except Exception as exc:  # a damaged file must not stop the server
                log.error("segment %s is damaged and was skipped: %s", path, exc)
                self.damaged.append({"segment": os.path.basename(path), "error": str(exc)})
                continue
            self.watch(seg)
            self.segments.append(seg)

    def watch(self, seg: Segment) -> None:
        """Have a segment report damage found while reading it (see `_quarantine`)."""
        if isinstance(seg.block, LazyBlock):
            seg.block.on_damage = self._quarantine

    def _quarantine(self, path: str, error: str) -> None:
        """Stop serving a segment whose data turned out unreadable, as a damaged segment is
        skipped at startup: the query that found it fails (503), later ones answer from the
        rest, and `/health` reports it."""
        with self._head_lock:
            bad = [s for s in self.segments if s.path == path]
            if not bad:
                return
            self.segments = [s for s in self.segments if s.path != path]
            self._log.record(bad[0].block.min_ts, bad[0].block.max_ts)
        self.column_cache.drop(path)
        log.error("segment %s is damaged and is no longer served: %s", path, error)
        self.damaged.append({"segment": os.path.basename(path), "error": error})

    def _codes_known(self, block: Block) -> bool:
        """Whether every type and user code of `block` has a dictionary entry."""
        top = block.max_codes
        return top["type"] < len(self.dicts.types) and top["user"] < len(self.dicts.users)

    def _replay(self) -> None:
        assert self.wal is not None
        covered = max((s.wal_seq for s in self.segments), default=0)
        replayed = 0
        for _seq, payload in self.wal.replay(covered, keep_after=self._wal_floor(covered)):
            batch = EventBatch.from_json(payload)
            self._recent_ids.add(batch_dedup_keys(batch))
            self.apply(batch)
            replayed += len(batch)
        if replayed:
            log.info("replayed %d events from the write-ahead log", replayed)

    def _wal_floor(self, sealed: int) -> int:
        """The WAL files that may go: those a segment covers and the shipper has read."""
        floor = self.config.wal_floor
        return sealed if floor is None else min(sealed, floor())

    def release_wal(self) -> None:
        """Delete WAL files every reader is done with (the shipper calls it as it advances)."""
        if self.wal is None:
            return
        covered = max((s.wal_seq for s in self.segments), default=0)
        self.wal.drop_through(self._wal_floor(covered))

    def close(self) -> None:
        """Seal what the head holds so a restart needs no replay, then release the lock.

        If sealing fails (disk full), the WAL still holds everything for the next start.
        Dropped segments still read by live snapshots stay marked on disk for the next
        start to delete: after close, a late finaliser must not touch files a new store on
        this directory may own."""
        self._reap()
        self._closed = True
        try:
            if self.wal is not None:
                for job in list(self._sealing):
                    self.run_seal(job)
                    self.finish_seal(job)
                if self._head_rows:
                    job = self.begin_seal()
                    self.run_seal(job)
                    self.finish_seal(job)
        except OSError as exc:
            log.error("could not seal on close (%s); the write-ahead log keeps the data", exc)
        finally:
            if self.wal is not None:
                self.wal.close()
            self.dicts.close()
            self._release_lock()

    # -- ingest ----------------------------------------------------------------------------

    def reserve(self, batch: EventBatch) -> tuple[EventBatch, int]:
        """Drop events whose id was seen within the dedup window (or earlier in this batch)."""
        keys = batch_dedup_keys(batch)
        n = len(keys)
        dup = np.zeros(n, dtype=bool)
        horizon = now_ms() - self.config.dedup_window_ms
        index = self._dedup_index
        index.sync([seg for seg in self.segments if seg.max_recv >= horizon])
        # Sorted keys: each binary search starts where the previous one ended, and a key
        # given twice in the batch sits next to its first copy (kept: the earlier row).
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        seen = self._recent_ids.found(ordered)
        if index.levels and n:
            seen |= index.found(ordered)
        if n > 1:
            seen[1:] |= ordered[1:] == ordered[:-1]
        self._recent_ids.add(ordered[~seen], is_sorted=True)
        if not seen.any():
            return batch, 0
        dup[order] = seen
        keep = np.flatnonzero(~dup).tolist()
        duplicates = n - len(keep)
        self.duplicates_dropped += duplicates
        return batch.select(keep), duplicates

    def release(self, batch: EventBatch) -> None:
        """Undo `reserve` for a batch that could not be made durable."""
        self._recent_ids.remove(batch_dedup_keys(batch))

    def write_wal(self, payloads: list[bytes]) -> None:
        if self.wal is None:
            return
        try:
            self.wal.write(payloads)
        except OSError as exc:
            raise StorageError(f"could not write the write-ahead log: {exc.strerror or exc}",
                               [{"errno": exc.errno, "path": self.wal.path(self.wal.seq)}]
                               ) from exc

    def apply(self, batch: EventBatch) -> None:
        if not len(batch):
            return
        self._apply_block(block_from_batch(batch, self.dicts))

    def apply_many(self, batches: list[EventBatch]) -> None:
        """`apply` each batch in order, runs of small ones (single events) encoded together
        as one block: the same head as one block each, at a fraction of the numpy calls."""
        run: list[EventBatch] = []
        for batch in batches:
            if len(batch) >= SMALL_BATCH:
                self._apply_run(run)
                run = []
                self.apply(batch)
            elif len(batch):
                run.append(batch)
        self._apply_run(run)

    def _apply_run(self, run: list[EventBatch]) -> None:
        if len(run) < 2:
            for batch in run:
                self.apply(batch)
            return
        block = block_from_batch(EventBatch.concat(run), self.dicts)
        block.recv = np.repeat(np.array([b.received_at for b in run], dtype=np.int64),
                               [len(b) for b in run])
        self._apply_block(block)

    def _apply_block(self, block: Block) -> None:
        with self._head_lock:
            self._head.append(block)
            self._head_rows += block.n
            self.events_ingested += block.n
            self._log.record(int(block.ts.min()), int(block.ts.max()))

    def needs_seal(self) -> bool:
        return self._head_rows >= self.config.max_head_events

    def begin_seal(self) -> SealJob:
        """Detach the head for sealing; new appends go to a fresh head and WAL file."""
        with self._head_lock:
            block = sort_block(concat_blocks(self._head))
            wal_seq = self.wal.open_new() if self.wal is not None else 0
            job = SealJob(block=block, wal_seq=wal_seq, seq=self._next_segment)
            self._next_segment += 1
            self._sealing.append(job)
            self._head = []
            self._head_rows = 0
        return job

    def run_seal(self, job: SealJob) -> None:
        """Persist the job's block (thread-safe: touches only immutable data and fsyncs)."""
        if self.data_dir is None:
            return
        self.dicts.sync()
        job.segment = write_segment(self._segments_dir(), job.seq, job.block, job.wal_seq,
                                    self.column_cache)

    def finish_seal(self, job: SealJob) -> None:
        segment = job.segment or Segment(job.seq, "", job.block, 0, 0, now_ms(), 0)
        self.watch(segment)
        with self._head_lock:  # swap atomically: a snapshot sees the rows exactly once
            self.segments = sorted([*self.segments, segment], key=lambda s: s.seq)
            self._sealing = [j for j in self._sealing if j is not job]
        if job.segment is not None and self.wal is not None:
            self.wal.drop_through(self._wal_floor(job.wal_seq))
        if self._recent_ids.levels:
            self._recent_ids.remove(dedup_keys(job.block.id_hi, job.block.id_lo))
        # The sealed head's arrays and every request's transient buffers since the last
        # seal are free now: hand the free pages back (about 1 ms per head of events), or
        # the heap and Arrow's pool keep them resident and RSS grows with what was ingested.
        pa.default_memory_pool().release_unused()
        release_free_memory()

    # -- bulk loads (rta ingest --local, rta serve --demo): owner thread only ---------------

    def known_id_keys(self, horizon_ms: int) -> list[np.ndarray]:
        """Sorted dedup keys of the ids a new event may duplicate: those of segments that
        received events since `horizon_ms`, and those reserved since the last seal."""
        known = [seg.sorted_ids for seg in self.segments if seg.max_recv >= horizon_ms]
        if self._recent_ids.levels:
            known.append(self._recent_ids.array())
        return known

    def covered_wal_seq(self) -> int:
        """The WAL sequence the segments cover (a bulk segment covers no more of it)."""
        return max((s.wal_seq for s in self.segments), default=0)

    def allocate_segment_seqs(self, count: int) -> list[int]:
        """Numbers for `count` new segment files, never reused."""
        first = self._next_segment
        self._next_segment += count
        return list(range(first, first + count))

    def install_segments(self, new: list[Segment]) -> None:
        """Serve segments written outside the seal path, all at once: a snapshot sees all
        of them or none."""
        for seg in new:
            self.watch(seg)
        with self._head_lock:
            self.segments = sorted([*self.segments, *new], key=lambda s: s.seq)
            for seg in new:
                self.events_ingested += seg.block.n
                self._log.record(seg.block.min_ts, seg.block.max_ts)

    def append(self, batch: EventBatch) -> IngestResult:
        """Synchronous ingest: dedup, WAL + fsync, apply, seal when full."""
        kept, duplicates = self.reserve(batch)
        if len(kept):
            try:
                self.write_wal([kept.to_json()])
            except StorageError:
                self.release(kept)
                raise
            self.apply(kept)
            self.seal_if_full()
        return IngestResult(len(kept), duplicates, batch=kept)

    def seal_if_full(self) -> None:
        if self.needs_seal():
            job = self.begin_seal()
            self.run_seal(job)
            self.finish_seal(job)

    # -- reading ---------------------------------------------------------------------------

    def head_block(self) -> Block:
        """The head as one sorted block (merged lazily, cached until the next append)."""
        with self._head_lock:
            return self._merged_head()

    def _merged_head(self) -> Block:
        head = self._head
        if len(head) > 1 or (head and head[0].label != "head-sorted"):
            merged = sort_block(concat_blocks(head))
            merged.label = "head-sorted"
            self._head = [merged]
        return self._head[0] if self._head else empty_block()

    def snapshot(self) -> Snapshot:
        """A consistent, immutable view for one query (safe from any thread). The files of
        the segments it holds stay on disk until it is released."""
        with self._head_lock:
            blocks = [s.block for s in self.segments] + [j.block for j in self._sealing]
            if self._head_rows:
                blocks.append(self._merged_head())
            snap = Snapshot(blocks=blocks, dicts=self.dicts, version=self.version)
            if self.data_dir is None:
                return snap
            epoch = self._epoch
            with self._pin_lock:
                self._live[epoch] = self._live.get(epoch, 0) + 1
        done = weakref.finalize(snap, self._unpin, epoch)
        done.atexit = False  # (at exit the markers remain; the next start deletes)
        return snap

    def _unpin(self, epoch: int) -> None:
        """A snapshot was released (any thread, possibly inside a critical section)."""
        self._released.append(epoch)
        self._reap()

    def _reap(self) -> None:
        """Count released snapshots down and delete dropped segments no live snapshot
        taken before their drop can read. Never waits: if the lock is taken, its holder
        sees the released epochs when it calls this after letting go."""
        while True:
            if not self._pin_lock.acquire(blocking=False):
                return
            try:
                while self._released:
                    epoch = self._released.popleft()
                    left = self._live[epoch] - 1
                    if left:
                        self._live[epoch] = left
                    else:
                        del self._live[epoch]
                due: list[Segment] = []
                if self._doomed and not self._closed:
                    oldest = min(self._live, default=self._epoch)
                    due = [seg for dropped, seg in self._doomed if dropped < oldest]
                    self._doomed = [d for d in self._doomed if d[0] >= oldest]
            finally:
                self._pin_lock.release()
            for seg in due:
                self._delete(seg)
            if not self._released:
                return

    def _delete(self, seg: Segment) -> None:
        """Remove a dropped segment's file, then its drop marker (a crash in between leaves
        the marker, and the next start finishes)."""
        _remove_quietly(seg.path)
        self.column_cache.drop(seg.path)  # (what its last readers decoded)
        if self.config.fsync:
            fsync_dir(self._segments_dir())
        _remove_quietly(seg.path + DROPPED)

    def changed_since(self, version: int, start: int | None, end: int | None) -> bool:
        """Whether events with start <= ts < end have landed after `version`."""
        return self._log.since(version, start, end)

    def touch(self, lo: int, hi: int) -> None:
        """Record a change of the answers over timestamps lo..hi without new events (an
        identity link regroups past events), so cached results over them are dropped."""
        self._log.record(lo, hi)

    @property
    def version(self) -> int:
        """The data version snapshots carry (the result cache's clock)."""
        return self._log.version

    def apply_retention(self, now: int | None = None) -> int:
        """Drop whole segments whose newest event is past the retention horizon."""
        if self.config.retention_ms is None:
            return 0
        horizon = (now_ms() if now is None else now) - self.config.retention_ms
        expired = [s for s in self.segments if s.block.max_ts < horizon]
        if not expired:
            return 0
        on_disk = [s for s in expired if s.path]
        for seg in on_disk:  # recorded first: a crash from here on cannot bring them back
            with open(seg.path + DROPPED, "wb"):
                pass
        if on_disk and self.config.fsync:
            fsync_dir(self._segments_dir())
        gone = {id(s) for s in expired}
        with self._head_lock:
            self.segments = [s for s in self.segments if id(s) not in gone]
            self._log.record(0, horizon)
            with self._pin_lock:
                self._doomed += [(self._epoch, seg) for seg in on_disk]
                self._epoch += 1
        self._reap()
        return sum(s.block.n for s in expired)

    # -- erasure (rta/core/erasure.py; files rewritten by store/rewrite.py): owner thread --

    def erase_head(self, users: np.ndarray) -> Block:
        """Remove the head's rows whose user code is in `users` (their ids leave the dedup
        reservations too, so a re-sent event is new data); returns the removed rows."""
        with self._head_lock:
            head = self._merged_head()
            gone = np.isin(head.user, users) if head.n else np.zeros(0, dtype=bool)
            if not gone.any():
                return empty_block()
            removed = head.take(np.flatnonzero(gone))
            kept = head.take(np.flatnonzero(~gone))
            kept.label = "head-sorted"
            self._head = [kept] if kept.n else []
            self._head_rows = kept.n
            self._recent_ids.remove(dedup_keys(removed.id_hi, removed.id_lo))
            self._log.record(removed.min_ts, removed.max_ts)
        return removed

    def replace_segments(self, old: list[Segment], new: list[Segment], mark: bool = True
                         ) -> None:
        """Serve `new` instead of `old` in one step (a snapshot sees one set or the other);
        the old files go as retention's do: marked dropped first, deleted (`reap`) once no
        snapshot taken before the swap is alive. `mark=False`: the caller has its own
        record of the drop until it calls `mark_dropped` (the erasure's intent)."""
        on_disk = [s for s in old if s.path]
        if mark:
            self.mark_dropped(on_disk)
        for seg in new:
            self.watch(seg)
        gone = {id(s) for s in old}
        with self._head_lock:
            self.segments = sorted([*(s for s in self.segments if id(s) not in gone), *new],
                                   key=lambda s: s.seq)
            for seg in old:
                if seg.block.n:
                    self._log.record(seg.block.min_ts, seg.block.max_ts)
            with self._pin_lock:
                self._doomed += [(self._epoch, seg) for seg in on_disk]
                self._epoch += 1

    def mark_dropped(self, segments: list[Segment]) -> None:
        """Mark segment files dropped on disk (`seg-N.arrow.dropped`): the next start
        deletes them instead of loading them (any thread)."""
        marked = False
        for seg in segments:
            if seg.path and os.path.exists(seg.path):
                with open(seg.path + DROPPED, "wb"):
                    pass
                marked = True
        if marked and self.config.fsync:
            fsync_dir(self._segments_dir())

    def reap(self) -> None:
        """Delete the files `replace_segments` dropped that no live snapshot can read (any
        thread: the erasure calls it from its worker, so the unlinks and folder fsyncs do not
        hold the event loop; a snapshot released later deletes the rest, as retention's)."""
        self._reap()

    def sealing_jobs(self) -> int:
        """Seals begun and not yet finished."""
        return len(self._sealing)

    def rotate_wal(self) -> int:
        """Send appends to a new WAL file; returns the last file written before it."""
        return self.wal.open_new() if self.wal is not None else 0

    def stats(self) -> dict[str, Any]:
        head_bytes = sum(b.nbytes() for b in self._head) + sum(
            j.block.nbytes() for j in self._sealing)
        return {
            "events": sum(s.block.n for s in self.segments) + self._head_rows + sum(
                j.block.n for j in self._sealing),
            "segments": len(self.segments),
            "headEvents": self._head_rows,
            "bytesInMemory": head_bytes + self.column_cache.bytes,
            "bytesOnDisk": sum(s.size_bytes for s in self.segments),
            "walBytes": self.wal.size_bytes() if self.wal is not None else 0,
            "duplicatesDropped": self.duplicates_dropped,
            "damagedSegments": self.damaged,
            "columnCache": self.column_cache.stats(),
        }


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
