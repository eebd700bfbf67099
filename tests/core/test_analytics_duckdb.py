"""Analytics results against DuckDB SQL over the same events (an independent engine)."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.queries import analytics
from tests.core.test_analytics import BASE, STEP, make_engine

events_st = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["pageview", "click", "purchase"]),
    "userId": st.sampled_from(["u1", "u2", "u3", "u4", "ü5"]),
    "timestamp": st.one_of(st.integers(0, 30).map(lambda i: BASE + i * STEP),
                           st.integers(0, 30 * STEP).map(lambda o: BASE + o)),
    "properties": st.fixed_dictionaries({}, optional={
        "m": st.one_of(st.integers(-1000, 1000), st.floats(-1e4, 1e4, allow_nan=False)),
        "g": st.sampled_from(["/a", "/b", "/ü", "/页", ""])})}), min_size=1, max_size=60)
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def to_duckdb(events: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    def num(e: dict[str, Any]) -> float | None:
        v = e["properties"].get("m")
        return None if v is None else float(v)

    table = pa.table({
        "ts": pa.array([e["timestamp"] for e in events], pa.int64()),
        "type": [e["type"] for e in events],
        "user_id": [e["userId"] for e in events],
        "m": pa.array([num(e) for e in events], pa.float64()),
        "g": pa.array([e["properties"].get("g") for e in events], pa.string())})
    con = duckdb.connect()
    con.register("events", table)
    return con


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@SETTINGS
@given(events=events_st, interval=st.sampled_from([STEP, 5 * STEP, 10 * STEP]))
def test_metric_series_match_duckdb(events: list[dict[str, Any]], interval: int) -> None:
    eng = make_engine(events)
    con = to_duckdb(events)
    start, end = BASE, BASE + 31 * STEP
    rows = con.execute(f"""
        SELECT (ts - {start}) // {interval} AS b, count(m), sum(m), avg(m), min(m), max(m),
               quantile_cont(m, 0.5), quantile_cont(m, 0.9), quantile_cont(m, 0.95),
               quantile_cont(m, 0.99), count(*), count(DISTINCT user_id)
        FROM events WHERE type = 'pageview' AND ts >= {start} AND ts < {end}
        GROUP BY b ORDER BY b""").fetchall()
    sql = {r[0]: r[1:] for r in rows}
    aggs = ["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99"]
    for i, agg in enumerate(aggs):
        body = {"eventType": "pageview", "metric": "m", "aggregation": agg,
                "interval": interval, "startTime": start, "endTime": end - 1}
        out = analytics.run_aggregate(eng, body)
        for b in out["buckets"]:
            idx = (b["timestamp"] - start) // interval
            row = sql.get(idx)
            n = row[0] if row else 0
            assert b["count"] == n
            expected = row[i] if row and n else (0 if agg in ("count", "sum") else None)
            assert close(b["value"], expected), (agg, b, expected)
    for agg, col in (("count", 9), ("unique_users", 10)):
        out = analytics.run_aggregate(eng, {"eventType": "pageview", "aggregation": agg,
                                            "interval": interval, "startTime": start,
                                            "endTime": end - 1})
        got = {(b["timestamp"] - start) // interval: b["value"] for b in out["buckets"]
               if b["value"]}
        assert got == {k: v[col] for k, v in sql.items()}


@SETTINGS
@given(events=events_st)
def test_top_and_counts_match_duckdb(events: list[dict[str, Any]]) -> None:
    eng = make_engine(events)
    con = to_duckdb(events)
    rows = con.execute("""SELECT g, count(*) AS c, count(DISTINCT user_id)
                          FROM events WHERE g IS NOT NULL GROUP BY g""").fetchall()
    out = analytics.run_top(eng, {"property": "g", "n": 100})
    assert {(v["value"], v["count"], v["uniqueUsers"]) for v in out["values"]} == set(rows)
    by_type = dict(con.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
    counted = analytics.run_count(eng, {"groupBy": "type"})
    assert {g["key"]: g["count"] for g in counted["groups"]} == by_type
    (users,) = con.execute("SELECT count(DISTINCT user_id) FROM events "
                           "WHERE type <> 'click'").fetchone() or (0,)
    got = analytics.run_unique_users(eng, {"type": "pageview,purchase"})
    assert got["uniqueUsers"] == users


@SETTINGS
@given(events=events_st, offset=st.integers(1, STEP - 1))
def test_unaligned_range_counts_only_events_inside_it(events: list[dict[str, Any]],
                                                      offset: int) -> None:
    """Partial first/last buckets: epoch-aligned stamps, but only in-range events count."""
    eng = make_engine(events)
    con = to_duckdb(events)
    start, end = BASE + offset, BASE + 20 * STEP + offset
    interval = 5 * STEP
    rows = con.execute(f"""
        SELECT ts // {interval} * {interval} AS b, count(*) FROM events
        WHERE ts >= {start} AND ts < {end} GROUP BY b""").fetchall()
    out = analytics.run_aggregate(eng, {"interval": interval, "startTime": start,
                                        "endTime": end - 1})
    assert (out["startTime"], out["endTime"]) == (start, end - 1)
    assert {b["timestamp"]: b["count"] for b in out["buckets"] if b["count"]} == dict(rows)
    assert out["total"]["count"] == sum(c for _, c in rows)
    assert all(b["timestamp"] % interval == 0 for b in out["buckets"])
