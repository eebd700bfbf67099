"""Page steps and page paths over a mixed-SDK store (`python -m bench page_steps`).

The demo events with every other pageview turned into PostHog's `$pageview` carrying
`$pathname` (instead of `page`): funnels and retention whose steps are page steps then read
two stored pageview types (the gathering kernels, not the per-type index), and paths over
pages name both by their page. DuckDB answers the same questions over a view that maps
the mixed events back to rta's own (`type IN (...)`, `coalesce` of the aliases per query),
and each answer is checked equal once (not timed).
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench import paths as paths_bench
from bench.behaviour import funnel_body, funnel_sql
from bench.common import (
    best_of,
    build_store,
    dataset_args,
    fmt_count,
    fmt_seconds,
    generate_events,
    print_table,
    ratio,
)
from rta.core.config import EngineConfig
from rta.core.engine import Engine

HOUR = 3_600_000
PH_PATH = "properties.$pathname"


def mixed(table: pa.Table) -> pa.Table:
    """Every other pageview as PostHog's `$pageview` with `$pathname`."""
    is_pv = pc.equal(table.column("type"), "pageview").to_numpy(zero_copy_only=False)
    flip = np.zeros(len(is_pv), dtype=bool)
    flip[np.flatnonzero(is_pv)[::2]] = True
    mask = pa.array(flip)
    page = table.column("properties.page")
    types = pc.if_else(mask, pa.scalar("$pageview"), table.column("type"))
    table = table.set_column(table.schema.get_field_index("type"), "type", types)
    table = table.set_column(table.schema.get_field_index("properties.page"), "properties.page",
                             pc.if_else(mask, pa.scalar(None, page.type), page))
    return table.append_column(PH_PATH, pc.if_else(mask, page, pa.scalar(None, page.type)))


def duckdb_mixed(table: pa.Table) -> Any:
    """DuckDB holding the mixed events, and a view `events` reading them as rta's own
    (`arrival`: the arrival rank, the rows being bulk loaded in order)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("mixed_arrow", table)
    con.execute("CREATE TABLE mixed AS SELECT * FROM mixed_arrow")
    con.unregister("mixed_arrow")
    con.execute(f"""CREATE VIEW events AS SELECT * EXCLUDE ("{PH_PATH}") REPLACE (
        CASE WHEN type IN ('$pageview', 'page') THEN 'pageview' ELSE type END AS type,
        coalesce("{PH_PATH}", "properties.page") AS "properties.page"), rowid AS arrival
        FROM mixed""")
    return con


def main(argv: list[str] | None = None) -> int:
    args = dataset_args("python -m bench page_steps", __doc__, repeat=3,
                        requests=0).parse_args(argv)
    from rta.core.queries import behaviour

    table = mixed(generate_events(args.events, users=args.users, days=args.days))
    end = int(table.column("timestamp").to_numpy().max()) + 1
    start = end - args.days * 86_400_000
    con = duckdb_mixed(table)
    top = con.execute("""SELECT "properties.page" FROM events WHERE type = 'pageview'
        GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1""").fetchone()
    page = str(top[0]) if top else "/"
    steps = [("pageview", ("page", page)), ("click", ("category", "products")),
             ("form_submit", None)]
    funnel = funnel_body(steps, start, end, HOUR)
    source = (f"SELECT userId AS unit, timestamp AS ts, arrival, "
              f'"properties.page" AS name FROM events WHERE userId IS NOT NULL AND '
              f"type = 'pageview' AND \"properties.page\" IS NOT NULL AND timestamp >= {start} "
              f"AND timestamp < {end}")
    paths_body = {"type": "paths", "config": {
        **paths_bench.body(page, start, end), "pathType": "pages"}}
    paths_sql = paths_bench.duckdb_forward_sql(source, point=page, steps=5,
                                               window_ms=30 * 60_000)
    rows: list[list[str]] = [["query", "rta", "DuckDB", "rta/DuckDB"]]
    ok = True
    with tempfile.TemporaryDirectory(prefix="rta-bench-pages-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            ours = behaviour.run_funnel(engine, funnel, end)
            theirs = con.execute(funnel_sql(steps, start, end, HOUR)).fetchone()
            ok &= [s["count"] for s in ours["steps"]] == list(theirs or ())
            from rta.core.embedded import paths
            from rta.core.queries.paths_specs import parse_paths

            q = parse_paths(paths_body["config"], end)
            mine = sorted(paths.counts(engine.snapshot(), q, None).transitions,
                          key=lambda r: (r[0], r[1], r[2] or "", r[3]))
            ok &= mine == paths_bench.transitions(con, paths_sql)
            cases = [
                (f"3-step funnel, page step on {page} (2 pageview types)",
                 lambda: behaviour.run_funnel(engine, funnel, end),
                 funnel_sql(steps, start, end, HOUR)),
                (f"paths over pages, 5 steps from {page}",
                 lambda: behaviour.run_query(engine, paths_body, end), paths_sql)]
            for name, fn, sql in cases:
                fn()
                mine_s = best_of(fn, args.repeat)
                theirs_s = best_of(lambda sql=sql: con.execute(sql).fetchall(), args.repeat)
                rows.append([name, fmt_seconds(mine_s), fmt_seconds(theirs_s),
                             ratio(mine_s, theirs_s)])
        finally:
            engine.close()
    print("answers agree with DuckDB" if ok else "rta and DuckDB disagree",
          file=sys.stderr if not ok else sys.stdout)
    print_table(f"Page steps over mixed SDKs, {fmt_count(args.events)} events, "
                f"{args.users:,} users (best of {args.repeat})", rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
