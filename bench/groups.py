"""`python -m bench groups`: counting groups (`unit: group:company`) vs users, same run.

The demo data set (10M events, 100k users by default) gets a company per user: 80% of users
belong to one of `--companies` companies (`$groups.company` on all their events), the rest to
none. Unique groups, a 3-step funnel and daily retention are timed by company and by user
(best of N after a first call, which builds the group columns), and DuckDB answers the group
queries over the same events with the company as the user (a view), its counts checked equal.
"""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.behaviour import STEPS3, funnel_body, funnel_sql, retention_sql
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
from rta.core.queries import analytics, behaviour
from rta.core.queries.timeparse import DAY, HOUR

UNIT = "group:company"


def with_companies(table: pa.Table, companies: int, seed: int = 3) -> pa.Table:
    """`table` plus `properties.$groups.company`: each user's company (none for 20%)."""
    enc = pc.dictionary_encode(table.column("userId").combine_chunks())
    n = len(enc.dictionary)
    rng = np.random.default_rng(seed)
    of_user = rng.integers(0, companies, n)
    has = rng.random(n) < 0.8
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    ok = (codes >= 0) & has[np.maximum(codes, 0)]
    names = pa.array([f"co-{i}" for i in range(companies)], pa.string())
    company = pa.DictionaryArray.from_arrays(
        pa.array(of_user[np.maximum(codes, 0)].astype(np.int32), mask=~ok), names)
    return table.append_column("properties.$groups.company", company.cast(pa.string()))


def _fetch(con: Any, sql: str) -> Any:
    return con.execute(sql).fetchall()


def main(argv: list[str] | None = None) -> None:
    ap = dataset_args("python -m bench groups", __doc__, repeat=3, requests=0)
    ap.add_argument("--companies", type=int, default=5000)
    args = ap.parse_args(argv)
    table = with_companies(generate_events(args.events, users=args.users, days=args.days),
                           args.companies)
    end = int(table.column("timestamp").to_numpy().max()) + 1
    start = end - args.days * DAY
    ret_start = (end // DAY - args.days) * DAY
    con = duckdb_from_table(table)
    con.execute('CREATE VIEW events_g AS SELECT * REPLACE ("properties.$groups.company" AS '
                "userId) FROM events")

    def groups_sql(sql: str) -> str:
        return sql.replace("FROM events", "FROM events_g").replace("JOIN events",
                                                                     "JOIN events_g")

    cohort = {"entryEvent": "pageview", "retentionEvent": "login", "periods": args.days,
              "periodLength": DAY, "startTime": ret_start, "endTime": end - 1}

    def unique(unit: str, eng: Engine) -> Any:
        return analytics.run_unique_users(eng, {"type": "pageview", "startTime": start,
                                                "endTime": end - 1, "unit": unit})

    def funnel(unit: str, eng: Engine) -> Any:
        return behaviour.run_funnel(eng, {**funnel_body(STEPS3, start, end, HOUR),
                                          "countBy": unit}, end)

    def retention(unit: str, eng: Engine) -> Any:
        return behaviour.run_cohort(eng, {**cohort, "unit": unit}, end)

    cases = [
        ("unique companies (pageview)", unique,
         f"SELECT count(DISTINCT userId) FROM events WHERE type = 'pageview' AND timestamp "
         f">= {start} AND timestamp < {end}"),
        ("3-step funnel, 1h window", funnel, funnel_sql(STEPS3, start, end, HOUR)),
        (f"{args.days}-day daily retention", retention,
         retention_sql("pageview", "login", ret_start, end, DAY, args.days, end + 1)),
    ]
    with tempfile.TemporaryDirectory(prefix="rta-bench-groups-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            rows: list[list[str]] = [["query", "groups", "users", "groups/users",
                                      "DuckDB groups", "groups/DuckDB", "groups 1st call"]]
            for name, fn, sql in cases:
                first = best_of(partial(fn, UNIT, engine), 1)
                ours = best_of(partial(fn, UNIT, engine), args.repeat)
                fn("users", engine)
                users = best_of(partial(fn, "users", engine), args.repeat)
                theirs = best_of(partial(_fetch, con, groups_sql(sql)), args.repeat)
                rows.append([name, fmt_seconds(ours), fmt_seconds(users), ratio(ours, users),
                             fmt_seconds(theirs), ratio(ours, theirs), fmt_seconds(first)])
            got_u = unique(UNIT, engine)["uniqueUsers"]
            want_u = _fetch(con, groups_sql(cases[0][2]))[0][0]
            got_f = [s["count"] for s in funnel(UNIT, engine)["steps"]]
            want_f = list(_fetch(con, groups_sql(cases[1][2]))[0])
            if got_u != want_u or got_f != want_f:
                print(f"groups: counts differ: rta {got_u} {got_f}, DuckDB {want_u} {want_f}",
                      file=sys.stderr)
        finally:
            engine.close()
    print_table(f"Counting groups, {fmt_count(args.events)} events, {args.users:,} users, "
                f"{args.companies:,} companies, best of {args.repeat}", rows)


if __name__ == "__main__":
    main(sys.argv[1:])
