"""Web analytics on the embedded engine against independent computations: a naive Python walk
over each visitor's events (every figure, every dimension) and DuckDB window-function SQL
(the visit totals), on hypothesis-generated traffic with gaps just under, at and over the
timeout, ties, late batches, session ids, bots and malformed URLs."""

from __future__ import annotations

from typing import Any

import duckdb
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core import query_services
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.queries import pageviews as pv
from rta.core.queries import web
from rta.core.queries.web_specs import DIMENSIONS, WebSettings, parse_web
from rta.core.web_sources import channel, parse_url, referrer_host, visit_source
from tests.core.web_logs import NOW, T0, TIMEOUT, reference_breakdown, reference_totals, web_log

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
START, END = T0 - 1, NOW  # every generated event is inside
ALL = {"startTime": START, "endTime": END - 1}


def _engine(log: list[list[dict[str, Any]]]) -> Engine:
    eng = Engine(EngineConfig(fsync=False))

    async def submit() -> None:
        for batch in log:
            result = await eng.submit(batch, partial=False, now=NOW)
            assert result.accepted == len(batch)
    trio.run(submit)
    return eng


def _ask(eng: Engine, params: dict[str, Any], dimension: str | None,
         settings_: WebSettings = WebSettings()) -> Any:
    ctx = query_services.context(eng, now=NOW)
    return web.execute(parse_web(params, NOW, dimension), ctx, settings_)


@SETTINGS
@given(web_log(), st.booleans())
def test_totals_and_every_dimension_match_a_naive_walk(log: list[list[dict[str, Any]]],
                                                        bots: bool) -> None:
    eng = _engine(log)
    try:
        params = {**ALL, "bots": str(bots).lower()}
        got = _ask(eng, params, None)
        assert got.current == reference_totals(log, START, END, bots)
        for dimension in DIMENSIONS:
            rows = _ask(eng, {**params, "limit": 1000}, dimension).data
            assert rows == reference_breakdown(log, START, END, dimension, 1000, bots), \
                dimension
    finally:
        eng.close()


@SETTINGS
@given(web_log(), st.integers(0, 60))
def test_a_range_cuts_visits_and_the_previous_period_is_its_twin(
        log: list[list[dict[str, Any]]], hours: int) -> None:
    eng = _engine(log)
    try:
        start = T0 + hours * 3_600_000
        end = start + 24 * 3_600_000
        got = _ask(eng, {"startTime": start, "endTime": end - 1}, None)
        assert got.current == reference_totals(log, start, end)
        assert got.previous == reference_totals(log, 2 * start - end, start)
        top = _ask(eng, {"startTime": start, "endTime": end - 1, "limit": 2}, "sources")
        assert top.data == reference_breakdown(log, start, end, "sources", 2)
    finally:
        eng.close()


def _duckdb_totals(log: list[list[dict[str, Any]]], timeout: int) -> tuple[Any, ...]:
    rows = []
    arrival = 0
    for batch in log:
        for ev in batch:
            arrival += 1
            props = ev.get("properties", {})
            if ev.get("userId") is None or props.get("$bot") is True:
                continue
            sid = ("c" + ev["sessionId"]) if ev.get("sessionId") else (
                "p" + props["$session_id"] if isinstance(props.get("$session_id"), str)
                else "")
            rows.append((ev["userId"], sid, ev["timestamp"], arrival, ev["type"]))
    con = duckdb.connect()
    con.execute("CREATE TABLE e (u VARCHAR, sid VARCHAR, ts BIGINT, arr BIGINT, type VARCHAR)")
    if rows:
        con.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?)", rows)
    pv_types = ", ".join(f"'{t}'" for t in pv.PAGEVIEW_TYPES)
    other = ", ".join(f"'{t}'" for t in pv.NON_INTERACTION_TYPES)
    return con.execute(f"""
        WITH marked AS (
          SELECT *, CASE WHEN sid = '' AND ts - lag(ts) OVER w > {timeout} THEN 1 ELSE 0 END
                 AS new
          FROM e WINDOW w AS (PARTITION BY u, sid ORDER BY ts, arr)),
        numbered AS (
          SELECT *, sum(new) OVER (PARTITION BY u, sid ORDER BY ts, arr
                                   ROWS UNBOUNDED PRECEDING) AS vno FROM marked),
        visits AS (
          SELECT u, count(*) FILTER (WHERE type IN ({pv_types})) AS pvs,
                 count(*) FILTER (WHERE type NOT IN ({pv_types}) AND type NOT IN ({other}))
                 AS acts, max(ts) - min(ts) AS dur
          FROM numbered GROUP BY u, sid, vno HAVING pvs > 0)
        SELECT count(DISTINCT u), count(*), coalesce(sum(pvs), 0),
               count(*) FILTER (WHERE pvs = 1 AND acts = 0), coalesce(sum(dur), 0)
        FROM visits""").fetchone()


@SETTINGS
@given(web_log())
def test_visit_totals_match_duckdb_window_functions(log: list[list[dict[str, Any]]]) -> None:
    eng = _engine(log)
    try:
        got = _ask(eng, ALL, None).current
        want = _duckdb_totals(log, TIMEOUT)
        assert (got.visitors, got.visits, got.pageviews, got.bounces, got.duration_ms) == \
            tuple(int(x) for x in want)
    finally:
        eng.close()


