"""`python -m bench behaviour`: funnels, retention, an A/B test, stickiness and lifecycle next
to DuckDB, same run.

Builds N demo events into a sealed on-disk store and times each behavioural query through the
public facade (`rta.core.queries.behaviour`; best of N after a first call, reported separately, that
builds the cached per-type user indexes) against equivalent DuckDB SQL on a native table
(2 threads): ASOF joins for funnels (the next step-k event after step k-1, per attempt), a
join on first entries for retention, first-exposure aggregation for the A/B test, and for
paths a `lead()` window pass (`bench/paths.py`, answer checked equal once per run),
distinct (user, day) counts for stickiness and window functions (lag/lead over each user's
active days) for lifecycle, whose answers are checked equal to rta's (`bench/periods.py`). Then
serves the engine over HTTP and reports end-to-end latency of a 3-step funnel.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from functools import partial
from typing import Any

from bench import paths as paths_bench
from bench import periods
from bench.common import (
    best_of,
    build_store,
    dataset_and_duckdb,
    dataset_args,
    duckdb_from_table,
    fetch_all,
    fmt_count,
    fmt_seconds,
    generate_events,
    http_latency,
    print_table,
    ratio,
)
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.queries import behaviour
from rta.core.queries.timeparse import DAY, HOUR

StepSpec = tuple[str, tuple[str, str] | None]  # (event type, required (property, value))
STEPS3: list[StepSpec] = [("pageview", None), ("click", ("category", "products")),
                          ("form_submit", None)]
STEPS5: list[StepSpec] = [("pageview", None), ("click", None), ("signup", None),
                          ("login", None), ("purchase", None)]


def funnel_body(steps: list[tuple[str, tuple[str, str] | None]], start: int, end: int,
                window: int) -> dict[str, Any]:
    return {"steps": [{"name": t, "eventType": t, **({"filters": {f[0]: f[1]}} if f else {})}
                      for t, f in steps],
            "startTime": start, "endTime": end - 1, "timeLimit": window}


def funnel_sql(steps: list[tuple[str, tuple[str, str] | None]], start: int, end: int,
               window: int) -> str:
    """Every step-1 event in range is an attempt; ASOF joins find the next step-k event
    after step k-1; a user reaches step k if any attempt does within the window."""
    ctes = []
    for i, (t, f) in enumerate(steps):
        cond = f"type = '{t}'"
        if f:
            cond += f' AND "properties.{f[0]}" = \'{f[1]}\''
        if i == 0:
            cond += f" AND timestamp >= {start} AND timestamp < {end}"
        else:
            cond += f" AND timestamp >= {start} AND timestamp < {end + window}"
        ctes.append(f"s{i} AS (SELECT userId AS u, timestamp AS ts FROM events WHERE {cond})")
    ctes.append("a0 AS (SELECT u, ts AS t0 FROM s0)")
    cols = "t0"
    for i in range(1, len(steps)):
        ctes.append(f"a{i} AS (SELECT a{i - 1}.u, {cols}, s{i}.ts AS t{i} FROM a{i - 1} "
                    f"ASOF LEFT JOIN s{i} ON a{i - 1}.u = s{i}.u AND s{i}.ts > a{i - 1}.t{i - 1})")
        cols += f", t{i}"
    last = len(steps) - 1
    counts = ["count(DISTINCT u)"]
    for k in range(1, len(steps)):
        cond = " AND ".join(f"t{j} <= t0 + {window}" for j in range(1, k + 1))
        counts.append(f"count(DISTINCT u) FILTER (WHERE {cond})")
    return f"WITH {', '.join(ctes)} SELECT {', '.join(counts)} FROM a{last}"


def retention_sql(entry: str, ret: str, start: int, end: int, length: int, periods: int,
                  horizon: int) -> str:
    return f"""
WITH firsts AS (SELECT userId AS u, min(timestamp) AS ft FROM events
                WHERE type = '{entry}' AND timestamp < {end} GROUP BY userId),
