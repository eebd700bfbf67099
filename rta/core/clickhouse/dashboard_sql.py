"""What dashboards, alerts and property checks ask of a backend, in ClickHouse SQL: the
weekday x hour heatmap, raw timestamps for alert backtests, and which property kinds events
of a type carry.

Semantics mirror the embedded engine (`rta.core.embedded.heatmap`, `.raw_rows`,
`.properties`); weekday and hour use floor division, so times before 1970 land in the right
cell as they do in numpy.

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rta.core.clickhouse.filter_sql import Params, numeric_expr
from rta.core.clickhouse.rows import MAP_COLUMNS
from rta.core.clickhouse.view import View
from rta.core.queries.filters import EventFilter
from rta.core.queries.timeparse import DAY, HOUR

CELLS = 168


def total_events(view: View) -> int:
    (n,), = view.rows(f"SELECT count() FROM {view.events}")
    return int(n)


def heatmap(view: View, flt: EventFilter, measure: str, metric: str | None,
            offset_ms: int) -> np.ndarray:
    """See `Backend.heatmap`."""
    params = Params()
    local = f"(ts + {params.add(int(offset_ms), 'Int64')})"
    days = f"toInt64(floor({local} / {DAY}))"
    cell = f"(((({days} + 3) % 7) + 7) % 7) * 24 + intDiv({local} - {days} * {DAY}, {HOUR})"
    where = view.where(flt, params)
    if measure == "unique_users":
        value, extra = "toFloat64(uniqExact(user))", "AND user IS NOT NULL"
    elif metric is None:
        value, extra = "toFloat64(count())", ""
    else:
        num = numeric_expr(params.add(metric, "String"))
        agg = {"sum": "sum(v)", "avg": "avg(v)", "min": "min(v)", "max": "max(v)"}.get(
            measure, "toFloat64(count())")
        rows = view.rows(f"SELECT {cell} AS c, {agg} FROM (SELECT ts, {num} AS v FROM "
                         f"{view.events} WHERE ({where})) WHERE v IS NOT NULL GROUP BY c",
                         params)
        return _cells(rows, np.nan if measure in ("avg", "min", "max") else 0.0)
    rows = view.rows(f"SELECT {cell} AS c, {value} FROM {view.events} WHERE ({where}) {extra} "
                     "GROUP BY c", params)
    return _cells(rows, 0.0)


def _cells(rows: list[tuple[Any, ...]], empty: float) -> np.ndarray:
    out = np.full(CELLS, empty, dtype=np.float64)
    for c, v in rows:
        out[int(c)] = float(v)
    return out


def timestamps(view: View, flt: EventFilter, metric: str | None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """See `Backend.timestamps`."""
    params = Params()
    where = view.where(flt, params)
    if metric is None:
        table = view.arrow(f"SELECT ts FROM {view.events} WHERE {where}", params)
        return table.column("ts").to_numpy().astype(np.int64), None
    num = numeric_expr(params.add(metric, "String"))
    table = view.arrow(f"SELECT ts, {num} AS v FROM {view.events} WHERE {where}", params)
    values = table.column("v").to_numpy(zero_copy_only=False).astype(np.float64)
    return table.column("ts").to_numpy().astype(np.int64), values


def property_kinds(view: View, event_type: str | None, key: str) -> set[str] | None:
    """See `Backend.property_kinds`."""
    params = Params()
    k = params.add(key, "String")
    if event_type is None:
        (n,), = view.rows(f"SELECT count() FROM (SELECT 1 FROM {view.events} LIMIT 1)")
        if not n:
            return None
        found = view.rows(f"SELECT DISTINCT kind FROM `{view.ch.database}`.property_kinds "
                          f"WHERE key = {k}", params)
        return {str(kind) for kind, in found}
    t = params.add(event_type, "String")
    flags = ", ".join(f"max(mapContains({col}, {k}))" for col in MAP_COLUMNS.values())
    (n, *present), = view.rows(f"SELECT count(), {flags} FROM {view.events} WHERE type = {t}",
                               params)
    if not n:
        return None
    return {kind for kind, hit in zip(MAP_COLUMNS, present, strict=True) if hit}


def known_properties(view: View, event_type: str | None) -> dict[str, set[str]] | None:
    """See `Backend.known_properties`."""
    params = Params()
    where = "1"
    if event_type is not None:
        where = f"type = {params.add(event_type, 'String')}"
    (n,), = view.rows(f"SELECT count() FROM (SELECT 1 FROM {view.events} WHERE {where} "
                      "LIMIT 1)", params)
    if not n:
        return None
    out: dict[str, set[str]] = {}
    if event_type is None:
        for key, kind in view.rows(f"SELECT DISTINCT key, kind FROM "
                                   f"`{view.ch.database}`.property_kinds"):
            out.setdefault(str(key), set()).add(str(kind))
        return out
    selects = " UNION ALL ".join(
        f"SELECT DISTINCT arrayJoin(mapKeys({col})) AS key, '{kind}' AS kind "
        f"FROM {view.events} WHERE {where}" for kind, col in MAP_COLUMNS.items())
    for key, kind in view.rows(selects, params):
        out.setdefault(str(key), set()).add(str(kind))
    return out
