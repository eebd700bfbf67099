"""`python -m bench formulas`: formulas and period comparisons next to DuckDB, same run.

A formula is answered by its series' queries plus one vectorised pass over the buckets, so
it should cost no more than the sum of its series (the issue's target); this prints each
series alone, the formula, their ratio, and DuckDB computing the same per-bucket formula in
one SQL statement. Comparisons (`compare: previous_period`) cost one more query of the same
shape (plus one distinct count for unique users); DuckDB answers the same two figures.
The result cache is off, so every call computes.
"""

from __future__ import annotations

import tempfile
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
    print_table,
    ratio,
)
from rta.core import query_services
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.queries import analytics
from rta.core.queries import compare as cmp
from rta.core.queries import formula_query as fq
from rta.core.queries.analytics_specs import parse
from rta.core.queries.timeparse import DAY, HOUR


def _formula(engine: Engine, body: dict[str, Any], now: int) -> Any:
    ctx = query_services.context(engine, now)
    return fq.execute(fq.parse_formula_query(body, now), ctx)


def _single(engine: Engine, body: dict[str, Any], now: int) -> Any:
    ctx = query_services.context(engine, now)
    return analytics.execute(parse("aggregate", body, now), ctx)


def _both(engine: Engine, a: dict[str, Any], b: dict[str, Any], now: int) -> Any:
    """The two series as two requests would run them, back to back."""
    return _single(engine, a, now), _single(engine, b, now)


def _compared(engine: Engine, kind: str, body: dict[str, Any], now: int) -> Any:
    ctx = query_services.context(engine, now)
    q = parse(kind, body, now)
    r = analytics.execute(q, ctx)
    return cmp.compare(q, r, ctx)


def main(argv: list[str] | None = None) -> None:
    args = dataset_args("python -m bench formulas", __doc__, repeat=5,
                        requests=0).parse_args(argv)
    table, end, con = dataset_and_duckdb(args)
    start = end - args.days * DAY
    rng = {"startTime": start, "endTime": end - 1, "interval": HOUR}
    a = {"eventType": "purchase", **rng}
    b = {"eventType": "pageview", "aggregation": "unique_users", **rng}
    body = {"series": [{"name": "A", "eventType": "purchase"},
                       {"name": "B", "eventType": "pageview", "aggregation": "unique_users"}],
            "formula": "A / B * 100", **rng}
    formula_sql = (
        f"SELECT (timestamp - {start - start % HOUR}) // {HOUR} AS b, "
        "100.0 * count(*) FILTER (WHERE type = 'purchase') / nullif(count(DISTINCT userId) "
        f"FILTER (WHERE type = 'pageview'), 0) FROM events WHERE timestamp >= {start} AND "
        f"timestamp < {end} AND type IN ('purchase', 'pageview') GROUP BY b")
    week = end - 7 * DAY
    count_body = {"type": "pageview", "startTime": week, "endTime": end - 1,
                  "compare": "previous_period"}
    count_sql = (f"SELECT count(*) FILTER (WHERE timestamp >= {week}), count(*) FILTER "
                 f"(WHERE timestamp < {week}) FROM events WHERE type = 'pageview' AND "
                 f"timestamp >= {week - 7 * DAY} AND timestamp < {end}")
    users_sql = (f"SELECT count(DISTINCT userId) FILTER (WHERE timestamp >= {week}), "
                 f"count(DISTINCT userId) FILTER (WHERE timestamp < {week}), "
                 f"count(DISTINCT userId) FROM events WHERE type = 'pageview' AND "
                 f"timestamp >= {week - 7 * DAY} AND timestamp < {end}")
    with tempfile.TemporaryDirectory(prefix="rta-bench-formulas-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            now = end
            runs = [
                ("series A: count(purchase), 1h", partial(_single, engine, a, now), None),
                ("series B: unique_users(pageview), 1h", partial(_single, engine, b, now),
                 None),
                ("formula A / B * 100, 1h", partial(_formula, engine, body, now), formula_sql),
                ("A then B, one after the other", partial(_both, engine, a, b, now), None),
                ("count pageview 7d + previous period",
                 partial(_compared, engine, "count", {k: v for k, v in count_body.items()
                                                      if k != "compare"}, now), count_sql),
                ("unique users 7d + previous (McNemar)",
                 partial(_compared, engine, "unique-users", {
                     k: v for k, v in count_body.items() if k != "compare"}, now), users_sql),
            ]
            rows: list[list[str]] = [["query", "rta", "DuckDB", "rta/DuckDB"]]
            for _, fn, _ in runs:
                fn()  # warm: page in the memory-mapped columns
            # (series and formula interleaved, best of each: on a busy machine, timing them
            # one after the other would compare different moments' load)
            timings: dict[str, float] = {name: float("inf") for name, _, _ in runs[:4]}
            for _ in range(args.repeat):
                for name, fn, _ in runs[:4]:
                    timings[name] = min(timings[name], best_of(fn, 1))
            for name, fn, sql in runs:
                ours = timings[name] if name in timings else best_of(fn, args.repeat)
                if sql is None:
                    rows.append([name, fmt_seconds(ours), "-", "-"])
                    continue
                con.execute(sql).fetchall()
                theirs = best_of(partial(fetch_all, con, sql), args.repeat)
                rows.append([name, fmt_seconds(ours), fmt_seconds(theirs), ratio(ours, theirs)])
            parts = timings[runs[0][0]] + timings[runs[1][0]]
            rows.append(["formula / (best A + best B)",
                         f"{timings[runs[2][0]] / parts:.2f}x", "-", "-"])
            rows.append(["formula / (A then B)  (target <= 1)",
                         f"{timings[runs[2][0]] / timings[runs[3][0]]:.2f}x", "-", "-"])
        finally:
            engine.close()
    print_table(f"Formulas and comparisons, {fmt_count(args.events)} events, {args.users:,} "
                f"users, {args.days} days (best of {args.repeat})", rows)


if __name__ == "__main__":
    main()
