"""`python -m bench person_props`: queries filtered and broken down by person properties.

The demo data set (10M events, 100k users by default) gets one property update per user
(`plan` among free/pro/team, `seats` 1-50), applied through the profile store as ingest
would. Each query is timed with `person.plan`/`person.seats` (best of N after a first
call, which builds the person columns), next to the same query without the person
predicate (what the person lookup adds), and DuckDB answering over the same events joined
to a persons table (the counts checked equal).
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.common import (
    best_of,
    build_store,
    dataset_args,
    duckdb_from_table,
    fmt_count,
    fmt_seconds,
    generate_events,
    print_table,
    ratio,
)
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.person_props import Update
from rta.core.queries import analytics

PLANS = ("free", "pro", "team")


def main(argv: list[str] | None = None) -> None:
    ap = dataset_args("python -m bench person_props", __doc__, repeat=3, requests=0)
    args = ap.parse_args(argv)
    table = generate_events(args.events, users=args.users, days=args.days)
    users = pc.unique(table.column("userId")).drop_null().to_pylist()
    rng = np.random.default_rng(3)
    plans = rng.integers(0, len(PLANS), len(users))
    seats = rng.integers(1, 51, len(users))
    updates = [Update(u, {"plan": PLANS[p], "seats": int(s)})
               for u, p, s in zip(users, plans.tolist(), seats.tolist(), strict=True)]
    con = duckdb_from_table(table)
    con.register("persons_arrow", pa.table({"pid": users,
                                            "plan": [PLANS[p] for p in plans.tolist()],
                                            "seats": seats}))
    con.execute("CREATE TABLE persons AS SELECT * FROM persons_arrow")
    end = int(table.column("timestamp").to_numpy().max()) + 1
    span = {"startTime": end - args.days * 86_400_000, "endTime": end}
    pro = [{"property": "person.plan", "value": "pro"}]
    big = [{"property": "person.seats", "operator": "gt", "value": 40}]
    joined = "FROM events e JOIN persons p ON e.userId = p.pid"
    cases: list[tuple[str, Any, Any, str]] = [
        ("count, person.plan = pro", lambda e: analytics.run_count(e, {**span, "where": pro}),
         lambda e: analytics.run_count(e, span),
         f"SELECT count(*) {joined} WHERE p.plan = 'pro'"),
        ("count, person.seats > 40", lambda e: analytics.run_count(e, {**span, "where": big}),
         lambda e: analytics.run_count(e, span),
         f"SELECT count(*) {joined} WHERE p.seats > 40"),
        ("count by person.plan", lambda e: analytics.run_count(e, {**span,
                                                                  "groupBy": "person.plan"}),
         lambda e: analytics.run_count(e, {**span, "groupBy": "type"}),
         f"SELECT p.plan, count(*) {joined} GROUP BY 1 ORDER BY 2 DESC"),
        ("unique users, pageview, person.plan = pro",
         lambda e: analytics.run_unique_users(e, {**span, "type": "pageview", "where": pro}),
         lambda e: analytics.run_unique_users(e, {**span, "type": "pageview"}),
         f"SELECT count(DISTINCT userId) {joined} WHERE type = 'pageview' AND p.plan = 'pro'"),
    ]
    with tempfile.TemporaryDirectory(prefix="rta-bench-pprops-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            t0 = time.perf_counter()
            engine.profiles.apply(updates)
            applied = time.perf_counter() - t0
            rows: list[list[str]] = [["query", "rta", "1st call", "without person.",
                                      "DuckDB (join)", "rta/DuckDB"]]
            for name, fn, plain, sql in cases:
                first = best_of(partial(fn, engine), 1)
                ours = best_of(partial(fn, engine), args.repeat)
                base = best_of(partial(plain, engine), args.repeat)
                theirs = best_of(partial(_fetch, con, sql), args.repeat)
                check(name, fn(engine), con.execute(sql).fetchall())
                rows.append([name, fmt_seconds(ours), fmt_seconds(first), fmt_seconds(base),
                             fmt_seconds(theirs), ratio(ours, theirs)])
            rows.append([f"apply {len(updates):,} updates (fsync off)", fmt_seconds(applied),
                         "-", "-", "-", "-"])
        finally:
            engine.close()
    print_table(f"Person properties, {fmt_count(args.events)} events, {len(users):,} persons, "
                f"best of {args.repeat}", rows)


def _fetch(con: Any, sql: str) -> Any:
    return con.execute(sql).fetchall()


def check(name: str, got: dict[str, Any], want: list[tuple[Any, ...]]) -> None:
    if "groups" in got:
        ours = sorted((g["key"], g["count"]) for g in got["groups"])
        theirs = sorted((str(k), int(n)) for k, n in want)
    else:
        ours = got.get("count", got.get("uniqueUsers"))
        theirs = int(want[0][0])
    if ours != theirs:
        print(f"person_props: {name}: rta {ours}, DuckDB {theirs}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