m AS (SELECT u, ft, (ft - {start}) // {length} AS c FROM firsts WHERE ft >= {start}),
r AS (SELECT m.c, (e.timestamp - {start}) // {length} - m.c AS n, m.u
      FROM events e JOIN m ON e.userId = m.u
      WHERE e.type = '{ret}' AND e.timestamp >= m.ft AND e.timestamp < {horizon})
SELECT c, n, count(DISTINCT u) FROM r WHERE n BETWEEN 0 AND {periods} GROUP BY c, n
UNION ALL SELECT c, -1, count(*) FROM m GROUP BY c
"""


ABTEST_SQL = """
WITH ex AS (SELECT userId AS u, arg_min("properties.variant", timestamp) AS v,
                   min(timestamp) AS t, count(DISTINCT "properties.variant") AS nv
            FROM events WHERE type = 'experiment_assigned' AND userId IS NOT NULL
            GROUP BY userId),
cv AS (SELECT ex.u, sum(coalesce(e."properties.revenue", 0)) AS rev
       FROM ex JOIN events e ON e.userId = ex.u AND e.type = 'conversion'
                AND e.timestamp >= ex.t
       WHERE ex.nv = 1 GROUP BY ex.u)
SELECT ex.v, count(*), count(cv.u), avg(coalesce(cv.rev, 0)), var_samp(coalesce(cv.rev, 0))
FROM ex LEFT JOIN cv USING (u) WHERE ex.nv = 1 GROUP BY ex.v
"""


def main(argv: list[str] | None = None) -> None:
    args = dataset_args("python -m bench behaviour", __doc__, repeat=3,
                        requests=20).parse_args(argv)

    table, end, con = dataset_and_duckdb(args)
    start = end - args.days * DAY
    ret_start = (end // DAY - args.days) * DAY
    last_day = (end - 1) // DAY
    first_day = last_day - args.days + 1
    cases: list[tuple[str, Callable[[Engine], Any], str]] = [
        ("3-step funnel, 1h window",
         lambda eng: behaviour.run_funnel(eng, funnel_body(STEPS3, start, end, HOUR), end),
         funnel_sql(STEPS3, start, end, HOUR)),
        ("5-step funnel, 1d window",
         lambda eng: behaviour.run_funnel(eng, funnel_body(STEPS5, start, end, DAY), end),
         funnel_sql(STEPS5, start, end, DAY)),
        (f"{args.days}-day daily retention (first_time)",
         lambda eng: behaviour.run_cohort(eng, {
             "entryEvent": "pageview", "retentionEvent": "login", "periods": args.days,
             "periodLength": DAY, "startTime": ret_start, "endTime": end - 1}, end),
         retention_sql("pageview", "login", ret_start, end, DAY, args.days, end + 1)),
        (f"A/B test, {args.users:,} users",
         lambda eng: behaviour.run_abtest(eng, {
             "eventType": "experiment_assigned", "variantProperty": "variant",
             "metricEvent": "conversion", "metricProperty": "revenue"}, end),
         ABTEST_SQL),
        paths_bench.case("pageview", start, end),
        (f"stickiness, pageview over {args.days} days",
         lambda eng: behaviour.run_stickiness(eng, periods.stickiness_body(
             "pageview", first_day, last_day), end),
         periods.stickiness_sql("pageview", first_day, last_day)),
        (f"lifecycle, login per day over {args.days} days",
         lambda eng: behaviour.run_lifecycle(eng, periods.stickiness_body(
             "login", first_day, last_day), end),
         periods.lifecycle_sql("login", first_day, last_day)),
    ]
    with tempfile.TemporaryDirectory(prefix="rta-bench-behaviour-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            rows: list[list[str]] = [["query", "rta", "DuckDB", "rta/DuckDB",
                                      "rta first call"]]
            for name, fn, sql in cases:
                # the first call pages in the memory-mapped columns and builds the per-type
                # user indexes of the sealed segments (kept while the segments live)
                first = best_of(partial(fn, engine), 1)
                ours = best_of(partial(fn, engine), args.repeat)
                con.execute(sql).fetchall()
                theirs = best_of(partial(fetch_all, con, sql), args.repeat)
                rows.append([name, fmt_seconds(ours), fmt_seconds(theirs),
                             ratio(ours, theirs), fmt_seconds(first)])
            if not paths_bench.same_answer(engine, con, "pageview", start, end):
                print("paths: rta and DuckDB disagree", file=sys.stderr)
            # the same answer (after timing, so no first call finds indexes it built)
            checks = periods.check(engine, con, first_day, last_day, end)
            body = funnel_body(STEPS3, start, end, HOUR)
            p50, p99 = http_latency(engine, "POST", "/queries/funnel", body, args.requests)
            rows.append(["HTTP POST /queries/funnel 3 steps p50 / p99",
                         f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "-", "-", "-"])
        finally:
            engine.close()
    print(checks)
    print_table(f"Behavioural queries, {fmt_count(args.events)} events, {args.users:,} users, "
                f"{args.days} days (best of {args.repeat})", rows)


def check(events: int = 200_000) -> None:
    """Cross-check rta's funnel counts against the SQL on generated data (not timed)."""
    table = generate_events(events, users=5_000, days=7)
    end = int(table.column("timestamp").to_numpy().max()) + 1
    start = end - 7 * DAY
    con = duckdb_from_table(table)
    with tempfile.TemporaryDirectory(prefix="rta-bench-check-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            for steps in (STEPS3, STEPS5):
                ours = behaviour.run_funnel(engine, funnel_body(steps, start, end, HOUR), end)
                theirs = con.execute(funnel_sql(steps, start, end, HOUR)).fetchone()
                print([s["count"] for s in ours["steps"]], list(theirs or ()))
        finally:
            engine.close()


if __name__ == "__main__":
    main()
