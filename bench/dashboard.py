"""`python -m bench dashboard`: resolving the overview dashboard next to DuckDB, same run.

Builds N demo events (default 10M) into a sealed on-disk store, resolves every widget of the
`overview` template (last 24 hours) through `rta.core.dashboards`, and times the equivalent
DuckDB SQL (one query per widget, 2 threads, native table) on the same data. Then serves the
engine and measures `GET /dashboards/{id}/data` end to end (target < 100 ms at 10M events),
and, where Chromium exists, the first render of the dashboard page (target < 1 s).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from functools import partial
from typing import Any

import httpx
import trio

from bench.behaviour import funnel_sql
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
from rta.core.engine import Engine, open_engine
from rta.core.queries.timeparse import DAY, HOUR

CHROMIUM = "/usr/bin/chromium"
FUNNEL_STEPS = [("pageview", None), ("click", ("category", "products")),
                ("form_submit", ("form", "checkout")), ("purchase", None)]


def overview_sql(start: int, end: int) -> dict[str, str]:
    """DuckDB SQL answering each overview widget over [start, end)."""
    rng = f"timestamp >= {start} AND timestamp < {end}"
    step = dash.auto_interval(end - start)
    return {
        "Events": f"SELECT count(*) FROM events WHERE {rng}",
        "Active users": f"SELECT count(DISTINCT userId) FROM events WHERE {rng}",
        "Revenue": f"SELECT sum(\"properties.amount\") FROM events WHERE {rng} "
                   "AND type = 'purchase'",
        "Signups": f"SELECT count(*) FROM events WHERE {rng} AND type = 'signup'",
        "Pageviews over time": f"SELECT timestamp // {step} AS b, count(*) FROM events "
                               f"WHERE {rng} AND type = 'pageview' GROUP BY b ORDER BY b",
        "Events by type": f"SELECT type, count(*) FROM events WHERE {rng} GROUP BY type "
                          "ORDER BY 2 DESC",
        "Top pages": f"SELECT \"properties.page\" AS v, count(*) AS c, count(DISTINCT userId) "
                     f"FROM events WHERE {rng} AND type = 'pageview' AND v IS NOT NULL "
                     "GROUP BY v ORDER BY c DESC LIMIT 8",
        "Purchase funnel": funnel_sql(FUNNEL_STEPS, start, end, DAY),
        "Activity by hour and weekday":
            f"SELECT (timestamp // {DAY} + 3) % 7 AS d, (timestamp % {DAY}) // {HOUR} AS h, "
            f"count(*) FROM events WHERE {rng} GROUP BY d, h",
    }


def http_latency(config: EngineConfig, requests: int) -> tuple[list[float], list[float]]:
    """Serve the store in a thread; time GET /dashboards/{id}/data, then the page's first
    render in Chromium (empty when there is no Chromium)."""
    from rta.daemon import serve_app

    ready = threading.Event()
    done = threading.Event()
    urls: list[str] = []

    async def serve() -> None:
        async with open_engine(config) as eng, trio.open_nursery() as nursery:
            stop = trio.Event()
            binds = await nursery.start(partial(serve_app, eng, "127.0.0.1", 0, False,
                                                stop.wait))
            urls.extend(binds)
            ready.set()
            await trio.to_thread.run_sync(done.wait)
            stop.set()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    ready.wait(120)
    times: list[float] = []
    page: list[float] = []
    try:
        with httpx.Client(base_url=urls[0], timeout=60) as client:
            doc = client.post("/dashboards/template", json={"template": "overview"}).json()
            for _ in range(3):
                client.get(f"/dashboards/{doc['id']}/data")
            for _ in range(requests):
                t0 = time.perf_counter()
                r = client.get(f"/dashboards/{doc['id']}/data")
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200
            page = first_render(urls[0], doc["id"])
    finally:
        done.set()
        thread.join(30)
    return times, page


def first_render(url: str, dashboard_id: str, loads: int = 3) -> list[float]:
    """Seconds from navigation until every widget on the page has drawn its data."""
    if not os.path.exists(CHROMIUM):
        return []
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"]
    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            for _ in range(loads):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t0 = time.perf_counter()
                page.goto(f"{url}/#/dashboards/{dashboard_id}")
                page.wait_for_function(
                    "() => document.querySelectorAll('.widget').length > 0 && [...document"
                    ".querySelectorAll('.widget')].every((w) => w.dataset.state)",
                    timeout=30_000, polling=10)
                out.append(time.perf_counter() - t0)
                page.close()
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    args = dataset_args("python -m bench dashboard", __doc__, repeat=3,
                        requests=30).parse_args(argv)

    table, end, con = dataset_and_duckdb(args)
    template = builtin("overview")
    assert template is not None
    doc = dash.validate_dashboard(template)
    sql = overview_sql(end - DAY, end)
    rows: list[list[str]] = [["widget", "rta", "DuckDB", "rta/DuckDB"]]
    with tempfile.TemporaryDirectory(prefix="rta-bench-dashboard-") as tmp:
        build_store(table, tmp).close()
        config = EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0)
        engine = Engine(config)
        try:
            pinned = dash.pin(engine)
            total_ours = total_duck = 0.0
            for i, widget in enumerate(doc["widgets"]):
                def one(i: int = i, widget: dict[str, Any] = widget) -> None:
                    res = dash.resolve_widget(pinned, doc, widget, i, None, 0, end)
                    assert res["error"] is None, res["error"]
                one()
                ours = best_of(one, args.repeat)
                query = sql[widget["title"]]
                con.execute(query).fetchall()
                duck = best_of(lambda q=query: con.execute(q).fetchall(), args.repeat)
                total_ours += ours
                total_duck += duck
                rows.append([widget["title"], fmt_seconds(ours), fmt_seconds(duck),
                             ratio(ours, duck)])
            whole = best_of(lambda: dash.resolve_dashboard(engine, doc, now=end), args.repeat)
            rows.append(["whole dashboard (one snapshot)", fmt_seconds(whole),
                         fmt_seconds(total_duck), ratio(whole, total_duck)])
        finally:
            engine.close()
        latencies, times_page = http_latency(config, args.requests)
    lat = sorted(latencies)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    rows.append([f"HTTP GET /dashboards/{{id}}/data p50 ({args.requests} requests)",
                 fmt_seconds(p50), "", "target < 100 ms"])
    rows.append(["HTTP GET /dashboards/{id}/data p99", fmt_seconds(p99), "", ""])
    if times_page:
        rows.append(["first render in Chromium (median of 3)",
                     fmt_seconds(statistics.median(times_page)), "", "target < 1 s"])
    print_table(f"dashboard: overview over {fmt_count(args.events)} events, last 24h", rows)


if __name__ == "__main__":
    main()
