"""`python -m bench web`: web analytics (visits, headline figures, breakdowns) next to DuckDB.

The demo events (bench/data) become website traffic: every pageview gets PostHog's
`$current_url` (some with UTM parameters), a `$referrer` URL from the demo's referrer token,
and `$browser`, `$os`, `$device_type`, `$geoip_country_code` per visitor; session ids are
dropped, so visits come from 30 minutes of inactivity (the first-party script's case). The
events go into a sealed on-disk store, and DuckDB (2 threads, native table) gets the same
table with the same figures in window-function SQL: `lag` over (visitor, ts) for new visits,
a running `sum` for visit numbers, then per visit its pageviews, interactions, duration and
entry (exit) value.

Two figures for rta: `cold` derives the visits for the query (what one API call costs),
`shared` is the next query over the same snapshot, which reuses the derivation (what each
further widget of the web dashboard costs). The `same` column compares the two engines'
answers (totals; the rows of each breakdown).
"""

from __future__ import annotations

import tempfile
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
from rta.core import query_services
from rta.core.config import EngineConfig
from rta.core.embedded import visits
from rta.core.engine import Engine
from rta.core.queries import pageviews as pv
from rta.core.queries import web
from rta.core.queries.timeparse import DAY
from rta.core.queries.web_specs import WebSettings, parse_web

REFERRERS = {"direct": "$direct", "google": "https://www.google.com/", "twitter": "https://t.co/x",
             "github": "https://github.com/rta/rta", "bing": "https://www.bing.com/",
             "linkedin": "https://www.linkedin.com/feed/", "newsletter": "$direct"}
SOURCE_NAMES = {"google.com": "Google", "t.co": "X (Twitter)", "github.com": "GitHub",
                "bing.com": "Bing", "linkedin.com": "LinkedIn"}
CHANNELS = {"Google": "Organic Search", "Bing": "Organic Search",
            "X (Twitter)": "Organic Social", "GitHub": "Organic Social",
            "LinkedIn": "Organic Social"}
BROWSERS = ("Chrome", "Safari", "Firefox", "Edge", "Samsung Internet")
OSES = ("Windows", "Mac OS X", "iOS", "Android", "Linux")
DEVICES = ("Desktop", "Mobile", "Tablet")
COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "ES")
DIMENSIONS = ("pages", "entry-pages", "exit-pages", "sources", "channels", "utm-campaigns",
              "countries", "browsers", "os", "devices")


