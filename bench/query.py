"""`python -m bench query`: analytics queries next to DuckDB on the same data, same run.

Builds N demo events (skewed users, 10 types, D days) into a sealed on-disk store, opens an
engine over it with the result cache off (so every call computes), and times each query
through the public facade (`rta.core.analytics`) against the equivalent DuckDB SQL on a
native table (2 threads). Then serves the engine over HTTP and reports end-to-end latency
percentiles of a simple aggregation (cache off, and cache on).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.common import (
    best_of,
    build_store,
    duckdb_from_table,
    fmt_count,
    fmt_seconds,
    generate_events,
    print_table,
    ratio,
)
from rta.core import analytics
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.timeparse import DAY

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


def http_latency(engine: Engine, path: str, params: dict[str, Any],
                 requests: int) -> tuple[float, float]:
    """(p50, p99) seconds of GET `path` against a real hypercorn server over `engine`."""
    import httpx
    import trio

    from rta.daemon import serve_app

    samples: list[float] = []

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            done = trio.Event()
            binds = await nursery.start(partial(serve_app, engine, "127.0.0.1", 0, False,
                                                done.wait))
            async with httpx.AsyncClient(base_url=binds[0]) as client:
                for i in range(requests + 20):
                    t0 = time.perf_counter()
                    r = await client.get(path, params=params)
                    elapsed = time.perf_counter() - t0
                    r.raise_for_status()
                    if i >= 20:  # warm-up
                        samples.append(elapsed)
            done.set()

    trio.run(run)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1,
                                                   int(len(samples) * 0.99))]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench query", description=__doc__)
    ap.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args(argv)

    table = generate_events(args.events, users=args.users, days=args.days)
    end = int(table.column("timestamp").to_numpy().max()) + 1
    con = duckdb_from_table(table)
    with tempfile.TemporaryDirectory(prefix="rta-bench-query-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            rows: list[list[str]] = [["query", "rta", "DuckDB", "rta/DuckDB"]]
            for name, params, fn, sql in queries(end, args.days):
                fn(engine, params)  # warm: page in the memory-mapped columns
                ours = best_of(lambda fn=fn, params=params: fn(engine, params), args.repeat)
                con.execute(sql).fetchall()
                theirs = best_of(lambda sql=sql: con.execute(sql).fetchall(), args.repeat)
                rows.append([name, fmt_seconds(ours), fmt_seconds(theirs),
                             ratio(ours, theirs)])
            simple = {"type": "pageview", "startTime": end - DAY, "endTime": end - 1}
            p50, p99 = http_latency(engine, "/analytics/count", simple, args.requests)
            rows.append(["HTTP GET /analytics/count 24h (no cache) p50 / p99",
                         f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "-", "-"])
            series = {"interval": "5m", "startTime": end - args.days * DAY,
                      "endTime": end - 1}
            p50, p99 = http_latency(engine, "/analytics/aggregate", series, args.requests // 4)
            rows.append([f"HTTP GET /analytics/aggregate 5m/{args.days}d (no cache) p50 / p99",
                         f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "-", "-"])
            cached = Engine.__new__(Engine)  # same engine, cache switched on
            cached.__dict__.update(engine.__dict__)
            cached.extensions = {}
            cached.config = EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=30_000)
            p50, p99 = http_latency(cached, "/analytics/count", simple, args.requests)
            rows.append(["HTTP GET /analytics/count 24h (cached) p50 / p99",
                         f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "-", "-"])
        finally:
            engine.close()
    print_table(f"Analytics queries, {fmt_count(args.events)} events, {args.users:,} users, "
                f"{args.days} days (best of {args.repeat})", rows)


if __name__ == "__main__":
    main()
