"""Engine: the store plus validation, group commit and the background tasks around it.

`open_engine(config)` owns a nursery (structured concurrency): the commit loop, segment
sealing and retention run there, along with any task a feature registers with
`add_background`. Closing it flushes, seals and releases the data directory.

With a ClickHouse server as the backend, several daemons can stand in front of one
database: the metadata (alerts, dashboards, segments, tokens, templates, history) is then
the shared `ClickHouseMetadataStore`, and the `alerts` lease (`alert_lease`) picks the one
daemon that evaluates alerts. With chdb (ClickHouse inside this process, a directory no
other process can open) nothing can be shared, so the metadata stays in the data dir's
sqlite file and there is no lease: its one engine lock would otherwise put metadata reads on
the event loop behind running queries.

Thread rule: the event loop owns the engine: ingest, group commit, sealing and retention
start there; WAL writes and seals run in worker threads it waits on; `snapshot()`, `stats()`
and `health()` are safe from any thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from rta import __version__
from rta.core.arrow_ingest import ArrowEvents, validate_arrow
from rta.core.clickhouse.lease import Lease
from rta.core.clickhouse.metadata_store import ClickHouseMetadataStore
from rta.core.clickhouse_mode import ClickHouseMode, open_mode, ship_log_for
from rta.core.config import EngineConfig
from rta.core.embedded.store import ColumnStore, IngestResult, Snapshot, StoreConfig
from rta.core.embedded.store.store import SealJob
from rta.core.erasure import Erasure, recover_files
from rta.core.errors import RtaError, StorageError, ValidationError
from rta.core.events import EventBatch, EventValidator
from rta.core.groups import open_groups
from rta.core.ingest import (
    HTTP_PARTIAL_HINT,
    Admitted,
    Rejection,
    Submitted,
    invalid_batch,
    rejection_details,
    validate_many,
)
from rta.core.key_budget import KeyBudget
from rta.core.metadata import Metadata, MetadataStore
from rta.core.metrics import Registry
from rta.core.person_props import check_batch as check_person_updates
from rta.core.person_shipper import PersonShipper
from rta.core.persons import ALL_TIME, open_persons
from rta.core.profile_shipper import ProfileShipper
from rta.core.profiles import open_profiles
from rta.core.services import Services, Serving, ServingOptions
from rta.core.write_health import WriteHealth, probe_write

log = logging.getLogger("rta.engine")
IngestListener = Callable[[EventBatch], None]
BackgroundTask = Callable[[], Awaitable[None]]
ALERT_LEASE = "alerts"


@dataclass
class _Pending:
    batch: EventBatch
    payload: bytes
    done: trio.Event = field(default_factory=trio.Event)
    error: RtaError | None = None


class RateMeter:
    """Events per second over a short sliding window."""

    def __init__(self, window_s: int = 5) -> None:
        self.window_s = window_s
        self._buckets: deque[list[float]] = deque()

    def add(self, count: int, now: float | None = None) -> None:
        second = int(time.monotonic() if now is None else now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._trim(second)

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self.window_s:
            self._buckets.popleft()

    def rate(self, now: float | None = None) -> float:
        second = int(time.monotonic() if now is None else now)
        self._trim(second)
        total = sum(c for s, c in self._buckets if s < second)
        return total / max(1, self.window_s - 1)


class Engine:
    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        limits = replace(self.config.limits, past_horizon_ms=self.config.retention_ms)
        recover_files(self.config.data_dir)  # (an erasure a crash interrupted: erasure.py)
        ship_log = ship_log_for(self.config)
        self.store = ColumnStore(self.config.data_dir, StoreConfig(
            max_head_events=self.config.max_events,
            retention_ms=self.config.local_retention_ms,
            dedup_window_ms=self.config.dedup_window_ms, fsync=self.config.fsync,
            column_cache_bytes=self.config.column_cache_mb << 20,
            wal_floor=None if ship_log is None else ship_log.floor))
        # With ClickHouse holding the history: its connection and the WAL shipper.
        self.clickhouse: ClickHouseMode | None = None
        if ship_log is not None:
            try:
                wal = self.store.wal
                assert wal is not None  # (ship_log_for required a data directory)
                self.clickhouse = open_mode(self.config, ship_log, lambda: wal.end)
            except BaseException:
                self.store.close()
                raise
        self.key_budget = self._key_budget()
        self.validator = EventValidator(limits, budget=self.key_budget)
        self.write_health = WriteHealth()
        self.metadata: Metadata = MetadataStore(self.config.data_dir)
        self.alert_lease: Lease | None = None
        if self.clickhouse is not None and shares_metadata(self.clickhouse):
            self.metadata, self.alert_lease = shared_metadata(self.config, self.clickhouse,
                                                              self.metadata)
        self.metrics = Registry()
        self._ingested = self.metrics.counter("rta_events_ingested_total",
                                              "Events accepted and durable.")
        self._duplicates = self.metrics.counter("rta_events_duplicate_total",
                                                "Events dropped as duplicates of a known id.")
        self.rejected_counter = self.metrics.counter("rta_events_rejected_total",
                                                     "Events rejected by validation.")
        self._fsync = self.metrics.histogram("rta_wal_fsync_seconds",
                                             "Write-ahead log write+fsync time per group commit.")
        self._group = self.metrics.histogram("rta_wal_group_size",
                                             "Requests sharing one fsync.",
                                             (1, 2, 4, 8, 16, 32, 64, 128))
        self.version = __version__
        self.started_at = time.time()
        self.rate = RateMeter()
        self._rejected = 0
        self._listeners: list[IngestListener] = []
        self._checks: list[Callable[[EventBatch], None]] = []  # before a batch is written
        self._background: list[BackgroundTask] = []
        self._pending: list[_Pending] = []
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._sealing = False
        self.services = Services.build(self)
        self.serving: Serving | None = None  # built by start_serving
        # identity links (persons.py): durable with their events, applied to every query
        self.persons = open_persons(self.store, self.config.data_dir, self.config.fsync)
        self.on_ingest(self.persons.on_batch)
        # groups (groups.py): malformed group fields refuse a batch before it is written
        self.groups = open_groups(self.store, self.config.data_dir, self.config.fsync)
        self._checks.append(self.groups.check)
        self.on_ingest(self.groups.on_batch)
        # person properties (profiles.py): after the links of the same batch
        self.profiles = open_profiles(self.persons, self.config.data_dir, self.config.fsync)
        self.persons.profiles = self.profiles
        self.on_ingest(self.profiles.on_batch)
        # erasure of persons (erasure.py): its cut and swap wait for `commit_lock`
        self.commit_lock = trio.Lock()
        self.erasure = Erasure(self)
        self.erasure.forgetters.append(self.profiles.forget)
        self.erasure.string_holders.append(self.profiles.held_strings)
        self.person_shipper: PersonShipper | None = None
        self.profile_shipper: ProfileShipper | None = None
        if self.clickhouse is not None:  # (the person mapping goes to ClickHouse too)
            shipper = self.clickhouse.shipper
            self.person_shipper = PersonShipper(self.clickhouse.ch, self.persons,
                                                lambda: shipper.touch(*ALL_TIME))
            self.add_background(self.person_shipper.run)
            # (and the person properties, to `person_props`)
            self.profile_shipper = ProfileShipper(self.clickhouse.ch, self.profiles,
                                                  lambda: shipper.touch(*ALL_TIME))
            self.add_background(self.profile_shipper.run)
        if self.clickhouse is not None:
            shipper = self.clickhouse.shipper
            shipper.on_advance.append(self.store.release_wal)
            self.add_background(shipper.run)
            self.metrics.gauge("rta_clickhouse_lag_events", "Events read from the WAL and "
                               "not yet in ClickHouse.", lambda: shipper.pending_events)
            self.metrics.gauge("rta_clickhouse_lag_seconds", "Age of the oldest event "
                               "waiting to ship.", lambda: shipper.stats()["lagSeconds"])
            self.metrics.gauge("rta_clickhouse_backlog_bytes", "WAL bytes not yet shipped.",
                               lambda: shipper.backlog_bytes)
            self.metrics.gauge("rta_clickhouse_shipped_events", "Events shipped since start.",
                               lambda: shipper.shipped_events)
            self.metrics.gauge("rta_clickhouse_reachable", "1 while ClickHouse answers.",
                               lambda: float(shipper.reachable))
        self.erasure.resume()
        if self.alert_lease is not None:
            lease = self.alert_lease
            self.add_background(lease.run)
            self.metrics.gauge("rta_alert_lease_held", "1 while this daemon evaluates alerts "
                               "(it holds the alerts lease).", lambda: float(lease.held))

    @property
    def events_rejected(self) -> int:
        return self._rejected

    @events_rejected.setter
    def events_rejected(self, value: int) -> None:
        """Callers add to it (`+= n`); the Prometheus counter follows."""
        self.rejected_counter.inc(value - self._rejected)
        self._rejected = value

    def _key_budget(self) -> KeyBudget:
        """The caps on distinct types and property columns, counting what is stored."""
        columns: set[str] = set()
        for block in self.store.snapshot().blocks:
            columns.update(block.props)
        return KeyBudget(self.config.max_property_keys, self.config.max_event_types,
                         columns, self.store.dicts.types.strings)

    # -- wiring ----------------------------------------------------------------------------

    def start_serving(self, options: ServingOptions | None = None) -> Serving:
        """Build the live hub, live metrics and alert evaluator, once per engine; later
        calls (a second app over the same engine) get the same services."""
        if self.serving is None:
            self.serving = Serving.build(self, options or ServingOptions())
        return self.serving

    @property
    def served(self) -> Serving:
        """The serving services; only the server reads them, after `start_serving`."""
        if self.serving is None:
            raise RuntimeError("the engine is not serving: call start_serving() first")
        return self.serving

    def on_ingest(self, listener: IngestListener) -> None:
        """Call `listener` with every batch once it is durable and visible to queries."""
        self._listeners.append(listener)

    def add_background(self, task: BackgroundTask) -> None:
        """Run `task` in the engine's nursery (started now if the engine is running)."""
        self._background.append(task)
        if self._nursery is not None:
            self._nursery.start_soon(task)

    def snapshot(self) -> Snapshot:
        """The store's snapshot, person-aware (`Persons.wrap`) once ids were linked."""
        return self.persons.wrap(self.store.snapshot())

    # -- ingest: the one path every transport takes (see rta.core.ingest) -------------------

    def admit(self, items: list[Any], *, partial: bool, now: int,
              size_bound: int | None = None, exact: Callable[[], list[Any]] | None = None,
              hint: str = HTTP_PARTIAL_HINT) -> Admitted:
        """Validate a batch (column-wise, else event by event over `exact()`), count the
        rejected events, and refuse the whole batch with `invalid_batch` unless `partial`."""
        batch, rejected = validate_many(self.validator, items, now, size_bound, exact)
        return self._admitted(batch, rejected, len(items), partial, hint)

    def admit_arrow(self, events: ArrowEvents, *, partial: bool, now: int,
                    hint: str = HTTP_PARTIAL_HINT) -> Admitted:
        """`admit` for an Arrow stream body (`arrow_ingest.read_stream`): the same checks,
        counters and `invalid_batch` error, rows indexed like events."""
        batch, rejected = validate_arrow(self.validator, events, now)
        return self._admitted(batch, rejected, events.rows, partial, hint)

    def _admitted(self, batch: EventBatch, rejected: list[Rejection], total: int,
                  partial: bool, hint: str) -> Admitted:
        if rejected:
            self.events_rejected += len(rejected)
            if not partial:
                raise invalid_batch(len(rejected), total, rejection_details(rejected), hint)
        return Admitted(batch, rejected)

    def admit_fast(self, items: list[Any], now: int | None = None,
                   size_bound: int | None = None) -> EventBatch | None:
        """The column-wise path alone: the batch when every event passes it, else None (the
        caller then takes `admit`/`admit_one`, which decide exactly and word the errors)."""
        return self.validator.fast_batch(items, now, size_bound)

    def admit_one(self, item: Any, now: int,
                  exact: Callable[[], Any] | None = None) -> EventBatch:
        """One event, or its own ValidationError (counted as one rejected event)."""
        batch = self.validator.fast_batch([item], now)
        if batch is not None:
            return batch
        try:
            return self.validator.validate_one(item if exact is None else exact(), now)
        except ValidationError:
            self.events_rejected += 1
            raise

    async def submit(self, items: list[Any], *, partial: bool, now: int,
                     size_bound: int | None = None,
                     exact: Callable[[], list[Any]] | None = None) -> Submitted:
        """`admit` then `ingest`: validated, deduplicated and durable before return."""
        admitted = self.admit(items, partial=partial, now=now, size_bound=size_bound,
                              exact=exact)
        result = await self.ingest(admitted.batch)
        return Submitted(result.accepted, result.duplicates, result.ids, admitted.batch.ids,
                         admitted.rejected)

    async def ingest(self, batch: EventBatch) -> IngestResult:
        """Durable before return: the batch shares one fsync with every batch waiting now."""
        check_person_updates(batch)  # (a malformed $set refuses the batch: nothing stored)
        if self.clickhouse is not None:
            self.clickhouse.check_backlog()
        for check in self._checks:  # (a refusal here leaves nothing applied)
            check(batch)
        kept, duplicates = self.store.reserve(batch)
        if duplicates:
            self._duplicates.inc(duplicates)
        if not len(kept):
            return IngestResult(0, duplicates, [])
        if self._nursery is None:  # not running under open_engine: commit synchronously
            self._commit([_Pending(kept, kept.to_json())], sync=True)
            return IngestResult(len(kept), duplicates, batch=kept)
        item = _Pending(kept, kept.to_json())
        self._pending.append(item)
        self._wake.set()
        await item.done.wait()
        if item.error is not None:
            raise item.error
        return IngestResult(len(kept), duplicates, batch=kept)

    def _commit(self, group: list[_Pending], sync: bool = False) -> None:
        try:
            self.store.write_wal([p.payload for p in group])
        except StorageError as exc:
            self.write_health.failed("wal", f"writes are failing: {exc.message}")
            for p in group:
                self.store.release(p.batch)
                p.error = exc
            if sync:
                raise
            return
        self.write_health.recovered("wal")
        self._apply(group)
        if sync:
            self.store.seal_if_full()

    def _apply(self, group: list[_Pending]) -> None:
        self.store.apply_many([p.batch for p in group])
        for p in group:
            self.key_budget.register(p.batch)
            self.rate.add(len(p.batch))
            self._ingested.inc(len(p.batch))
            for listener in self._listeners:
                listener(p.batch)

    async def _commit_loop(self) -> None:
        while True:
            if not self._pending:
                await self._wake.wait()
            self._wake = trio.Event()
            group, self._pending = self._pending, []
            if not group:
                continue
            async with self.commit_lock:  # (an erasure's cut and swap fall between groups)
                await self._commit_group(group)

    async def _commit_group(self, group: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            await trio.to_thread.run_sync(self.store.write_wal, [p.payload for p in group])
        except StorageError as exc:
            self.write_health.failed("wal", f"writes are failing: {exc.message}")
            for p in group:
                self.store.release(p.batch)
                p.error = exc
        else:
            self.write_health.recovered("wal")
            self._fsync.observe(time.perf_counter() - started)
            self._group.observe(len(group))
            self._apply(group)
        finally:
            for p in group:
                p.done.set()
        if self.store.needs_seal() and self._nursery is not None and not self._sealing:
            try:
                job = self.store.begin_seal()
            except OSError as exc:  # e.g. no space for a new WAL file: retry later
                log.error("could not start sealing a segment: %s", exc)
                self.write_health.failed("seal_start", f"could not start sealing: {exc}")
            else:
                self._nursery.start_soon(self._seal, job)

    async def _seal(self, job: SealJob) -> None:
        """Persist a segment; on failure (disk full) keep serving it from memory and retry."""
        self._sealing = True
        try:
            delay = 1.0
            while True:
                try:
                    await trio.to_thread.run_sync(self.store.run_seal, job)
                except OSError as exc:
                    log.error("sealing segment %d failed (%s); retrying in %.0f s", job.seq,
                              exc, delay)
                    self.write_health.failed("seal", f"sealing segment {job.seq} failed "
                                             f"({exc}); it is served from memory meanwhile")
                    await trio.sleep(delay)
                    delay = min(delay * 2, 60.0)
                    continue
                self.write_health.recovered("seal")
                self.store.finish_seal(job)
                return
        finally:
            self._sealing = False

    async def _probe_writes(self) -> None:
        """While writes are failing, try a small durable write every few seconds, so
        `/health` turns ok again when the disk recovers even if no client writes."""
        while True:
            await trio.sleep(2)
            if self.write_health.ok or self.config.data_dir is None:
                continue
            ok = await trio.to_thread.run_sync(probe_write, self.config.data_dir)
            if ok:
                self.write_health.recovered("wal", "seal_start")

    async def _retention_loop(self) -> None:
        while True:
            self.store.apply_retention()
            await trio.sleep(60)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._commit_loop)
            nursery.start_soon(self._retention_loop)
            nursery.start_soon(self._probe_writes)
            for task in self._background:
                nursery.start_soon(task)
            task_status.started()

    def close(self) -> None:
        try:
            if self.alert_lease is not None:
                try:
                    self.alert_lease.release()  # the next daemon takes over without a wait
                except RtaError as exc:
                    log.warning("could not release the alerts lease: %s", exc.message)
            self.store.close()
        finally:
            self.persons.close()
            self.groups.close()
            self.profiles.close()
            self.metadata.close()

    # -- introspection ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        store = self.store.stats()
        return {
            "aggregator": {
                "eventsProcessed": self.store.events_ingested,
                "eventsPerSecond": round(self.rate.rate(), 2),
                "eventsInMemory": store["headEvents"],
                "eventsStored": store["events"],
                "uniqueEventTypes": len(self.store.dicts.types),
                "totalUsers": self.persons.count_users(),  # (persons; raw ids: ?identity=raw)
                "eventsRejected": self.events_rejected,
            },
            "store": store,
            "limits": self.key_budget.stats(),
            **({"clickhouse": self.clickhouse.stats()} if self.clickhouse is not None else {}),
        }

    def health(self) -> dict[str, Any]:
        damaged = self.store.damaged
        reasons = self.write_health.reasons()
        if damaged:
            reasons.append(f"{len(damaged)} damaged segment(s) are not served")
        shipping = None
        if self.clickhouse is not None:
            shipping = self.clickhouse.stats()
            if not shipping["reachable"]:
                reasons.append(f"ClickHouse is unreachable: {shipping['lastError']}")
        return {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "version": self.version,
            "uptime": round(time.time() - self.started_at, 3),
            "store": {
                "dataDir": self.config.data_dir,
                "events": self.store.stats()["events"],
                "segments": len(self.store.segments),
                "damagedSegments": damaged,
                "persistent": self.config.data_dir is not None,
            },
            **({"clickhouse": shipping} if shipping is not None else {}),
        }


def shares_metadata(mode: ClickHouseMode) -> bool:
    """Whether other daemons can reach this database (a server, not in-process chdb)."""
    return not mode.ch.target.in_process


def shared_metadata(config: EngineConfig, mode: ClickHouseMode,
                    local: MetadataStore) -> tuple[Metadata, Lease]:
    """The metadata every daemon on the database shares (the data dir's own tokens still
    count: see ClickHouseMetadataStore) and this daemon's place in the alerts lease."""
    return (ClickHouseMetadataStore(mode.ch, config.clickhouse_cluster, local=local),
            Lease(mode.ch, ALERT_LEASE, cluster=config.clickhouse_cluster))


@asynccontextmanager
async def open_engine(config: EngineConfig | None = None) -> AsyncIterator[Engine]:
    """Run an engine for the duration of the block; on exit flush, seal and unlock."""
    engine = Engine(config)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            try:
                yield engine
            finally:
                # Let queued commits finish so every acknowledged request stays durable.
                with trio.move_on_after(10):
                    while engine._pending:
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
    finally:
        engine._nursery = None
        engine.close()
