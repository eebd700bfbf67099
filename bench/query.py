"""`python -m bench query`: analytics queries next to DuckDB on the same data, same run.

Builds N demo events (skewed users, 10 types, D days) into a sealed on-disk store, opens an
engine over it with the result cache off (so every call computes), and times each query
through the public facade (`rta.core.queries.analytics`) against the equivalent DuckDB SQL on a
native table (2 threads). Then serves the engine over HTTP and reports end-to-end latency
percentiles of a simple aggregation (cache off, and cache on).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.common import (
    best_of,
    build_store,
    dataset_and_duckdb,
    dataset_args,
    fetch_all,
    fmt_count,
    fmt_seconds,
    http_latency,
    print_table,
    ratio,
)
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.queries import analytics
from rta.core.queries.query_cache import QueryCache
from rta.core.queries.timeparse import DAY

FIVE_MIN = 300_000


def queries(end: int, days: int) -> list[tuple[str, dict[str, Any], Callable[..., dict[str, Any]],
                                          str]]:
    """(name, params, facade function, equivalent SQL)."""
    start = end - days * DAY
    week = end - 7 * DAY
    return [
        ("count by type (all)", {"groupBy": "type"}, analytics.run_count,
         "SELECT type, count(*) FROM events GROUP BY type"),
        ("count pageview, 7d", {"type": "pageview", "startTime": week, "endTime": end - 1},
         analytics.run_count,
         f"SELECT count(*) FROM events WHERE type = 'pageview' AND timestamp >= {week} "
         f"AND timestamp < {end}"),
        (f"5m series count, {days}d", {"interval": FIVE_MIN, "startTime": start,
                                       "endTime": end - 1}, analytics.run_aggregate,
         f"SELECT (timestamp - {start}) // {FIVE_MIN} AS b, count(*) FROM events "
         f"WHERE timestamp >= {start} AND timestamp < {end} GROUP BY b"),
        (f"5m series pageview count, {days}d",
         {"eventType": "pageview", "interval": FIVE_MIN, "startTime": start,
          "endTime": end - 1}, analytics.run_aggregate,
         f"SELECT (timestamp - {start}) // {FIVE_MIN} AS b, count(*) FROM events "
         f"WHERE type = 'pageview' AND timestamp >= {start} AND timestamp < {end} GROUP BY b"),
        (f"5m series avg(duration), {days}d",
         {"eventType": "pageview", "metric": "duration", "aggregation": "avg",
          "interval": FIVE_MIN, "startTime": start, "endTime": end - 1},
         analytics.run_aggregate,
         f"SELECT (timestamp - {start}) // {FIVE_MIN} AS b, avg(\"properties.duration\") "
         f"FROM events WHERE type = 'pageview' AND timestamp >= {start} AND timestamp < {end} "
         "AND \"properties.duration\" IS NOT NULL GROUP BY b"),
        ("1d series p95(duration)",
         {"eventType": "pageview", "metric": "duration", "aggregation": "p95",
          "interval": DAY, "startTime": start, "endTime": end - 1}, analytics.run_aggregate,
         f"SELECT (timestamp - {start}) // {DAY} AS b, "
         "quantile_cont(\"properties.duration\", 0.95) FROM events WHERE type = 'pageview' "
         f"AND timestamp >= {start} AND timestamp < {end} GROUP BY b"),
        ("unique users, 7d", {"startTime": week, "endTime": end - 1},
         analytics.run_unique_users,
         f"SELECT count(DISTINCT userId) FROM events WHERE timestamp >= {week} "
         f"AND timestamp < {end}"),
        ("DAU series, 7d", {"startTime": week, "endTime": end - 1, "interval": "1d"},
         analytics.run_unique_users,
         f"SELECT (timestamp - {week}) // {DAY} AS b, count(DISTINCT userId) FROM events "
         f"WHERE timestamp >= {week} AND timestamp < {end} GROUP BY b"),
        ("top-10 pages (+users)", {"type": "pageview", "property": "page", "n": 10},
         analytics.run_top,
         "SELECT \"properties.page\", count(*) AS c, count(DISTINCT userId) FROM events "
         "WHERE type = 'pageview' AND \"properties.page\" IS NOT NULL GROUP BY 1 "
         "ORDER BY c DESC LIMIT 10"),
    ]


def main(argv: list[str] | None = None) -> None:
    args = dataset_args("python -m bench query", __doc__, repeat=5,
                        requests=200).parse_args(argv)

    table, end, con = dataset_and_duckdb(args)
    with tempfile.TemporaryDirectory(prefix="rta-bench-query-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            rows: list[list[str]] = [["query", "rta", "DuckDB", "rta/DuckDB"]]
            for name, params, fn, sql in queries(end, args.days):
                fn(engine, params)  # warm: page in the memory-mapped columns
                ours = best_of(partial(fn, engine, params), args.repeat)
                con.execute(sql).fetchall()
                theirs = best_of(partial(fetch_all, con, sql), args.repeat)
                rows.append([name, fmt_seconds(ours), fmt_seconds(theirs),
                             ratio(ours, theirs)])
            simple = {"type": "pageview", "startTime": end - DAY, "endTime": end - 1}
            p50, p99 = http_latency(engine, "GET", "/analytics/count", simple, args.requests,
                                    warmup=20)
            rows.append(["HTTP GET /analytics/count 24h (no cache) p50 / p99",
                         f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "-", "-"])
            series = {"interval": "5m", "startTime": end - args.days * DAY,
                      "endTime": end - 1}
            p50, p99 = http_latency(engine, "GET", "/analytics/aggregate", series,
                                    args.requests // 4, warmup=20)
            rows.append([f"HTTP GET /analytics/aggregate 5m/{args.days}d (no cache) p50 / p99",
                         f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "-", "-"])
            cached = Engine.__new__(Engine)  # same engine, cache switched on
            cached.__dict__.update(engine.__dict__)
            cached.config = EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=30_000)
            cached.services = dataclasses.replace(engine.services,
                                                  query_cache=QueryCache(30_000))
            p50, p99 = http_latency(cached, "GET", "/analytics/count", simple, args.requests,
                                    warmup=20)
            rows.append(["HTTP GET /analytics/count 24h (cached) p50 / p99",
                         f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "-", "-"])
        finally:
            engine.close()
    print_table(f"Analytics queries, {fmt_count(args.events)} events, {args.users:,} users, "
                f"{args.days} days (best of {args.repeat})", rows)


if __name__ == "__main__":
    main()
