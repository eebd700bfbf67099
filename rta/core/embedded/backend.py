"""`EmbeddedBackend`: the query layer's `Backend` over one snapshot of the embedded store.

Thread rule: built on any thread (taking a snapshot is cheap and thread-safe), then used by
one query in its worker thread; blocks are immutable, so nothing here locks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rta.core.embedded import (
    abtest,
    analytics,
    counts,
    eventlist,
    funnel,
    heatmap,
    lifecycle,
    properties,
    raw_rows,
    retention,
    segments,
    stickiness,
    visits,
)
from rta.core.embedded.segments import check_numeric
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.events import BOOL, FLOAT, INT, STR
from rta.core.persons import RAW, identity_mode
from rta.core.queries.analytics_results import GroupedCount, SeriesData, TopData, UniqueRows
from rta.core.queries.behaviour_results import (
    AbExposures,
    CohortResult,
    FunnelResult,
    SegmentResult,
)
from rta.core.queries.behaviour_specs import AbTestQuery, CohortQuery, FunnelQuery, SegmentQuery
from rta.core.queries.buckets import Buckets
from rta.core.queries.event_list import Cursor, EventPage
from rta.core.queries.filters import EventFilter
from rta.core.queries.paths_results import PathCounts
from rta.core.queries.paths_specs import PathsQuery
from rta.core.queries.query_warnings import Vocabulary
from rta.core.queries.stickiness_results import LifecycleResult, StickinessResult
from rta.core.queries.stickiness_specs import LifecycleQuery, StickinessQuery
from rta.core.queries.web_results import DimensionRows, VisitTotals
from rta.core.queries.web_specs import VisitSpec

if TYPE_CHECKING:
    from rta.core.engine import Engine

KIND_NAMES = {INT: "number", FLOAT: "number", STR: "string", BOOL: "boolean"}
_last_vocabulary: list[tuple[object, int, Vocabulary]] = []


def vocabulary(snap: Snapshot) -> Vocabulary:
    """The types dictionary and the union of the blocks' property keys (each block keeps its
    keys in its metadata), remembered for the latest snapshot version: cheap per query."""
    last = _last_vocabulary[:1]  # (one read: another thread may replace it)
    if last and last[0][0] is snap.dicts and last[0][1] == snap.version:
        return last[0][2]
    kinds: dict[str, set[str]] = {}
    for block in snap.blocks:
        if block.n:
            for prop, ks in block.property_keys.items():
                kinds.setdefault(prop, set()).update(KIND_NAMES.get(k, k) for k in ks)
    vocab = Vocabulary(frozenset(snap.dicts.types.strings),
                       {k: frozenset(v) for k, v in kinds.items()})
    _last_vocabulary[:] = [(snap.dicts, snap.version, vocab)]
    return vocab


class EmbeddedBackend:
    """Answers typed queries with the numpy kernels over `snap`; `engine` supplies the live
    store (for cache invalidation) and saved segment documents."""

    def __init__(self, engine: Engine, snap: Snapshot) -> None:
        self.engine = engine
        self.snap = snap
        # counting raw distinct ids (`?identity=raw`): versions are negated, so cached
        # answers of one identity mode are never served to the other
        self.raw = identity_mode.get() == RAW

    @property
    def version(self) -> int:
        return -self.snap.version - 1 if self.raw else self.snap.version

    def changed_since(self, version: int, start: int | None, end: int | None) -> bool:
        if (version < 0) != self.raw:
            return True
        return self.engine.store.changed_since(-version - 1 if self.raw else version,
                                               start, end)

    def time_bounds(self) -> tuple[int, int] | None:
        return self.snap.time_bounds()

    def check_numeric(self, prop: str, field: str) -> None:
        check_numeric(self.snap, prop, field)

    def vocabulary(self) -> Vocabulary:
        return vocabulary(self.snap)

    def total_events(self) -> int:
        return self.snap.total_events

    def property_kinds(self, event_type: str | None, key: str,
                       numeric: bool = False) -> set[str] | None:
        return properties.property_kinds(self.snap, event_type, key, numeric)

    def known_properties(self, event_type: str | None) -> dict[str, set[str]] | None:
        return properties.known_properties(self.snap, event_type)

    def heatmap(self, flt: EventFilter, measure: str, metric: str | None,
                offset_ms: int) -> np.ndarray:
        return heatmap.heatmap(self.snap, flt, measure, metric, offset_ms)

    def timestamps(self, flt: EventFilter, metric: str | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        return raw_rows.timestamps(self.snap, flt, metric)

    # -- analytics ---------------------------------------------------------------------------
    def series(self, flt: EventFilter, buckets: Buckets, aggregation: str,
               metric: str | None, group_by: str | None, limit: int) -> SeriesData:
        return analytics.series(self.snap, flt, buckets, aggregation, metric, group_by, limit)

    def events(self, flt: EventFilter, limit: int, cursor: Cursor | None) -> EventPage:
        return eventlist.list_events(self.snap, flt, limit, cursor)

    def count(self, flt: EventFilter) -> int:
        return counts.count_events(flt, self.snap)

    def count_groups(self, flt: EventFilter, group_by: str, limit: int) -> GroupedCount:
        return analytics.count_groups(self.snap, flt, group_by, limit)

    def unique_users(self, flt: EventFilter) -> tuple[int, int]:
        return counts.unique_users(flt, self.snap)

    def unique_series(self, flt: EventFilter, buckets: Buckets) -> tuple[int, UniqueRows]:
        return analytics.unique_series(self.snap, flt, buckets)

    def unique_approx(self, flt: EventFilter, buckets: Buckets | None,
                      precision: int) -> tuple[list[float], float, int]:
        return analytics.unique_approx(self.snap, flt, buckets, precision)

    def top(self, flt: EventFilter, prop: str, n: int, by_users: bool) -> TopData:
        return analytics.top(self.snap, flt, prop, n, by_users)

    # -- behaviour ---------------------------------------------------------------------------
    def funnel(self, q: FunnelQuery) -> FunnelResult:
        return funnel.result(self.snap, q)

    def cohort(self, q: CohortQuery, members: np.ndarray | None) -> CohortResult:
        return retention.result(self.snap, q, members)

    def ab_exposures(self, q: AbTestQuery, members: np.ndarray | None) -> AbExposures:
        return abtest.exposures(self.snap, q, members)

    def paths(self, q: PathsQuery, members: np.ndarray | None) -> PathCounts:
        from rta.core.embedded import paths
        return paths.counts(self.snap, q, members)

    def segment(self, q: SegmentQuery) -> SegmentResult:
        return segments.result(self.snap, q)

    def stickiness(self, q: StickinessQuery, members: np.ndarray | None) -> StickinessResult:
        return stickiness.result(self.snap, q, members)

    def lifecycle(self, q: LifecycleQuery, members: np.ndarray | None) -> LifecycleResult:
        return lifecycle.result(self.snap, q, members)

    # -- groups ------------------------------------------------------------------------------
    def for_group(self, group_type: str) -> EmbeddedBackend:
        return EmbeddedBackend(self.engine, self.engine.groups.wrap(self.snap, group_type))

    def group_stats(self, group_type: str) -> list[tuple[str, int, int, int]]:
        snap = self.engine.groups.wrap(self.snap, group_type)
        users, stamps = [], []
        for block in snap.blocks:
            if block.n:
                has = np.flatnonzero(block.user >= 0)
                users.append(block.user[has])
                stamps.append(block.ts[has])
        if not users or not sum(len(u) for u in users):
            return []
        user = np.concatenate(users)
        ts = np.concatenate(stamps)
        n = int(user.max()) + 1
        count = np.bincount(user, minlength=n)
        first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(first, user, ts)
        np.maximum.at(last, user, ts)
        codes = np.flatnonzero(count)
        keys = snap.dicts.users.decode(codes).tolist()
        return list(zip(keys, count[codes].tolist(), first[codes].tolist(),
                        last[codes].tolist(), strict=True))

    # -- web analytics -------------------------------------------------------------------------
    def web_totals(self, spec: VisitSpec) -> VisitTotals:
        return visits.totals(self.snap, spec)

    def web_breakdown(self, spec: VisitSpec, dimension: str, limit: int) -> DimensionRows:
        return visits.breakdown(self.snap, spec, dimension, limit)
