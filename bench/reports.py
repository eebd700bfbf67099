"""`python -m bench reports`: building a scheduled report's content next to DuckDB.

Builds N demo events (default 2M) into a sealed on-disk store and times
`rta.core.report_content.build_report` on the `overview` template over the last 7 days
(every widget resolved, each headline figure also over the 7 days before, the tables),
against the DuckDB SQL computing the same figures and tables for both periods on the same
data (2 threads, native table). The figures are checked equal before anything is timed.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

from bench.common import (
    best_of,
    build_store,
    dataset_and_duckdb,
    dataset_args,
    fmt_count,
    fmt_seconds,
    print_table,
    ratio,
)
from rta.core import dashboards as dash
from rta.core.config import EngineConfig
from rta.core.dashboards.templates import builtin
from rta.core.engine import Engine
from rta.core.queries.timeparse import DAY
from rta.core.report_content import build_report

RANGE_DAYS = 7


def figures_sql(start: int, end: int) -> dict[str, str]:
    """The overview's headline figures over [start, end) as DuckDB SQL."""
    rng = f"timestamp >= {start} AND timestamp < {end}"
    return {
        "Events": f"SELECT count(*) FROM events WHERE {rng}",
        "Active users": f"SELECT count(DISTINCT userId) FROM events WHERE {rng}",
        "Revenue": f"SELECT coalesce(sum(\"properties.amount\"), 0) FROM events WHERE {rng} "
                   "AND type = 'purchase'",
        "Signups": f"SELECT count(*) FROM events WHERE {rng} AND type = 'signup'",
        "Pageviews over time": f"SELECT count(*) FROM events WHERE {rng} "
                               "AND type = 'pageview'",
    }


def tables_sql(start: int, end: int) -> dict[str, str]:
    rng = f"timestamp >= {start} AND timestamp < {end}"
    return {
        "Events by type": f"SELECT type, count(*) AS c FROM events WHERE {rng} GROUP BY type "
                          "ORDER BY c DESC, type",
        # (the overview charts visitors per page, a web breakdown: docs/web.md)
        "Top pages": f"SELECT \"properties.page\" AS v, count(DISTINCT userId) AS c FROM events "
                     f"WHERE {rng} AND type = 'pageview' AND v IS NOT NULL GROUP BY v "
                     "ORDER BY c DESC, v LIMIT 8",
    }


def duckdb_report(con: Any, start: int, end: int) -> dict[str, Any]:
    span = end - start
    out: dict[str, Any] = {}
    for title, sql in figures_sql(start, end).items():
        before = figures_sql(start - span, start)[title]
        out[title] = (con.execute(sql).fetchone()[0], con.execute(before).fetchone()[0])
    for title, sql in tables_sql(start, end).items():
        out[title] = con.execute(sql).fetchall()[:10]
    return out


def check(ours: dict[str, Any], duck: dict[str, Any]) -> None:
    heads = {h["title"]: h for h in ours["headlines"]}
    for title in figures_sql(0, 1):
        value, previous = duck[title]
        assert math.isclose(heads[title]["value"], value, rel_tol=1e-9), (title, heads[title])
        assert math.isclose(heads[title]["previous"], previous, rel_tol=1e-9), title
    tables = {t["title"]: t for t in ours["tables"]}
    for title in tables_sql(0, 1):
        got = {row[0]: row[1] for row in tables[title]["rows"]}
        want = {str(k): v for k, v in duck[title]}
        assert got == want, (title, got, want)


def main(argv: list[str] | None = None) -> None:
    args = dataset_args("python -m bench reports", __doc__, repeat=3, requests=None,
                        events=2_000_000, users=50_000).parse_args(argv)

    table, end, con = dataset_and_duckdb(args)
    template = builtin("overview")
    assert template is not None
    doc = dash.validate_dashboard(template)
    time_range = f"last_{RANGE_DAYS}d"
    # (last_7d at `end` is [end - 7d + 1, end + 1): the API's inclusive end)
    start, stop = end - RANGE_DAYS * DAY + 1, end + 1
    with tempfile.TemporaryDirectory(prefix="rta-bench-reports-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            pinned = dash.pin(engine, end)
            ours = build_report(pinned, doc, time_range)
            duck = duckdb_report(con, start, stop)
            check(ours, duck)
            t_ours = best_of(lambda: build_report(pinned, doc, time_range), args.repeat)
            t_duck = best_of(lambda: duckdb_report(con, start, stop), args.repeat)
        finally:
            engine.close()
    rows = [["what", "rta", "DuckDB", "rta/DuckDB"],
            [f"report content: 5 figures x 2 periods + 2 tables, {time_range} "
             "(the overview template)", fmt_seconds(t_ours), fmt_seconds(t_duck),
             ratio(t_ours, t_duck)]]
    print_table(f"reports: overview over {fmt_count(args.events)} events", rows)


if __name__ == "__main__":
    main()