def web_table(table: pa.Table) -> pa.Table:
    """The demo table as website traffic (see the module docstring)."""
    n = table.num_rows
    is_pv = pc.equal(table.column("type"), "pageview")
    page = table.column("properties.page")
    ref_token = table.column("properties.referrer")
    newsletter = pc.fill_null(pc.equal(ref_token, "newsletter"), False)
    users = table.column("userId").combine_chunks()
    ucode = pc.hash_int64(users) if hasattr(pc, "hash_int64") else None  # (pyarrow >= 18)
    if ucode is None:
        ucode = pa.array(np.frombuffer(pc.dictionary_encode(users).indices.to_numpy()
                                       .astype(np.int64).tobytes(), np.int64))
    codes = np.abs(ucode.to_numpy(zero_copy_only=False).astype(np.int64))
    query = pc.if_else(newsletter, "?utm_source=newsletter&utm_medium=email&"
                                   "utm_campaign=spring", "")
    url = pc.if_else(is_pv, pc.binary_join_element_wise("https://site.example", page, query,
                                                        ""), None)
    ref = pc.if_else(is_pv, pc.fill_null(ref_token, "direct"), None)
    for token, target in REFERRERS.items():
        ref = pc.if_else(pc.fill_null(pc.equal(ref, token), False), target, ref)

    def per_user(values: tuple[str, ...], salt: int) -> pa.Array:
        picked = np.asarray(values, dtype=object)[(codes // salt) % len(values)]
        return pc.if_else(is_pv, pa.array(picked, pa.string()), None)

    out = table.set_column(table.schema.get_field_index("sessionId"), "sessionId",
                           pa.nulls(n, pa.string()))
    out = out.append_column("arrival", pa.array(np.arange(n, dtype=np.int64)))
    for name, col in (("$current_url", url), ("$referrer", ref),
                      ("$browser", per_user(BROWSERS, 1)), ("$os", per_user(OSES, 7)),
                      ("$device_type", per_user(DEVICES, 13)),
                      ("$geoip_country_code", per_user(COUNTRIES, 17))):
        out = out.append_column("properties." + name, col)
    return out


def _label_sql(dimension: str) -> str:
    """DuckDB's expression for a pageview's value of `dimension` (this data's shapes)."""
    if dimension in ("pages", "entry-pages", "exit-pages"):
        return '"properties.page"'
    host = ("regexp_replace(lower(regexp_extract(\"properties.$referrer\", "
            "'^https?://([^/:?#]+)', 1)), '^www\\.', '')")
    utm = "nullif(regexp_extract(\"properties.$current_url\", '[?&]{}=([^&#]*)', 1), '')"
    names = " ".join(f"WHEN '{h}' THEN '{n}'" for h, n in SOURCE_NAMES.items())
    tag = utm.format("utm_source")
    source = (f"coalesce(CASE nullif({host}, '') {names} ELSE nullif({host}, '') END, "
              f"CASE {tag} WHEN 'newsletter' THEN 'Newsletter' ELSE {tag} END, "
              "'Direct / None')")
    if dimension == "sources":
        return source
    if dimension == "channels":
        cases = " ".join(f"WHEN '{s}' THEN '{c}'" for s, c in CHANNELS.items())
        return (f"CASE WHEN {utm.format('utm_medium')} = 'email' THEN 'Email' "
                f"ELSE CASE {source} {cases} WHEN 'Direct / None' THEN 'Direct' "
                f"ELSE 'Referral' END END")
    if dimension == "utm-campaigns":
        return utm.format("utm_campaign")
    prop = pv.DIMENSION_PROPS[dimension]
    return f'"properties.{prop}"'


def duckdb_sql(dimension: str | None, start: int, end: int, timeout: int,
               limit: int = 10) -> str:
    """The same figures in window-function SQL (ties in time broken by arrival, as rta
    does; a missing label travels as '\x01' since `arg_min` skips NULLs)."""
    pv_types = ", ".join(f"'{t}'" for t in pv.PAGEVIEW_TYPES)
    other = ", ".join(f"'{t}'" for t in pv.NON_INTERACTION_TYPES)
    label = "NULL" if dimension is None else _label_sql(dimension)
    events = f"""e AS (
        SELECT "userId" AS u, timestamp AS ts, type IN ({pv_types}) AS pv,
               type NOT IN ({pv_types}) AND type NOT IN ({other}) AS act,
               CASE WHEN type IN ({pv_types}) THEN coalesce({label}, '\x01') END AS lab,
               arrival
        FROM events WHERE timestamp >= {start} AND timestamp < {end}
          AND "userId" IS NOT NULL),
      n AS (
        SELECT *, sum(new) OVER (PARTITION BY u ORDER BY ts, arrival
                                 ROWS UNBOUNDED PRECEDING) AS vno
        FROM (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY u ORDER BY ts, arrival)
                             > {timeout} THEN 1 ELSE 0 END AS new FROM e))"""
    pick = "arg_max" if dimension == "exit-pages" else "arg_min"
    visits_sql = f"""v AS (
        SELECT u, count(*) FILTER (WHERE pv) AS pvs, count(*) FILTER (WHERE act) AS acts,
               max(ts) - min(ts) AS dur,
               nullif({pick}(lab, (ts, arrival)) FILTER (WHERE pv), '\x01') AS lab
        FROM n GROUP BY u, vno HAVING count(*) FILTER (WHERE pv) > 0)"""
    if dimension is None:
        return f"""WITH {events}, {visits_sql}
            SELECT count(DISTINCT u), count(*), sum(pvs),
                   count(*) FILTER (WHERE pvs = 1 AND acts = 0), sum(dur) FROM v"""
    if dimension == "pages":
        return f"""WITH {events},
          f AS (SELECT *, count(*) FILTER (WHERE pv) OVER w AS vpv,
                       count(*) FILTER (WHERE act) OVER w AS vact
                FROM n WINDOW w AS (PARTITION BY u, vno))
          SELECT nullif(lab, '\x01') AS value, count(DISTINCT u) AS visitors,
                 count(DISTINCT (u, vno)), count(*),
                 count(DISTINCT (u, vno)) FILTER (WHERE vpv = 1 AND vact = 0)
          FROM f WHERE pv GROUP BY value ORDER BY visitors DESC, value NULLS LAST
          LIMIT {limit}"""
    return f"""WITH {events}, {visits_sql}
        SELECT lab, count(DISTINCT u) AS visitors, count(*), sum(pvs),
               count(*) FILTER (WHERE pvs = 1 AND acts = 0)
        FROM v GROUP BY lab ORDER BY visitors DESC, lab NULLS LAST LIMIT {limit}"""


def ask(engine: Engine, now: int, params: dict[str, Any], dimension: str | None,
        cold: bool) -> Any:
    if cold:
        visits.forget()
    ctx = query_services.context(engine, now=now)
    return web.execute(parse_web(params, now, dimension), ctx, WebSettings())


def _same(ours: Any, theirs: list[tuple[Any, ...]], dimension: str | None) -> bool:
    if dimension is None:
        t = ours.current
        return (t.visitors, t.visits, t.pageviews, t.bounces, t.duration_ms) == \
            tuple(int(x or 0) for x in theirs[0])
    mine = [(r.value, r.visitors, r.visits, r.pageviews, r.bounces) for r in ours.data.rows]
    return mine == [(r[0], *(int(x) for x in r[1:])) for r in theirs]


def main(argv: list[str] | None = None) -> None:
    args = dataset_args("python -m bench web", __doc__, repeat=3, requests=0).parse_args(argv)
    table = web_table(generate_events(args.events, users=args.users, days=args.days))
    end = int(pc.max(table.column("timestamp")).as_py()) + 1
    start = end - 7 * DAY
    now = end
    con = duckdb_from_table(table)
    timeout = WebSettings().timeout_ms
    params = {"startTime": start, "endTime": end - 1}
    with tempfile.TemporaryDirectory(prefix="rta-bench-web-") as tmp:
        build_store(table, tmp).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        try:
            ask(engine, now, params, None, True)  # pages in the memory-mapped columns
            rows: list[list[str]] = [["query (last 7 days)", "rta cold", "rta shared",
                                      "DuckDB", "cold/DuckDB", "shared/DuckDB", "same"]]
            for dimension in (None, *DIMENSIONS):
                cold = best_of(partial(ask, engine, now, params, dimension, True),
                               args.repeat)
                shared = best_of(partial(ask, engine, now, params, dimension, False),
                                 args.repeat)
                sql = duckdb_sql(dimension, start, end, timeout)
                answer = con.execute(sql).fetchall()
                # (the headline also has the previous period's figures)
                sqls = [sql] if dimension is not None else [
                    sql, duckdb_sql(None, 2 * start - end, start, timeout)]
                theirs = best_of(lambda sqls=sqls: [con.execute(q).fetchall() for q in sqls],
                                 args.repeat)
                same = _same(ask(engine, now, params, dimension, False), answer, dimension)
                name = "GET /analytics/web" if dimension is None else \
                    f"GET /analytics/web/{dimension}"
                rows.append([name, fmt_seconds(cold), fmt_seconds(shared),
                             fmt_seconds(theirs), ratio(cold, theirs), ratio(shared, theirs),
                             "yes" if same else "NO"])
        finally:
            engine.close()
    print_table(f"Web analytics, {fmt_count(args.events)} events, {args.users:,} users, "
                f"{args.days} days (best of {args.repeat})", rows)
