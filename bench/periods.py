"""Stickiness and lifecycle cases for `python -m bench behaviour`: the rta request bodies and
DuckDB SQL computing the same answer (whole UTC days, first-ever from all history), and a
check that both answers agree before anything is timed."""

from __future__ import annotations

from typing import Any

from rta.core.queries.timeparse import DAY


def stickiness_body(event: str, first_day: int, last_day: int) -> dict[str, Any]:
    return {"eventType": event, "interval": "day", "startTime": first_day * DAY,
            "endTime": (last_day + 1) * DAY - 1}


def stickiness_sql(event: str, first_day: int, last_day: int) -> str:
    return f"""
SELECT n, count(*) FROM (
    SELECT userId, count(DISTINCT timestamp // {DAY}) AS n FROM events
    WHERE type = '{event}' AND userId IS NOT NULL
      AND timestamp >= {first_day * DAY} AND timestamp < {(last_day + 1) * DAY}
    GROUP BY userId)
GROUP BY n ORDER BY n"""


def lifecycle_sql(event: str, first_day: int, last_day: int) -> str:
    return f"""
WITH a AS (SELECT DISTINCT userId AS u, timestamp // {DAY} AS p FROM events
           WHERE type = '{event}' AND userId IS NOT NULL
             AND timestamp < {(last_day + 1) * DAY}),
w AS (SELECT p, min(p) OVER (PARTITION BY u) AS fp,
             lag(p) OVER (PARTITION BY u ORDER BY p) AS pp,
             lead(p) OVER (PARTITION BY u ORDER BY p) AS np FROM a)
SELECT p, CASE WHEN p = fp THEN 0 WHEN pp = p - 1 THEN 1 ELSE 2 END AS st, count(*)
FROM w WHERE p BETWEEN {first_day} AND {last_day} GROUP BY ALL
UNION ALL
SELECT p + 1, 3, count(*) FROM w
WHERE (np IS NULL OR np <> p + 1) AND p + 1 BETWEEN {first_day} AND {last_day} GROUP BY ALL"""


def same_stickiness(ours: dict[str, Any], rows: list[tuple[Any, ...]]) -> bool:
    want = dict(rows)
    return [r["users"] for r in ours["stickiness"]] == [
        int(want.get(k, 0)) for k in range(1, ours["periods"] + 1)]


def same_lifecycle(ours: dict[str, Any], rows: list[tuple[Any, ...]], first_day: int) -> bool:
    statuses = ("new", "returning", "resurrecting", "dormant")
    want = [[0, 0, 0, 0] for _ in ours["periods"]]
    for p, st, n in rows:
        want[int(p) - first_day][int(st)] = int(n) if st < 3 else -int(n)
    return [[p[s] for s in statuses] for p in ours["periods"]] == want


def check(engine: Any, con: Any, first_day: int, last_day: int, end: int) -> str:
    """Run both queries through rta and DuckDB once; fail loudly when answers differ."""
    from rta.core.queries import behaviour

    body = stickiness_body("pageview", first_day, last_day)
    ours = behaviour.run_stickiness(engine, body, end)
    rows = con.execute(stickiness_sql("pageview", first_day, last_day)).fetchall()
    if not same_stickiness(ours, rows):
        raise SystemExit(f"stickiness differs from DuckDB:\n{ours}\n{rows}")
    body = stickiness_body("login", first_day, last_day)
    life = behaviour.run_lifecycle(engine, body, end)
    rows = con.execute(lifecycle_sql("login", first_day, last_day)).fetchall()
    if not same_lifecycle(life, rows, first_day):
        raise SystemExit(f"lifecycle differs from DuckDB:\n{life}\n{rows}")
    return (f"stickiness and lifecycle agree with DuckDB ({ours['totalUsers']:,} sticky "
            f"users, {life['totals']['new']:,} new)")
