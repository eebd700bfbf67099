"""`python -m bench clickhouse`: the ClickHouse backend (chdb, in-process) next to the
embedded engine and DuckDB on the same data, same run (#17 item 9).

Builds the `bench query` data set into a sealed embedded store, copies it into chdb with
`rta clickhouse migrate`'s block conversion (rate reported), and times every query of
`bench query` and `bench behaviour` through the typed query layer on both backends (result
cache off), and the same SQL on DuckDB. It also measures the shipper's own path (WAL record
-> EventBatch -> Arrow -> insert) into chdb, the rate events reach ClickHouse at in
`rta serve --backend clickhouse`. Every ClickHouse answer is checked equal to the embedded
one before it is timed.

Targets: shipping >= 500k events/s; ClickHouse queries within 3x of the embedded engine;
funnels and retention no slower than DuckDB.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from bench.behaviour import ABTEST_SQL, STEPS3, STEPS5, funnel_body, funnel_sql, retention_sql
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
from bench.query import queries
from rta.core import query_services
from rta.core.clickhouse.backend import ClickHouseBackend
from rta.core.clickhouse.connection import ClickHouse, parse_url
from rta.core.clickhouse.inserts import insert_batch
from rta.core.clickhouse.schema import ensure_schema
from rta.core.clickhouse_migrate import migrate
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.events import EventBatch
from rta.core.queries import analytics, behaviour
from rta.core.queries.analytics_specs import parse as parse_analytics
from rta.core.queries.backend import QueryContext
from rta.core.queries.timeparse import DAY, HOUR
from rta.core.shipper import MAX_BATCH_EVENTS

KINDS = {analytics.run_count: "count", analytics.run_aggregate: "aggregate",
         analytics.run_unique_users: "unique-users", analytics.run_top: "top"}


def _analytics(q: Any, ctx: QueryContext) -> Any:
    return analytics.execute(q, ctx).to_json()


def _behaviour(q: Any, ctx: QueryContext) -> Any:
    return behaviour.execute(q, ctx).to_json()


def _cases(end: int, days: int, users: int) -> list[tuple[str, Callable[[QueryContext], Any],
                                                          str]]:
    out: list[tuple[str, Callable[[QueryContext], Any], str]] = []
    for name, params, fn, sql in queries(end, days):
        q = parse_analytics(KINDS[fn], params, end)
        out.append((name, partial(_analytics, q), sql))
    start = end - days * DAY
    ret_start = (end // DAY - days) * DAY
    behaviours: list[tuple[str, str, dict[str, Any], str]] = [
        ("3-step funnel, 1h window", "funnel", funnel_body(STEPS3, start, end, HOUR),
         funnel_sql(STEPS3, start, end, HOUR)),
        ("5-step funnel, 1d window", "funnel", funnel_body(STEPS5, start, end, DAY),
         funnel_sql(STEPS5, start, end, DAY)),
        (f"{days}-day daily retention", "cohort", {
            "entryEvent": "pageview", "retentionEvent": "login", "periods": days,
            "periodLength": DAY, "startTime": ret_start, "endTime": end - 1},
         retention_sql("pageview", "login", ret_start, end, DAY, days, end + 1)),
        (f"A/B test, {users:,} users", "abtest", {
            "eventType": "experiment_assigned", "variantProperty": "variant",
            "metricEvent": "conversion", "metricProperty": "revenue"}, ABTEST_SQL),
    ]
    for name, kind, body, sql in behaviours:
        bq = behaviour.parse(kind, body, end)
        out.append((name, partial(_behaviour, bq), sql))
    return out


def _shipping_rate(engine: Engine, ch: ClickHouse, n: int, end: int) -> float:
    """Events/s through the shipper's path: WAL record -> EventBatch -> Arrow -> insert."""
    rng = np.random.default_rng(7)
    payloads = []
    for _ in range(n // 10_000):
        items = [{"type": "pageview", "userId": f"u{int(u)}", "timestamp": end - int(t),
                  "properties": {"page": f"/p{int(u) % 50}", "duration": int(t) % 9000}}
                 for u, t in zip(rng.integers(0, 100_000, 10_000),
                                 rng.integers(0, 86_400_000, 10_000), strict=True)]
        batch = engine.admit(items, partial=False, now=end).batch
        payloads.append(batch.to_json())
    warm = EventBatch.from_json(payloads[0])  # (first inserts pay chdb's one-off costs)
    insert_batch(ch, warm, np.arange(len(warm), dtype=np.uint64) + (1 << 42), "bench-warm")
    started = time.perf_counter()
    per_insert = MAX_BATCH_EVENTS // 10_000  # (the shipper sends up to 100k events at once)
    for i in range(0, len(payloads), per_insert):
        batch = EventBatch.concat([EventBatch.from_json(p) for p in payloads[i:i + per_insert]])
        seqs = np.arange(i * 10_000, i * 10_000 + len(batch), dtype=np.uint64) + (1 << 41)
        insert_batch(ch, batch, seqs, f"bench-ship-{i}")
    return len(payloads) * 10_000 / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    args = dataset_args("python -m bench clickhouse", __doc__, repeat=3,
                        requests=0).parse_args(argv)
    table, end, con = dataset_and_duckdb(args)
    tmp = tempfile.mkdtemp(prefix="rta-bench-ch-")
    try:
        build_store(table, tmp + "/store").close()
        ch = ClickHouse(parse_url(f"chdb://{tmp}/chdb", database=f"b{uuid.uuid4().hex[:8]}"))
        ensure_schema(ch)
        started = time.perf_counter()
        report = migrate(tmp + "/store", ch)
        load_s = time.perf_counter() - started
        assert not report.mismatches, report.mismatches[:5]
        ch.command(f"OPTIMIZE TABLE `{ch.database}`.events FINAL")
        engine = Engine(EngineConfig(data_dir=tmp + "/store", fsync=False, cache_ttl_ms=0))
        try:
            embedded = query_services.context(engine, now=end)
            # (as in the daemon: a data clock, here idle, lets bounds and names be remembered)
            clickhouse = QueryContext(ClickHouseBackend(ch, clock=lambda: 0), None, end)
            rows: list[list[str]] = [["query", "embedded", "ClickHouse (chdb)", "DuckDB",
                                      "CH/embedded", "CH/DuckDB"]]
            for name, run, sql in _cases(end, args.days, args.users):
                want = run(embedded)
                got = run(clickhouse)
                same = "" if _equal(want, got) else "  (DIFFERS)"
                ours = best_of(partial(run, embedded), args.repeat)
                theirs = best_of(partial(run, clickhouse), args.repeat)
                con.execute(sql).fetchall()
                duck = best_of(partial(fetch_all, con, sql), args.repeat)
                rows.append([name + same, fmt_seconds(ours), fmt_seconds(theirs),
                             fmt_seconds(duck), ratio(theirs, ours), ratio(theirs, duck)])
            # the floor under every ClickHouse answer: one statement's round trip through
            # clickhouse-connect and chdb (parse, plan, Arrow/Native result), no data read
            floor = best_of(partial(ch.rows, "SELECT 1"), 20)
            rows.append(["per-statement floor (SELECT 1)", "-", fmt_seconds(floor), "-", "-",
                         "-"])
            rows.append(["migrate (block copy) events/s", "-",
                         fmt_count(report.events / load_s) + "/s", "-", "-", "-"])
            rate = _shipping_rate(engine, ch, min(args.events, 1_000_000), end)
            rows.append(["shipping (WAL record -> insert) events/s", "-",
                         fmt_count(rate) + "/s", "-", "-", "-"])
        finally:
            engine.close()
    finally:  # (chdb may still hold files of its own there: no error for leftovers)
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(f"ClickHouse backend, {fmt_count(args.events)} events, {args.users:,} users, "
                f"{args.days} days (best of {args.repeat})", rows)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and (
            abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12))
    return bool(a == b)
