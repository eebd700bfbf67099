"""The backend boundary: what a storage engine must answer for the query layer.

A `Backend` is one consistent view of the data (the embedded engine: one snapshot), so every
part of a query reads the same events. The neutral layer parses requests into typed specs,
resolves time ranges and saved segments, keys the result cache and does the pure maths (A/B
statistics); the backend computes the partial aggregates below over its own storage. A second
backend (ClickHouse) implements the same methods; see docs/architecture.md, "Backend boundary".

Thread rule: build a `QueryContext` where the query is accepted (the event loop: it takes
the snapshot), then use it and its backend from the query's worker thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rta.core.queries.analytics_results import (
    GroupedCount,
    SeriesData,
    TopData,
    UniqueRows,
)
from rta.core.queries.behaviour_results import (
    AbExposures,
    CohortResult,
    FunnelResult,
    SegmentResult,
)
from rta.core.queries.behaviour_specs import AbTestQuery, CohortQuery, FunnelQuery, SegmentQuery
from rta.core.queries.stickiness_results import LifecycleResult, StickinessResult
from rta.core.queries.stickiness_specs import LifecycleQuery, StickinessQuery

if TYPE_CHECKING:  # (event_list builds on this module)
    from rta.core.queries.event_list import Cursor, EventPage
from rta.core.queries.buckets import Buckets
from rta.core.queries.filters import EventFilter
from rta.core.queries.paths_results import PathCounts
from rta.core.queries.paths_specs import PathsQuery
from rta.core.queries.query_warnings import Vocabulary
from rta.core.queries.web_results import DimensionRows, VisitTotals
from rta.core.queries.web_specs import VisitSpec

SegmentResolver = Callable[[str], np.ndarray]  # saved segment name -> members (KeyError)


class Backend(Protocol):
    """One consistent view of the data, safe to use from the query's worker thread."""

    @property
    def version(self) -> int:
        """The data version this view reads (the result cache's invalidation clock)."""

    def changed_since(self, version: int, start: int | None, end: int | None) -> bool:
        """Whether events in [start, end) landed (or were dropped) after `version`, in the
        live data: the result cache serves an answer only while this is False."""

    def time_bounds(self) -> tuple[int, int] | None:
        """Earliest and latest event timestamp, or None without data."""

    def check_numeric(self, prop: str, field: str) -> None:
        """400 (naming `field`) when `prop` holds values but none of them numbers."""

    def vocabulary(self) -> Vocabulary:
        """Event types ever stored and each property's value kinds (`number`, `string`,
        `boolean`), for the warnings on misspelt names (`query_warnings`); must be cheap
        (metadata, not a scan), since every query asks."""

    def total_events(self) -> int:
        """Every stored event (the dashboards' empty-store hint)."""

    def property_kinds(self, event_type: str | None, key: str,
                       numeric: bool = False) -> set[str] | None:
        """Value kinds ('i', 'f', 's', 'b') of `key` on `event_type` events (any event if
        None): None when there are no such events, empty when none carries the key. With
        `numeric`, the answer may stop at the first numeric kind found (the question is
        only whether the key can be aggregated)."""

    def known_properties(self, event_type: str | None) -> dict[str, set[str]] | None:
        """Property key -> value kinds on `event_type` events (any if None); None without
        such events. For the dashboards' 'known:' lists, so it may scan."""

    # -- analytics ---------------------------------------------------------------------------
    def series(self, flt: EventFilter, buckets: Buckets, aggregation: str,
               metric: str | None, group_by: str | None, limit: int) -> SeriesData:
        """`aggregation` per bucket (plus the top `limit` groups of `group_by`)."""

    def count(self, flt: EventFilter) -> int:
        """Matching events."""

    def count_groups(self, flt: EventFilter, group_by: str, limit: int) -> GroupedCount:
        """Matching events per value of `group_by` (a property, type or userId)."""

    def unique_users(self, flt: EventFilter) -> tuple[int, int]:
        """(distinct users, matching events) exactly."""

    def unique_series(self, flt: EventFilter, buckets: Buckets) -> tuple[int, UniqueRows]:
        """Exact distinct users per bucket, and over the whole range."""

    def unique_approx(self, flt: EventFilter, buckets: Buckets | None,
                      precision: int) -> tuple[list[float], float, int]:
        """HyperLogLog estimates per bucket, for the whole range, and the events matched."""

    def top(self, flt: EventFilter, prop: str, n: int, by_users: bool) -> TopData:
        """The `n` most frequent values of `prop` (by events or by distinct users)."""

    def heatmap(self, flt: EventFilter, measure: str, metric: str | None,
                offset_ms: int) -> np.ndarray:
        """168 values, weekday (Mon = 0) x hour of day in local time (`offset_ms` east of
        UTC): `count` events, `unique_users` distinct users, or the metric's `sum`, `avg`,
        `min`, `max`; NaN where a cell has no value (avg, min, max)."""

    def timestamps(self, flt: EventFilter, metric: str | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        """Matching events' timestamps (int64, any order) and, with `metric`, its numeric
        value per event (float64, NaN where missing): the raw rows alerts bucket their own
        way (priming, backtests)."""

    def events(self, flt: EventFilter, limit: int, cursor: Cursor | None) -> EventPage:
        """The newest `limit` matching events older than `cursor` (by timestamp, then the
        last to arrive first), rendered as the API shows them, and the next page's cursor."""

    # -- behaviour (semantics: docs/statistics.md) --------------------------------------------
    def funnel(self, q: FunnelQuery) -> FunnelResult:
        """A funnel whose saved segment is resolved (`q.segment_users`)."""

    def cohort(self, q: CohortQuery, members: np.ndarray | None) -> CohortResult:
        """The retention grid, restricted to `members` when given."""

    def ab_exposures(self, q: AbTestQuery, members: np.ndarray | None) -> AbExposures:
        """Per-variant exposures, conversions and metric moments; the statistics over them
        are pure maths (`rta.core.queries.abtest`)."""

    def segment(self, q: SegmentQuery) -> SegmentResult:
        """Evaluate a segment definition: members, universe, a sample of user ids."""

    def paths(self, q: PathsQuery, members: np.ndarray | None) -> PathCounts:
        """Every unit's path walked and counted as transitions (restricted to `members`);
        the neutral layer groups and totals them (`queries.paths_results.build`)."""

    def stickiness(self, q: StickinessQuery, members: np.ndarray | None) -> StickinessResult:
        """Users by the number of grid periods in which they did the event (only `members`
        when given)."""

    def lifecycle(self, q: LifecycleQuery, members: np.ndarray | None) -> LifecycleResult:
        """New, returning, resurrecting and dormant users per grid period (only `members`
        when given)."""

    # -- groups (docs/people.md, "Groups") ------------------------------------------------------
    def for_group(self, group_type: str) -> Backend:
        """This view with each event's *user* replaced by the key of the `group_type` group
        its `$groups` names (none where it names none): every user count of the returned
        backend (unique users, funnels, retention) counts groups."""

    def group_stats(self, group_type: str) -> list[tuple[str, int, int, int]]:
        """(key, events, first ts, last ts) of every group of `group_type` events name."""

    # -- web analytics (visits and pageviews: docs/web.md) -------------------------------------
    def web_totals(self, spec: VisitSpec) -> VisitTotals:
        """Visitors, visits, pageviews, bounces and summed duration of the spec's visits."""

    def web_breakdown(self, spec: VisitSpec, dimension: str, limit: int) -> DimensionRows:
        """The top `limit` values of a web dimension (`web_specs.DIMENSIONS`), ranked by
        `web_results.rank_rows`."""


@dataclass(frozen=True)
class QueryContext:
    """Everything a query needs to run: the data, saved segments, the clock.

    Build it where the query is accepted (it is cheap: a snapshot) and run the query in a
    worker thread; segment resolution happens there, inside the query's limiter and timeout.
    """

    backend: Backend
    segments: SegmentResolver | None
    now: int
    group_types: Callable[[], frozenset[str]] | None = None  # None: not checked