def test_gaps_at_the_timeout_and_late_events() -> None:
    """A gap of exactly the timeout continues a visit, one ms more starts another; an event
    arriving late lands in the visit its timestamp belongs to."""
    t = T0
    log = [[{"type": "pageview", "userId": "a", "timestamp": t, "properties": {"page": "/"}},
            {"type": "pageview", "userId": "a", "timestamp": t + TIMEOUT,
             "properties": {"page": "/b"}},
            {"type": "pageview", "userId": "a", "timestamp": t + 2 * TIMEOUT + 1,
             "properties": {"page": "/c"}}],
           [{"type": "click", "userId": "a", "timestamp": t + TIMEOUT + TIMEOUT // 2}]]
    eng = _engine(log[:1])
    try:
        before = _ask(eng, ALL, None).current
        assert (before.visits, before.pageviews, before.bounces) == (2, 3, 1)
    finally:
        eng.close()
    eng = _engine(log)  # the late click bridges the gap: one visit
    try:
        after = _ask(eng, ALL, None).current
        assert (after.visits, after.pageviews, after.bounces) == (1, 3, 0)
        assert after.duration_ms == 2 * TIMEOUT + 1
        entry = _ask(eng, ALL, "entry-pages").data.rows
        assert [(r.value, r.visits) for r in entry] == [("/", 1)]
    finally:
        eng.close()


def test_timeout_setting_and_own_hosts() -> None:
    log = [[{"type": "$pageview", "userId": "a", "timestamp": T0,
             "properties": {"$current_url": "https://shop.example/",
                            "$referrer": "https://blog.example/post"}},
            {"type": "$pageview", "userId": "a", "timestamp": T0 + 11 * 60_000,
             "properties": {"$current_url": "https://shop.example/x"}}]]
    eng = _engine(log)
    try:
        assert _ask(eng, ALL, None, WebSettings(10 * 60_000)).current.visits == 2
        assert _ask(eng, ALL, None, WebSettings(12 * 60_000)).current.visits == 1
        sources = _ask(eng, ALL, "sources").data.rows
        assert sources[0].value == "blog.example"
        own = _ask(eng, ALL, "sources", WebSettings(own_hosts=("blog.example",))).data.rows
        assert own[0].value == "Direct / None"
    finally:
        eng.close()


def test_channel_rule_table() -> None:
    def chan(ref: str | None, url: str) -> str:
        return visit_source(ref, url, "site.com").channel
    assert chan(None, "https://site.com/") == "Direct"
    assert chan("https://www.google.com/", "https://site.com/") == "Organic Search"
    assert chan("https://www.google.co.uk/", "https://site.com/?gclid=1") == "Paid Search"
    assert chan(None, "https://site.com/?gclid=1") == "Paid Search"
    assert chan("https://l.facebook.com/", "https://site.com/") == "Organic Social"
    assert chan("https://facebook.com/", "https://site.com/?utm_medium=cpc") == "Paid Social"
    assert chan(None, "https://site.com/?utm_source=newsletter") == "Email"
    assert chan(None, "https://site.com/?utm_source=x&utm_medium=display") == "Display"
    assert chan("https://chatgpt.com/", "https://site.com/") == "AI Assistants"
    assert chan("https://youtube.com/watch", "https://site.com/") == "Organic Video"
    assert chan("https://example.org/", "https://site.com/") == "Referral"
    assert chan("https://site.com/other", "https://site.com/") == "Direct"  # own host
    assert channel("", None, "sms", None, None, None) == "SMS"


def test_malformed_input_gives_empty_fields_never_an_error() -> None:
    for raw in ("http://[bad", "%%%", "javascript:alert(1)", "://", "\x00", "a" * 5000,
                "https://site.com/?utm_source=%E0%A4%A&utm_medium=%00"):
        parse_url(raw)
        visit_source(raw, raw, raw)
        referrer_host(raw, raw)
    assert parse_url("http://[bad").host is None
    assert referrer_host("garbage", "site.com") is None
    src = visit_source(None, "https://site.com/?utm_source=%ZZ+x&utm_campaign=%F0%9F%98%80",
                       None)
    assert (src.utm_source, src.utm_campaign) == ("%ZZ x", "\N{GRINNING FACE}")


def test_live_top_pages_count_every_sdks_pageviews() -> None:
    from rta.core.events import EventValidator
    from rta.core.live import LiveMetrics

    now = 1_700_000_000_000
    batch, rejected = EventValidator().validate_batch([
        {"type": "pageview", "properties": {"page": "/a?x=1"}},  # rta: as sent
        {"type": "$pageview", "properties": {"$current_url": "https://s.com/b?utm_source=x",
                                             "$pathname": "/b"}},
        {"type": "$pageview", "properties": {"$current_url": "https://s.com/b#top"}},
        {"type": "pageview", "properties": {"path": "/c", "url": "https://s.com/zzz"}},
        {"type": "pageview", "properties": {"context.page.url": "http://[bad"}},
        {"type": "click", "properties": {"page": "/a?x=1"}}], now=now)
    assert not rejected
    metrics = LiveMetrics()
    metrics.on_ingest(batch)
    top = metrics.snapshot(now + 1000)["topPages"]
    assert {p["page"]: p["count"] for p in top} == {"/a?x=1": 2, "/b": 2, "/c": 1}
