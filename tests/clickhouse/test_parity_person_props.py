"""Parity of person properties: the same logs with `$set`/`$set_once`/`$unset` updates and
identity links through both backends. The embedded engine reads `person.<key>` as virtual
columns of its person-aware blocks; ClickHouse merges `person_props` (shipped as the
daemon ships it) into the events' maps in its events source. Every query family of the
reference test (`tests/core/test_person_props_reference.py`), in both identity modes, and
exports (with the events' own columns) must agree."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.errors import RtaError
from rta.core.export import Export, parse_export
from rta.core.export_clickhouse import ClickHouseExport
from rta.core.identity import RAW, identity_mode
from rta.core.person_shipper import ship_all as ship_links
from rta.core.profile_shipper import ship_all as ship_props
from rta.core.queries import analytics
from rta.core.queries.analytics_specs import parse as parse_analytics
from rta.core.queries.timeparse import now_ms
from tests.clickhouse.harness import Pair, same
from tests.clickhouse.test_parity_behaviour import _answer, _clickhouse_context
from tests.core.test_person_props_reference import DAY, T0, build, event, link, queries
from tests.support import ServeProcess

NOW = T0 + 30 * DAY
SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "5")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ANALYTICS = {"count": "count", "unique": "unique-users", "top": "top",
             "aggregate": "aggregate"}


def _run(kind: str, body: dict[str, Any], ctx: Any) -> Any:
    if kind in ANALYTICS:
        try:
            return analytics.execute(parse_analytics(ANALYTICS[kind], body, NOW), ctx).to_json()
        except RtaError as exc:
            return {"error": str(exc)}
    if kind == "query":  # (/queries/execute's shape)
        return _answer(body["type"], body["config"], ctx)
    return _answer(kind, body, ctx)


@SETTINGS
@given(events=st.lists(event, min_size=1, max_size=30), links=st.lists(link, max_size=6),
       raw=st.booleans())
def test_person_properties_match_in_every_family(events: list[Any], links: list[Any],
                                                 raw: bool) -> None:
    pair = Pair.create()
    try:
        pair.ingest(build(events, links, False), NOW)
        ship_links(pair.ch, pair.engine.persons)  # (what the daemon's shippers send)
        ship_props(pair.ch, pair.engine.profiles)
        token = identity_mode.set(RAW) if raw else None
        try:
            embedded = pair.contexts(NOW)[0]
            clickhouse = _clickhouse_context(pair, NOW)
            for kind, body in queries("person."):
                if kind == "export":
                    spec = parse_export({**body, "fields": ["id", "userId", "type"]}, NOW)
                    ours = Export(pair.engine.snapshot(), spec, now=0)
                    theirs = ClickHouseExport(pair.ch, spec, now=0)
                    a, b = io.BytesIO(), io.BytesIO()
                    ours.write_to(a)
                    theirs.write_to(b)
                    assert sorted(b.getvalue().splitlines()) == \
                        sorted(a.getvalue().splitlines()), body
                    continue
                same(_run(kind, body, embedded), _run(kind, body, clickhouse),
                     f"{kind} {body}")
            # every column an export writes without `fields`: the events' own properties
            spec = parse_export({"format": "ndjson", "filter": {"where": [
                {"property": "person.plan", "operator": "exists"}]}}, NOW)
            assert Export(pair.engine.snapshot(), spec, now=0).columns == \
                ClickHouseExport(pair.ch, spec, now=0).columns
        finally:
            if token is not None:
                identity_mode.reset(token)
    finally:
        pair.close()


def test_a_clickhouse_daemon_ships_properties(tmp_path: Path) -> None:
    """`rta serve --backend clickhouse`: properties reach ClickHouse with read-your-writes
    (no waiting in the test), are re-sent at start after a SIGKILL, and GET /persons/{id}
    reads the person's activity from ClickHouse."""
    data = tmp_path / "data"
    args = ("--backend", "clickhouse", "--clickhouse-url", f"chdb://{tmp_path / 'ch'}")
    t = now_ms() - 3600_000
    where = {"eventType": "land", "timeRange": "last_7d",
             "where": [{"property": "person.plan", "value": "pro"}]}
    for round_no in range(2):
        proc = ServeProcess(str(data), *args)
        url = proc.start()
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                if round_no == 0:
                    assert http.post("/events/batch", json=[
                        {"type": "land", "userId": "anon", "timestamp": t},
                        {"type": "land", "userId": "other", "timestamp": t}]).status_code == 202
                    assert http.post("/analytics/count", json=where).json()["count"] == 0
                    assert http.post("/events", json={
                        "type": "$identify", "userId": "u", "timestamp": t + 1,
                        "properties": {"$anon_distinct_id": "anon",
                                       "$set": {"plan": "pro"}}}).status_code == 202
                    assert http.post("/analytics/count", json=where).json()["count"] == 1
                    assert http.post("/persons/other/properties", json={
                        "$set": {"plan": "pro"}}).status_code == 200
                got = http.post("/analytics/count", json=where).json()
                assert got["count"] == 2, got
                doc = http.get("/persons/anon").json()
                assert doc["properties"] == {"plan": "pro"} and doc["eventCount"] == 2
                assert doc["firstSeen"] == t and doc["lastSeen"] == t + 1
        finally:
            proc.kill()
