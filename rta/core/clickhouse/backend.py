"""`ClickHouseBackend`: the query layer's `Backend` answered by ClickHouse SQL.

Each query family is a module of SQL builders over a `View` (analytics_sql, eventlist_sql,
funnel_sql, retention_sql, abtest_sql, segment_sql); this class only routes. Saved segment
members travel as user id strings (the embedded engine's travel as dictionary codes): each
backend reads only members it produced itself.

Thread rule: build anywhere; use from the query's worker thread (blocking I/O).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.filter_sql import Params
from rta.core.clickhouse.schema import EVENTS, PERSON_LINKS
from rta.core.clickhouse.view import Barrier, View, has_person_props, person_kinds
from rta.core.events import BOOL, FLOAT, INT, STR
from rta.core.identity import RAW, identity_mode
from rta.core.person_props import PREFIX as PERSON_PREFIX
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
from rta.core.queries.params import require_numeric
from rta.core.queries.paths_results import PathCounts
from rta.core.queries.paths_specs import PathsQuery
from rta.core.queries.query_warnings import Vocabulary
from rta.core.queries.stickiness_results import LifecycleResult, StickinessResult
from rta.core.queries.stickiness_specs import LifecycleQuery, StickinessQuery
from rta.core.queries.web_results import DimensionRows, VisitTotals
from rta.core.queries.web_specs import VisitSpec

KIND_NAMES = {INT: "number", FLOAT: "number", STR: "string", BOOL: "boolean"}
VOCABULARY_TTL_S = 5.0


class _Remembered:
    """Answers read from small metadata tables or a column scan that every query asks for
    (time bounds, the vocabulary), kept per database and table while the shipping daemon's
    data version is unchanged, and for at most VOCABULARY_TTL_S (other daemons' data)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], tuple[float, int, Any]] = {}

    def get(self, key: tuple[str, ...], version: int, compute: Callable[[], Any]) -> Any:
        with self._lock:
            found = self._values.get(key)
        if found is not None and found[1] == version and \
                time.monotonic() - found[0] < VOCABULARY_TTL_S:
            return found[2]
        value = compute()
        with self._lock:
            self._values[key] = (time.monotonic(), version, value)
        return value


_remembered = _Remembered()


class ClickHouseBackend:
    """Answers typed queries with ClickHouse SQL over `table` (default `events`)."""

    def __init__(self, ch: ClickHouse, table: str = EVENTS, version: int = 0,
                 changes: Callable[[int, int | None, int | None], bool] | None = None,
                 ready: Barrier | None = None, clock: Callable[[], int] | None = None,
                 persons: bool | None = None) -> None:
        # persons: count persons (identity links applied); default from the request's
        # identity mode (`?identity=raw` counts the ids as sent)
        self.raw = identity_mode.get() == RAW if persons is None else not persons
        self.view = View(ch, table, ready, self._key_kinds, persons=not self.raw,
                         person_props=self._person_props, linked=self._linked)
        self._has_person_props: bool | None = None
        self._version = version
        self._changes = changes
        self._clock = clock  # the shipper's version now (after the read-your-writes wait)
        self._cache_key = (ch.target.url, ch.database, table)

    # -- data clock and metadata --------------------------------------------------------------
    @property
    def version(self) -> int:
        # raw-id answers carry negated versions: never served to a person-aware query
        return -self._version - 1 if self.raw else self._version

    def changed_since(self, version: int, start: int | None, end: int | None) -> bool:
        """By the shipping daemon's clock (`changes`); without one, nothing cached is
        trusted."""
        if self._changes is None or (version < 0) != self.raw:
            return True
        return self._changes(-version - 1 if self.raw else version, start, end)

    def _remember(self, what: str, compute: Callable[[], Any]) -> Any:
        """`compute()`, or its remembered answer; without a data clock (no shipping daemon
        to say when data changed) always computed."""
        if self.view.ready is not None:
            self.view.ready()  # (read-your-writes first: the clock then covers those events)
        if self._clock is None:
            return compute()
        return _remembered.get((*self._cache_key, what), self._clock(), compute)

    def time_bounds(self) -> tuple[int, int] | None:
        def scan() -> tuple[int, int] | None:
            (n, lo, hi), = self.view.rows(
                f"SELECT count(), min(ts), max(ts) FROM {self.view.events}")
            return None if not n else (int(lo), int(hi))
        bounds: tuple[int, int] | None = self._remember("bounds", scan)
        return bounds

    def _kinds(self) -> tuple[Vocabulary, dict[str, set[str]]]:
        def read() -> tuple[Vocabulary, dict[str, set[str]]]:
            db = f"`{self.view.ch.database}`"
            types = frozenset(str(t) for t, in self.view.rows(
                f"SELECT DISTINCT type FROM {db}.event_types"))
            raw: dict[str, set[str]] = {}
            for key_name, kind in self.view.rows(
                    f"SELECT DISTINCT key, kind FROM {db}.property_kinds"):
                raw.setdefault(str(key_name), set()).add(str(kind))
            vocab = Vocabulary(types, {k: frozenset(KIND_NAMES.get(x, x) for x in v)
                                       for k, v in raw.items()})
            return vocab, raw
        kinds: tuple[Vocabulary, dict[str, set[str]]] = self._remember("vocabulary", read)
        return kinds

    def _person_props(self) -> bool:
        """Whether person properties exist (remembered by the data clock, and for this
        backend's life: one query's statements all read the same source)."""
        if self._has_person_props is None:
            found: bool = self._remember("person_props", lambda: has_person_props(self.view.ch))
            self._has_person_props = found
        return self._has_person_props

    def _key_kinds(self, key: str) -> frozenset[str] | None:
        """A property's stored kinds, for `View.kinds_of`: only with a data clock, where the
        vocabulary is remembered (otherwise reading it would cost more than it saves)."""
        if self._clock is None:
            return None
        kinds = self._kinds()[1].get(key)
        return None if kinds is None else frozenset(kinds)

    def _linked(self) -> bool:
        """Whether `person_links` has a row, for `View.linked`: remembered with a data clock
        (links shipped by this daemon bump it; another daemon's first link is seen within
        VOCABULARY_TTL_S); without one, assumed (the join is always right, only slower)."""
        if self._clock is None:
            return True

        def probe() -> bool:
            (found,), = self.view.rows(f"SELECT count() FROM (SELECT 1 FROM "
                                       f"`{self.view.ch.database}`.`{PERSON_LINKS}` LIMIT 1)")
            return bool(found)
        linked: bool = self._remember("linked", probe)
        return linked

    def check_numeric(self, prop: str, field: str) -> None:
        kinds = set(self._kinds()[1].get(prop, set()))
        if prop.startswith(PERSON_PREFIX) and self._person_props():
            kinds |= person_kinds(self.view, prop)
        require_numeric(kinds, prop, field)

    def vocabulary(self) -> Vocabulary:
        return self._kinds()[0]

    def total_events(self) -> int:
        from rta.core.clickhouse import dashboard_sql
        return dashboard_sql.total_events(self.view)

    def property_kinds(self, event_type: str | None, key: str,
                       numeric: bool = False) -> set[str] | None:
        from rta.core.clickhouse import dashboard_sql
        return dashboard_sql.property_kinds(self.view, event_type, key)

    def known_properties(self, event_type: str | None) -> dict[str, set[str]] | None:
        from rta.core.clickhouse import dashboard_sql
        return dashboard_sql.known_properties(self.view, event_type)

    def heatmap(self, flt: EventFilter, measure: str, metric: str | None,
                offset_ms: int) -> np.ndarray:
        from rta.core.clickhouse import dashboard_sql
        return dashboard_sql.heatmap(self.view, flt, measure, metric, offset_ms)

    def timestamps(self, flt: EventFilter, metric: str | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        from rta.core.clickhouse import dashboard_sql
        return dashboard_sql.timestamps(self.view, flt, metric)

    # -- groups ------------------------------------------------------------------------------
    def for_group(self, group_type: str) -> ClickHouseBackend:
        import copy
        other = copy.copy(self)
        other.view = dataclasses.replace(self.view, group=group_type)
        return other

    def group_stats(self, group_type: str) -> list[tuple[str, int, int, int]]:
        from rta.core.clickhouse.view import group_key_sql
        rows = self.view.rows(
            f"SELECT k, count(), min(ts), max(ts) FROM (SELECT {group_key_sql(group_type)} "
            f"AS k, ts FROM {self.view.events}) WHERE k IS NOT NULL GROUP BY k")
        return [(str(k), int(c), int(lo), int(hi)) for k, c, lo, hi in rows]

    # -- analytics ---------------------------------------------------------------------------
    def series(self, flt: EventFilter, buckets: Buckets, aggregation: str,
               metric: str | None, group_by: str | None, limit: int) -> SeriesData:
        from rta.core.clickhouse import analytics_sql
        return analytics_sql.series(self.view, flt, buckets, aggregation, metric, group_by,
                                    limit)

    def count(self, flt: EventFilter) -> int:
        params = Params()
        (n,), = self.view.rows(f"SELECT count() FROM {self.view.events} "
                               f"WHERE {self.view.where(flt, params)}", params)
        return int(n)

    def count_groups(self, flt: EventFilter, group_by: str, limit: int) -> GroupedCount:
        from rta.core.clickhouse import analytics_sql
        return analytics_sql.count_groups(self.view, flt, group_by, limit)

    def unique_users(self, flt: EventFilter) -> tuple[int, int]:
        params = Params()
        # (a GROUP BY user, then counting its rows: 3x faster than uniqExact over Nullable
        # strings in ClickHouse 26, and as exact)
        (users, n), = self.view.rows(
            f"SELECT countIf(user IS NOT NULL), sum(c) FROM (SELECT user, count() AS c FROM "
            f"{self.view.events} WHERE {self.view.where(flt, params)} GROUP BY user)", params)
        return int(users), int(n or 0)

    def unique_series(self, flt: EventFilter, buckets: Buckets) -> tuple[int, UniqueRows]:
        from rta.core.clickhouse import analytics_sql
        return analytics_sql.unique_series(self.view, flt, buckets)

    def unique_approx(self, flt: EventFilter, buckets: Buckets | None,
                      precision: int) -> tuple[list[float], float, int]:
        from rta.core.clickhouse import analytics_sql
        return analytics_sql.unique_approx(self.view, flt, buckets, precision)

    def top(self, flt: EventFilter, prop: str, n: int, by_users: bool) -> TopData:
        from rta.core.clickhouse import analytics_sql
        return analytics_sql.top(self.view, flt, prop, n, by_users)

    def events(self, flt: EventFilter, limit: int, cursor: Cursor | None) -> EventPage:
        from rta.core.clickhouse import eventlist_sql
        return eventlist_sql.list_events(self.view, flt, limit, cursor)

    # -- behaviour ---------------------------------------------------------------------------
    def funnel(self, q: FunnelQuery) -> FunnelResult:
        from rta.core.clickhouse import funnel_sql
        return funnel_sql.result(self.view, q)

    def cohort(self, q: CohortQuery, members: np.ndarray | None) -> CohortResult:
        from rta.core.clickhouse import retention_sql
        return retention_sql.result(self.view, q, members)

    def ab_exposures(self, q: AbTestQuery, members: np.ndarray | None) -> AbExposures:
        from rta.core.clickhouse import abtest_sql
        return abtest_sql.exposures(self.view, q, members)

    def paths(self, q: PathsQuery, members: np.ndarray | None) -> PathCounts:
        from rta.core.clickhouse import paths_sql
        return paths_sql.counts(self.view, q, members)

    def segment(self, q: SegmentQuery) -> SegmentResult:
        from rta.core.clickhouse import segment_sql
        return segment_sql.result(self.view, q)

    def stickiness(self, q: StickinessQuery, members: np.ndarray | None) -> StickinessResult:
        from rta.core.clickhouse import stickiness_sql
        return stickiness_sql.result(self.view, q, members)

    def lifecycle(self, q: LifecycleQuery, members: np.ndarray | None) -> LifecycleResult:
        from rta.core.clickhouse import lifecycle_sql
        return lifecycle_sql.result(self.view, q, members)

    # -- web analytics -------------------------------------------------------------------------
    def web_totals(self, spec: VisitSpec) -> VisitTotals:
        from rta.core.clickhouse import web_sql
        return web_sql.totals(self.view, spec)

    def web_breakdown(self, spec: VisitSpec, dimension: str, limit: int) -> DimensionRows:
        from rta.core.clickhouse import web_sql
        return web_sql.breakdown(self.view, spec, dimension, limit)
