"""Typed web analytics results: what backends compute and what the API returns.

Backends return raw sums (`VisitTotals`, `DimensionRows`); the rates, averages, shares and
changes against the previous period are pure maths here, written once for both engines.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VisitTotals:
    """Sums over the visits of a range (visits with at least one pageview)."""

    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    bounces: int = 0
    duration_ms: int = 0  # summed over visits

    def metrics(self) -> dict[str, float | int | None]:
        return {"visitors": self.visitors, "visits": self.visits, "pageviews": self.pageviews,
                "views_per_visit": _ratio(self.pageviews, self.visits, 2),
                "bounce_rate": _pct(self.bounces, self.visits),
                "visit_duration": _ratio(self.duration_ms / 1000, self.visits, 1)}


@dataclass(frozen=True)
class DimensionRow:
    value: str | None
    visitors: int
    visits: int
    pageviews: int
    bounces: int


@dataclass(frozen=True)
class DimensionRows:
    """The top rows of one dimension (visitors desc, ties by value; None sorts last) and how
    many distinct values there were."""

    rows: tuple[DimensionRow, ...]
    values: int
    visitors: int  # over the whole range, for shares


def _ratio(a: float, b: int, digits: int) -> float | None:
    return round(a / b, digits) if b else None


def _pct(a: int, b: int) -> float | None:
    return round(100.0 * a / b, 1) if b else None


def change(name: str, now: float | int | None, before: float | int | None) -> float | None:
    """Relative change in percent; for `bounce_rate` (already a percentage) the difference
    in points. None when either side has no value or the previous one is zero."""
    if now is None or before is None:
        return None
    if name == "bounce_rate":
        return round(now - before, 1)
    if before == 0:
        return None
    return round(100.0 * (now - before) / before, 1)


@dataclass(frozen=True)
class WebResult:
    """GET /analytics/web."""

    start_time: int | None
    end_time: int | None
    current: VisitTotals
    previous: VisitTotals | None
    previous_range: tuple[int, int] | None
    realtime: int
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        now = self.current.metrics()
        before = self.previous.metrics() if self.previous is not None else None
        metrics = {name: {"value": value,
                          "previous": before[name] if before else None,
                          "change": change(name, value, before[name]) if before else None}
                   for name, value in now.items()}
        return {"startTime": self.start_time, "endTime": self.end_time,
                "previousStartTime": self.previous_range[0] if self.previous_range else None,
                "previousEndTime": self.previous_range[1] if self.previous_range else None,
                "metrics": metrics, "realtime": {"visitors": self.realtime},
                "cached": self.cached}


@dataclass(frozen=True)
class BreakdownResult:
    """GET /analytics/web/{dimension}."""

    dimension: str
    start_time: int | None
    end_time: int | None
    data: DimensionRows
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        total = self.data.visitors
        rows = [{"value": r.value, "visitors": r.visitors, "visits": r.visits,
                 "pageviews": r.pageviews, "bounce_rate": _pct(r.bounces, r.visits),
                 "share": round(100.0 * r.visitors / total, 1) if total else None}
                for r in self.data.rows]
        return {"dimension": self.dimension, "startTime": self.start_time,
                "endTime": self.end_time, "visitors": total, "values": self.data.values,
                "rows": rows, "cached": self.cached}


@dataclass(frozen=True)
class RealtimeResult:
    """GET /analytics/web/realtime: visitors in the last five minutes."""

    visitors: int
    window_ms: int
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"visitors": self.visitors, "windowMs": self.window_ms, "cached": self.cached}


def rank_rows(rows: list[DimensionRow], limit: int) -> tuple[DimensionRow, ...]:
    """Visitors desc, ties by value (None last): the order both backends' rows take."""
    rows.sort(key=lambda r: (-r.visitors, r.value is None, r.value or ""))
    return tuple(rows[:limit])
