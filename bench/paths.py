"""Paths next to DuckDB (part of `python -m bench behaviour`), and the DuckDB SQL that
computes the same walk transitions rta's paths do (the tests check rta against it too).

`duckdb_sql(source, ...)` reads `source`, a SELECT of (unit, ts, arrival, name), and returns
(step, name, next name or NULL, paths) rows: window functions number each unit's events by
(ts, arrival), mark breaks (the first event, or a gap over the window), find the anchor (the
first start point, the last end point, or the first event), keep the anchor's run, drop
repeats when asked and take `steps` nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def duckdb_sql(source: str, *, point: str | None, backward: bool, steps: int, window_ms: int,
               collapse: bool) -> str:
    if point is None:
        anchor = "SELECT unit, 1 AS arn FROM s GROUP BY unit"
    else:
        pick = "max" if backward else "min"
        anchor = (f"SELECT unit, {pick}(rn) AS arn FROM s WHERE name = {_text(point)} "
                  "GROUP BY unit")
    side = "<=" if backward else ">="
    direction = "DESC" if backward else "ASC"
    keep = "WHERE prev IS NULL OR name <> prev" if collapse else ""
    return f"""
WITH e AS (
    SELECT unit, ts, name,
           row_number() OVER (PARTITION BY unit ORDER BY ts, arrival) AS rn,
           ts - lag(ts) OVER (PARTITION BY unit ORDER BY ts, arrival) AS gap
    FROM ({source})),
s AS (
    SELECT *, sum(CASE WHEN gap IS NULL OR gap > {int(window_ms)} THEN 1 ELSE 0 END)
              OVER (PARTITION BY unit ORDER BY rn ROWS UNBOUNDED PRECEDING) AS seg
    FROM e),
a AS ({anchor}),
w AS (
    SELECT s.unit, s.rn, s.name FROM s JOIN a ON s.unit = a.unit
    JOIN s AS x ON x.unit = a.unit AND x.rn = a.arn
    WHERE s.seg = x.seg AND s.rn {side} a.arn),
c AS (SELECT *, lag(name) OVER (PARTITION BY unit ORDER BY rn) AS prev FROM w),
k AS (
    SELECT unit, name, row_number() OVER (PARTITION BY unit ORDER BY rn {direction}) AS step
    FROM c {keep}),
l AS (
    SELECT step, name, lead(name) OVER (PARTITION BY unit ORDER BY step) AS nxt
    FROM k WHERE step <= {int(steps)})
SELECT step, name, nxt, count(*) AS paths FROM l GROUP BY step, name, nxt
"""


def duckdb_forward_sql(source: str, *, point: str, steps: int, window_ms: int) -> str:
    """The bench's case (forward from a start point, no collapsing) as DuckDB does it best:
    one window pass reads the next `steps - 1` events of every event (`lead`), the first
    start-point event per unit is kept (`QUALIFY`), and each step's transitions are counted
    where every gap so far is within the window."""
    w = int(window_ms)
    leads = []
    for k in range(1, steps):
        leads += [f"lead(name, {k}) OVER w AS n{k}", f"lead(ts, {k}) OVER w AS t{k}"]
    cols = ", ".join(["unit", "ts AS t0", "arrival", "name AS n0", *leads])
    oks = []
    for k in range(1, steps):
        prev = f"ok{k - 1} AND " if k > 1 else ""
        oks.append(f"{prev}n{k} IS NOT NULL AND t{k} - t{k - 1} <= {w} AS ok{k}")
    firsts = (f"SELECT *{', ' if oks else ''}{', '.join(oks)} FROM e WHERE n0 = {_text(point)} "
              "QUALIFY row_number() OVER (PARTITION BY unit ORDER BY t0, arrival) = 1")
    parts = []
    for k in range(steps):
        nxt = f"CASE WHEN ok{k + 1} THEN n{k + 1} END" if k + 1 < steps else "NULL"
        where = f"WHERE ok{k}" if k else ""
        parts.append(f"SELECT {k + 1} AS step, n{k} AS name, {nxt} AS nxt, count(*) AS paths "
                     f"FROM a {where} GROUP BY ALL")
    return (f"WITH e AS (SELECT {cols} FROM ({source}) "
            f"WINDOW w AS (PARTITION BY unit ORDER BY ts, arrival)), a AS ({firsts}) "
            + " UNION ALL ".join(parts))


def transitions(con: Any, sql: str) -> list[tuple[int, str, str | None, int]]:
    return sorted(((int(k), str(a), None if b is None else str(b), int(c))
                   for k, a, b, c in con.execute(sql).fetchall()),
                  key=lambda r: (r[0], r[1], r[2] or "", r[3]))


def body(point: str, start: int, end: int, steps: int = 5) -> dict[str, Any]:
    return {"startPoint": point, "steps": steps, "startTime": start, "endTime": end - 1}


def source_sql(start: int, end: int) -> str:
    """Users' events in [start, end) as (unit, ts, arrival, name): the bench table's rows
    are in arrival order (bulk loaded in order), so `rowid` is the arrival rank."""
    return (f"SELECT userId AS unit, timestamp AS ts, rowid AS arrival, type AS name "
            f"FROM events WHERE userId IS NOT NULL AND timestamp >= {int(start)} "
            f"AND timestamp < {int(end)}")


def case(point: str, start: int, end: int, steps: int = 5
         ) -> tuple[str, Callable[[Any], Any], str]:
    """(name, rta call on an engine, DuckDB SQL) for `python -m bench behaviour`."""
    from rta.core.queries import behaviour

    def ours(engine: Any) -> Any:
        return behaviour.run_query(engine, {"type": "paths",
                                            "config": body(point, start, end, steps)}, end)

    sql = duckdb_forward_sql(source_sql(start, end), point=point, steps=steps,
                             window_ms=30 * 60_000)
    return f"paths, {steps} steps from {point}", ours, sql


def same_answer(engine: Any, con: Any, point: str, start: int, end: int,
                steps: int = 5) -> bool:
    """Whether rta's walk transitions equal DuckDB's (checked once per run, not timed)."""
    from rta.core.embedded import paths
    from rta.core.queries.paths_specs import parse_paths

    q = parse_paths(body(point, start, end, steps), end)
    mine = sorted(paths.counts(engine.snapshot(), q, None).transitions,
                  key=lambda r: (r[0], r[1], r[2] or "", r[3]))
    sql = duckdb_forward_sql(source_sql(start, end), point=point, steps=steps,
                             window_ms=q.window_ms)
    return mine == transitions(con, sql)
