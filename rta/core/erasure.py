"""Erasure of a person (#18, part 5): `DELETE /persons/{id}`, `rta persons delete`.

Every event of every distinct id of the person leaves the head, the WAL and the sealed
segments; the person's links leave the links log; and the strings only those events used
(their distinct ids, session ids, property string values) leave the dictionaries, in memory
and on disk. Queries are answered throughout. Phases:

1. **cut** (event loop, ingest paused between two group commits by `Engine.commit_lock`, no
   seal in flight): write the intent record (`<data>/erasure/intent.log`, fsynced), take the
   person's rows out of the head, start a new WAL file (events from here on are new data,
   even for an erased id: its string gets a new code), make the ids' dictionary strings
   unfindable (`Dictionary.forget`) and forget the person (`Persons.erase_ids`, which
   rewrites `links.log`).
2. **work** (worker thread): each segment holding the person's rows is rewritten under a new
   number (`store/rewrite.py`: new file, fsync, rename; the intent names old and new first);
   the WAL files before the cut are rewritten without the events; with ClickHouse, its rows
   are deleted once shipped; then every remaining event is scanned for the session and value
   codes the erased events used, which stay if anything else uses them.
3. **swap** (event loop, as the cut): the rewritten segments replace the old ones at once
   (the old files are deleted as retention's are, once no snapshot taken before reads
   them); unused session and value strings are forgotten; the `forgetters` run (the place
   where other stores of personal data, e.g. person properties, are wired in).
4. **finish** (worker thread): the dictionary files are rewritten from memory, the erasure
   is logged with salted hashes (`erasures.log`), the intent removed.

Crash safety: the intent is written before anything changes. At the next start
`recover_files` (before the store opens) settles half-replaced segments (a new file that
exists replaces its old one; otherwise the old one stays) and strips the ids' events from
the WAL files before the cut; `Erasure.resume` then runs the erasure again, idempotently,
with the codes the intent recorded. A failed erasure (disk full) keeps its intent and is
finished by the next erasure request or start.

Thread rule: `erase` runs on the engine's event loop (its heavy phases in worker threads);
`erase_sync` and `resume` run the phases inline where no loop owns the store (start-up,
library use, tests). One erasure at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from rta.core.embedded.store.dictionary import PreparedForget
from rta.core.embedded.store.records import frame, fsync_dir, read_valid
from rta.core.embedded.store.rewrite import (
    Codes,
    codes_of,
    erased_rows,
    filter_wal_file,
    split_segment,
    still_used,
    write_rewritten,
)
from rta.core.embedded.store.segment import DROPPED, Segment, segment_name
from rta.core.errors import NotFoundError, RtaError, StorageError
from rta.core.persons import ALL_TIME
from rta.core.queries.timeparse import iso, now_ms

if TYPE_CHECKING:
    from rta.core.embedded.store import Snapshot
    from rta.core.embedded.store.block import Block
    from rta.core.engine import Engine

log = logging.getLogger("rta.erasure")
ERASURE_DIR = "erasure"
INTENT = "intent.log"
LOG_NAME = "erasures.log"
SALT_NAME = "salt"
REWRITERS = 2  # segments rewritten at once
QUIET_TIMEOUT_S = 30.0  # the longest an erasure waits for a seal in flight
SEQ_SHIFT = 40  # (shipper.SEQ_SHIFT: a ClickHouse row's seq is (WAL file << 40) + offset)
# A store of personal data keyed by person: called with (person id, distinct ids) during the
# swap, on the event loop. Person properties (#18 part 3) register `forget` here.
Forgetter = Callable[[str, list[str]], object]  # (what it answers is not used)


@dataclass
class Job:
    """One erasure in progress."""

    person: str
    ids: list[str]
    users: np.ndarray  # the ids' user codes
    at: int
    started: float = field(default_factory=time.perf_counter)
    wal_last: int = 0  # the last WAL file written before the cut
    segments: list[Segment] = field(default_factory=list)  # served at the cut
    seqs: list[int] = field(default_factory=list)  # numbers for their rewrites
    replaced: list[tuple[Segment, Segment | None]] = field(default_factory=list)
    codes: Codes = field(default_factory=Codes)
    removed: int = 0
    clickhouse_removed: int | None = None
    wal_removed: int = 0
    head_gone: Block | None = None
    prepared: tuple[PreparedForget, PreparedForget] | None = None  # (sessions, values)
    pin: Snapshot | None = None  # keeps the cut's segment files (retention waits for it)
    phases: dict[str, float] = field(default_factory=dict)  # ms per phase (cut, swap on the loop)

    def timed(self, phase: str, since: float) -> None:
        self.phases[phase] = round((time.perf_counter() - since) * 1000, 1)

    def receipt(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "personId": self.person, "distinctIds": list(self.ids),
            "distinctIdsErased": len(self.ids), "eventsRemoved": self.removed,
            "segmentsRewritten": sum(1 for _, new in self.replaced if new is not None),
            "segmentsDropped": sum(1 for _, new in self.replaced if new is None),
            "tookMs": round((time.perf_counter() - self.started) * 1000, 1),
            "phasesMs": dict(self.phases), "erasedAt": iso(self.at)}
        if self.clickhouse_removed is not None:
            out["clickhouseEventsRemoved"] = self.clickhouse_removed
        return out


class Intent:
    """`<data>/erasure/intent.log`: the erasure in progress (framed records, fsynced): a
    header (person, ids, user codes), then the cut's WAL file and codes, each segment
    replacement before its new file is written, and the codes each one removed. It holds
    the ids in clear while the erasure runs and is deleted when it ends."""

    def __init__(self, data_dir: str | None) -> None:
        self.path = None if data_dir is None else os.path.join(data_dir, ERASURE_DIR, INTENT)
        self._lock = threading.Lock()  # (segment rewrites add records from two threads)

    def pending(self) -> bool:
        return self.path is not None and os.path.exists(self.path)

    def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        if self.path is None or not os.path.exists(self.path):
            return None
        payloads, _good, _size = read_valid(self.path)
        if not payloads:  # (torn before the header was durable: nothing was changed)
            self.clear()
            return None
        records = [json.loads(p) for p in payloads]
        return records[0], records[1:]

    def start(self, header: dict[str, Any]) -> None:
        if self.path is None:
            return
        folder = os.path.dirname(self.path)
        os.makedirs(folder, exist_ok=True)
        with open(self.path, "wb") as f:
            f.write(frame(json.dumps(header).encode()))
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(folder)

    def add(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self._lock, open(self.path, "ab") as f:
            f.write(frame(json.dumps(record).encode()))
            f.flush()
            os.fsync(f.fileno())

    def clear(self) -> None:
        if self.path is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            return
        fsync_dir(os.path.dirname(self.path))


def recover_files(data_dir: str | None) -> None:
    """Before the store opens on `data_dir`: settle an erasure a crash interrupted, so the
    store never loads both a segment and its rewrite, nor replays erased events."""
    intent = Intent(data_dir)
    found = intent.read()
    if data_dir is None or found is None:
        return
    header, records = found
    segments = os.path.join(data_dir, "segments")
    for rec in records:
        if "new" in rec:
            new = os.path.join(segments, segment_name(rec["new"]))
            old = os.path.join(segments, segment_name(rec["old"]))
            if os.path.exists(new) or rec.get("empty"):
                for path in (old, old + DROPPED):
                    if os.path.exists(path):
                        os.remove(path)
    wal_last = next((r["wal_last"] for r in records if "wal_last" in r), None)
    wal_dir = os.path.join(data_dir, "wal")
    ids = set(header["ids"])
    for name in sorted(os.listdir(wal_dir)) if os.path.isdir(wal_dir) else []:
        if name.startswith("wal-") and name.endswith(".log") and (
                wal_last is None or int(name[4:12]) <= wal_last):
            _removed, moved = filter_wal_file(os.path.join(wal_dir, name), ids)
            if moved:
                _move_ship_position(data_dir, int(name[4:12]), moved)
    for sub in ("wal", "dicts", "persons", "segments", ERASURE_DIR):
        folder = os.path.join(data_dir, sub)
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.endswith(".tmp"):  # (a rewrite cut short: it may hold erased data)
                os.remove(os.path.join(folder, name))
    log.warning("an interrupted erasure is being finished")


def _move_ship_position(data_dir: str, file: int, moved: dict[int, int]) -> None:
    """The ClickHouse shipper's saved position (`ship/position.json`) inside WAL file
    `file`, moved to where its record boundary lies after the file's rewrite (the shipper
    has not read it yet: recovery runs before the shipper loads its position)."""
    path = os.path.join(data_dir, "ship", "position.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        body = json.load(f)
    changed = False
    if int(body["file"]) == file and int(body["offset"]) in moved:
        body["offset"] = moved[int(body["offset"])]
        changed = True
    inflight = body.get("inflight")
    if inflight and int(inflight[0]) == file:  # (sent again: its rows lost the erased ones)
        body["inflight"] = [file, moved.get(int(inflight[1]), int(inflight[1])),
                            moved.get(int(inflight[2]), int(inflight[2]))]
        changed = True
    if not changed:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


class Erasure:
    """The engine's erasure service (`engine.erasure`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.data_dir = engine.config.data_dir
        self.intent = Intent(self.data_dir)
        # ---- CALL POINT for other stores of personal data (person properties, groups):
        # append `forget(person_id, distinct_ids)`; each runs in the swap, in order.
        self.forgetters: list[Forgetter] = []
        # Stores that put strings in the store's values dictionary without an event (person
        # properties): `held(distinct_ids)` -> (the person's strings, everyone else's). The
        # person's leave with the events' strings unless a remaining event or store uses them.
        self.string_holders: list[Callable[[set[str]], tuple[set[str], set[str]]]] = []
        self.completed = 0
        self._one = trio.Lock()
        self._codes_lock = threading.Lock()

    # -- entry points ------------------------------------------------------------------------

    async def erase(self, person_or_id: Any) -> dict[str, Any]:
        """Erase the person `person_or_id` (a person id or any of its distinct ids) and
        return the receipt. 404 for an id never seen."""
        person_or_id = _checked_id(person_or_id)
        async with self._one:
            found = self.intent.read()
            if found is not None:  # an earlier erasure failed half-way: finish it first
                await self._run(lambda: self._cut_resumed(*found))
            return await self._run(lambda: self._cut(person_or_id))

    def erase_sync(self, person_or_id: Any) -> dict[str, Any]:
        """`erase` where no event loop owns the store (library use, tests)."""
        job = self._cut(_checked_id(person_or_id))
        self._work(job)
        self._swap(job)
        self._finish(job)
        return job.receipt()

    def resume(self) -> None:
        """At start (after `recover_files` and the store's open): finish an interrupted
        erasure."""
        found = self.intent.read()
        if found is None:
            return
        job = self._cut_resumed(*found)
        self._work(job, resumed=True)
        self._swap(job)
        self._finish(job)
        log.warning("finished the interrupted erasure: %d event(s) removed", job.removed)

    async def _run(self, cut: Callable[[], Job]) -> dict[str, Any]:
        engine = self.engine
        async with engine.commit_lock:
            await self._quiet()
            job = cut()
        try:
            await trio.to_thread.run_sync(self._work, job)
            async with engine.commit_lock:
                await self._quiet()
                self._swap(job)
            await trio.to_thread.run_sync(self._finish, job)
        except RtaError:
            raise
        except OSError as exc:
            log.error("erasure failed (%s); it is finished by the next erasure or start", exc)
            raise StorageError(f"the erasure could not finish: {exc.strerror or exc}; it "
                               "stays recorded and is completed by the next erasure request "
                               "or restart", [{"errno": exc.errno}]) from exc
        finally:
            job.pin = None  # (a failure's traceback must not keep the old files alive)
        return job.receipt()

    async def _quiet(self) -> None:
        """Wait (holding the commit lock: nothing new is sealed) for a seal in flight; a
        seal that keeps failing (a full disk) fails the erasure instead of pausing ingest."""
        engine = self.engine
        deadline = trio.current_time() + QUIET_TIMEOUT_S
        while engine.store.sealing_jobs():
            if trio.current_time() > deadline:
                raise StorageError("a segment could not be sealed (see /health); the "
                                   "erasure did not start or is completed later",
                                   [{"waitedSeconds": QUIET_TIMEOUT_S}])
            await trio.sleep(0.01)

    # -- phases ------------------------------------------------------------------------------

    def _cut(self, person_or_id: str) -> Job:
        engine = self.engine
        info = engine.persons.describe(person_or_id)  # (404 for an id never seen)
        ids = list(info["distinctIds"])
        users = engine.store.dicts.users.lookup_many(ids)
        users = users[users >= 0].astype(np.int32)
        if not len(users):
            raise NotFoundError(f"no person with id '{person_or_id}'",
                                [{"field": "id", "message": "unknown person or distinct id"}])
        job = Job(info["personId"], ids, users, now_ms())
        self.intent.start({"person": job.person, "ids": ids, "users": users.tolist(),
                           "at": job.at})
        return self._cut_common(job)

    def _cut_resumed(self, header: dict[str, Any], records: list[dict[str, Any]]) -> Job:
        ids = list(header["ids"])
        users = np.asarray(header["users"], dtype=np.int32)
        found = self.engine.store.dicts.users.lookup_many(ids)  # (strings still on disk)
        users = np.unique(np.concatenate([users, found[found >= 0]])).astype(np.int32)
        job = Job(header["person"], ids, users, int(header["at"]))
        served = {s.seq for s in self.engine.store.segments}
        for rec in records:
            if "codes" in rec:
                job.codes.add(Codes.from_json(rec["codes"]))
            if "new" in rec and rec["old"] in served and self.data_dir is not None:
                # a rewrite the failed attempt never installed: its old segment is served
                # and is rewritten again, so this copy must not be loaded at the next start
                path = os.path.join(self.data_dir, "segments", segment_name(rec["new"]))
                if os.path.exists(path):
                    os.remove(path)
        return self._cut_common(job)

    def _cut_common(self, job: Job) -> Job:
        started = time.perf_counter()
        engine = self.engine
        store = engine.store
        head = store.erase_head(job.users)
        job.head_gone = head
        job.removed += head.n
        codes = codes_of(head)
        job.codes.add(codes)
        job.wal_last = store.rotate_wal()
        self.intent.add({"wal_last": job.wal_last, "codes": codes.to_json()})
        store.dicts.users.forget(job.users)
        engine.persons.erase_ids(job.ids)
        job.pin = store.snapshot()  # (a segment retention drops meanwhile stays readable)
        job.segments = list(store.segments)
        job.seqs = store.allocate_segment_seqs(len(job.segments))
        store.touch(*ALL_TIME)
        job.timed("cut", started)
        return job

    def _work(self, job: Job, resumed: bool = False) -> None:
        started = time.perf_counter()
        store = self.engine.store
        directory = None if self.data_dir is None else os.path.join(self.data_dir, "segments")

        def rewrite(seg: Segment, seq: int) -> tuple[Segment, Segment | None, int] | None:
            gone = erased_rows(seg.block, job.users)
            if not len(gone):
                return None
            kept, removed = split_segment(seg.block, gone)
            codes = codes_of(removed)
            used = codes_of(kept)  # (in memory now: no second read of the new file)
            # (recorded before the new file exists: a crash from here on keeps the codes)
            self.intent.add({"old": seg.seq, "new": seq, "empty": not kept.n,
                             "codes": codes.to_json()})
            with self._codes_lock:
                job.codes.add(codes)
            new = write_rewritten(directory, seg, kept, seq, store.column_cache) \
                if kept.n else None
            with self._codes_lock:
                kept_used.add(used)
            return seg, new, len(gone)

        kept_used = Codes()

        # two at a time: decompression, zstd and fsync release the GIL
        with ThreadPoolExecutor(max_workers=REWRITERS) as pool:
            done = list(pool.map(rewrite, job.segments, job.seqs))
        for result in done:
            if result is not None:
                job.replaced.append((result[0], result[1]))
                job.removed += result[2]
        self._erase_clickhouse(job, resumed)
        if store.wal is not None:
            for seq in store.wal.sequences():
                if seq <= job.wal_last:  # (shipped already: no reader is inside them)
                    job.wal_removed += filter_wal_file(store.wal.path(seq), set(job.ids))[0]
        # which of the removed events' strings anything else still uses
        job.codes.sessions -= kept_used.sessions
        job.codes.values -= kept_used.values
        replaced = {id(old) for old, _ in job.replaced}
        blocks = [s.block for s in job.segments if id(s) not in replaced]
        blocks.append(store.head_block())
        self._held_strings(job, own=True)
        _drop_used(job.codes, blocks)
        dicts = store.dicts  # (the swap then only swaps the rebuilt chunks in)
        job.prepared = (dicts.sessions.prepare_forget(_array(job.codes.sessions)),
                        dicts.values.prepare_forget(_array(job.codes.values)))
        job.timed("work", started)

    def _held_strings(self, job: Job, own: bool) -> None:
        """Value codes of the `string_holders`: the person's join `job.codes` (with `own`),
        everyone else's leave it."""
        values = self.engine.store.dicts.values
        ids = set(job.ids) | {job.person}
        for held in self.string_holders:
            mine, others = held(ids)
            if own and mine:
                found = values.lookup_many(sorted(mine))
                job.codes.values |= set(found[found >= 0].tolist())
            if others and job.codes.values:
                found = values.lookup_many(sorted(others))
                job.codes.values -= set(found[found >= 0].tolist())

    def _erase_clickhouse_profiles(self, job: Job) -> None:
        """With ClickHouse: the person's `person_props` rows, once the empty rows the
        profile forgetter queued in the swap have shipped (so none arrives after)."""
        mode, shipper = self.engine.clickhouse, self.engine.profile_shipper
        if mode is None:
            return
        from rta.core.clickhouse.erasure_sql import erase_person_props

        if shipper is not None and not shipper.wait_shipped(shipper.mark(), timeout=10.0):
            log.warning("erasure: person properties had not shipped to ClickHouse within "
                        "10 s; deleting the person's rows anyway")
        erase_person_props(mode.ch, sorted(set(job.ids) | {job.person}),
                           self.engine.config.clickhouse_cluster)

    def _erase_clickhouse(self, job: Job, resumed: bool) -> None:
        mode = self.engine.clickhouse
        if mode is None:
            return
        from rta.core.clickhouse.erasure_sql import erase

        cut = job.wal_last + 1
        if not resumed and not mode.shipper.wait_shipped((cut, 0), timeout=60.0):
            raise StorageError("the erasure is waiting for events to ship to ClickHouse "
                               f"({mode.ch.target.display}); retry once it answers",
                               [{"lastError": mode.shipper.last_error}])
        job.clickhouse_removed = erase(mode.ch, job.ids, cut << SEQ_SHIFT,
                                       self.engine.config.clickhouse_cluster)
        mode.shipper.touch(*ALL_TIME)

    def _swap(self, job: Job) -> None:
        started = time.perf_counter()
        engine = self.engine
        store = engine.store
        covered = {id(s) for s in job.segments} | {id(n) for _, n in job.replaced if n}
        newer = [s.block for s in store.segments if id(s) not in covered]
        newer.append(store.head_block())
        _drop_used(job.codes, newer)
        self._held_strings(job, own=False)  # (what other stores took since the work phase)
        # a segment retention dropped (or quarantine took) meanwhile stays dropped
        served = {id(s) for s in store.segments}
        for old, new in job.replaced:
            if id(old) not in served and new is not None and new.path:
                os.remove(new.path)
        job.replaced = [(old, new) for old, new in job.replaced if id(old) in served]
        # (no drop markers here: the intent records the replacements until `_finish`
        # marks what is left of the old files, off the event loop)
        store.replace_segments([old for old, _ in job.replaced],
                               [new for _, new in job.replaced if new is not None],
                               mark=False)
        dicts = store.dicts
        sessions, values = job.prepared or (None, None)
        dicts.sessions.forget(_array(job.codes.sessions), sessions)
        dicts.values.forget(_array(job.codes.values), values)
        for forget in self.forgetters:  # person properties and other personal data
            forget(job.person, list(job.ids))
        store.touch(*ALL_TIME)
        self.intent.add({"swapped": True})
        job.timed("swap", started)

    def _finish(self, job: Job) -> None:
        started = time.perf_counter()
        store = self.engine.store
        store.mark_dropped([old for old, _ in job.replaced])  # (before the intent goes)
        job.pin = None  # (its release deletes what only it kept, here, off the event loop)
        store.reap()  # (the old files no snapshot reads any more)
        for dictionary in store.dicts.all():
            dictionary.compact_file()
        self._erase_clickhouse_profiles(job)
        job.timed("finish", started)
        self._log(job)
        self.intent.clear()
        self.completed += 1
        log.info("erased a person: %d event(s), %d distinct id(s), %d segment(s) rewritten",
                 job.removed, len(job.ids), len(job.replaced))

    # -- accountability ----------------------------------------------------------------------

    def _salt(self) -> bytes:
        assert self.data_dir is not None
        path = os.path.join(self.data_dir, ERASURE_DIR, SALT_NAME)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        with open(path) as f:
            return f.read().strip().encode()

    def hash_id(self, distinct_id: str) -> str:
        """The salted hash the erasure log keeps of an id (to answer "was X erased?")."""
        return hashlib.sha256(self._salt() + b"\x00" + distinct_id.encode()).hexdigest()

    def _log(self, job: Job) -> None:
        if self.data_dir is None:
            return
        record = {"at": iso(job.at), "person": self.hash_id(job.person),
                  "distinctIds": sorted(self.hash_id(x) for x in job.ids),
                  "events": job.removed, "segments": len(job.replaced)}
        path = os.path.join(self.data_dir, ERASURE_DIR, LOG_NAME)
        with open(path, "ab") as f:
            f.write(frame(json.dumps(record).encode()))
            f.flush()
            os.fsync(f.fileno())

    def history(self) -> list[dict[str, Any]]:
        """The erasure log, oldest first (hashed ids, counts, times)."""
        if self.data_dir is None:
            return []
        path = os.path.join(self.data_dir, ERASURE_DIR, LOG_NAME)
        if not os.path.exists(path):
            return []
        return [json.loads(p) for p in read_valid(path)[0]]


def _drop_used(codes: Codes, blocks: list[Block]) -> None:
    """Remove from `codes` those any of `blocks` uses (stops once nothing is left)."""
    for block in blocks:
        if not codes.sessions and not codes.values:
            return
        used = still_used(block, codes)
        codes.sessions -= used.sessions
        codes.values -= used.values


def _array(codes: set[int]) -> np.ndarray:
    return np.fromiter(codes, np.int64, len(codes))


def _checked_id(value: Any) -> str:
    from rta.core.errors import field_error
    from rta.core.events import MAX_ID_LENGTH

    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise field_error("id", f"must be a non-empty string of at most {MAX_ID_LENGTH} "
                          "characters")
    return value
