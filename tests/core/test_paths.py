"""Paths on the embedded engine against a naive per-unit Python reference and DuckDB SQL, on
hypothesis logs (ties ordered by arrival, repeats, gaps of exactly the window), over sealed
on-disk segments (the cached user index) plus the head; and the parser's 400s."""

from __future__ import annotations

import tempfile
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings

from bench.paths import duckdb_forward_sql, duckdb_sql, transitions
from rta.core import query_services
from rta.core.config import EngineConfig
from rta.core.embedded import paths
from rta.core.engine import Engine
from rta.core.errors import ValidationError
from rta.core.queries.behaviour import execute, parse, parse_execute
from rta.core.queries.paths_specs import parse_paths
from tests.paths_data import (
    NOW,
    T0,
    Log,
    _name,
    path_bodies,
    path_logs,
    reference_answer,
    reference_transitions,
)

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _engine(log: Log, data_dir: str | None) -> Engine:
    eng = Engine(EngineConfig(data_dir=data_dir, max_events=10, fsync=False))
    for batch in log:
        valid, rejected = eng.validator.validate_batch(batch, NOW)
        assert not rejected, rejected
        eng.store.append(valid)
    return eng


def _answer(eng: Engine, body: dict[str, Any]) -> dict[str, Any]:
    ctx = query_services.context(eng, now=NOW)
    out = execute(parse("paths", body, NOW), ctx).to_json()
    return {k: out[k] for k in ("totalPaths", "nodes", "links")}


@SETTINGS
@given(log=path_logs(), body=path_bodies())
def test_matches_reference(log: Log, body: dict[str, Any]) -> None:
    """The whole answer (grouping beyond top K, drop-offs, link direction, order) equals
    the naive reference's, through the indexed and the gathered sequence alike."""
    want = reference_answer(log, body)
    with tempfile.TemporaryDirectory() as tmp:
        eng = _engine(log, tmp)
        try:
            assert _answer(eng, body) == want, body
            snap = eng.snapshot()
            q = parse_paths(body, NOW)
            fast = paths.counts(snap, q, None)
            slow = paths.counts(snap, q, None, indexed=False)
            assert sorted(fast.transitions, key=repr) == sorted(slow.transitions, key=repr)
        finally:
            eng.close()


@SETTINGS
@given(log=path_logs(), body=path_bodies())
def test_transitions_match_duckdb(log: Log, body: dict[str, Any]) -> None:
    """DuckDB window functions over the same events count the same walk transitions."""
    q = parse_paths(body, NOW)
    rows = []
    arrival = 0
    for batch in log:
        for ev in batch:
            arrival += 1
            unit = ev.get("sessionId") if q.unit == "sessions" else ev.get("userId")
            name = _name(ev, q.path_type == "pages")
            ts = ev["timestamp"]
            if unit is None or name is None:
                continue
            if (q.start is not None and ts < q.start) or (q.end is not None and ts >= q.end):
                continue
            if q.where is not None and (ev.get("properties") or {}).get("plan") != "pro":
                continue
            rows.append((unit, ts, arrival, name))
    con = duckdb.connect()
    con.execute("CREATE TABLE ev (unit VARCHAR, ts BIGINT, arrival BIGINT, name VARCHAR)")
    if rows:
        con.executemany("INSERT INTO ev VALUES (?, ?, ?, ?)", rows)
    point = q.start_point if q.start_point is not None else q.end_point
    want = transitions(con, duckdb_sql("SELECT * FROM ev", point=point, backward=q.backward,
                                       steps=q.steps, window_ms=q.window_ms,
                                       collapse=q.collapse_repeats))
    assert want == reference_transitions(log, body)
    if q.start_point is not None and not q.collapse_repeats:  # the bench's DuckDB form
        assert transitions(con, duckdb_forward_sql(
            "SELECT * FROM ev", point=q.start_point, steps=q.steps,
            window_ms=q.window_ms)) == want
    eng = _engine(log, None)
    try:
        got = paths.counts(eng.snapshot(), q, None).transitions
    finally:
        eng.close()
    assert sorted(got, key=lambda r: (r[0], r[1], r[2] or "", r[3])) == want


def _ev(t: str, user: str, minute: float, **props: Any) -> dict[str, Any]:
    return {"type": t, "userId": user, "timestamp": T0 + int(minute * 60_000),
            **({"properties": props} if props else {})}


def test_window_boundary_ties_and_shape() -> None:
    """A gap of exactly the window continues a path, one ms more breaks it; events in the
    same millisecond follow arrival order; the answer's documented shape."""
    log = [[_ev("a", "u1", 0), _ev("b", "u1", 1), _ev("c", "u1", 2), _ev("a", "u1", 2)],
           [_ev("a", "u2", 0), _ev("b", "u2", 1.00002)]]
    eng = _engine(log, None)
    try:
        ctx = query_services.context(eng, now=NOW)
        out = execute(parse("paths", {"startPoint": "a", "windowMinutes": 1}, NOW),
                      ctx).to_json()
    finally:
        eng.close()
    assert out["totalPaths"] == 2
    assert out["nodes"] == [
        {"id": "1_a", "step": 1, "name": "a", "users": 2, "dropoff": 1},
        {"id": "2_b", "step": 2, "name": "b", "users": 1, "dropoff": 0},
        {"id": "3_c", "step": 3, "name": "c", "users": 1, "dropoff": 0},
        {"id": "4_a", "step": 4, "name": "a", "users": 1, "dropoff": 1}]
    assert out["links"][0] == {"source": "1_a", "target": "2_b", "users": 1}
    assert out["direction"] == "forward" and out["steps"] == 5 and out["topK"] == 10


@pytest.mark.parametrize(("body", "field"), [
    ({"steps": 0}, "steps"), ({"steps": 21}, "steps"), ({"steps": "5"}, "steps"),
    ({"steps": True}, "steps"), ({"pathType": "screens"}, "pathType"),
    ({"startPoint": "a", "endPoint": "b"}, "endPoint"), ({"startPoint": ""}, "startPoint"),
    ({"endPoint": 3}, "endPoint"), ({"unit": "people"}, "unit"),
    ({"windowMinutes": 0}, "windowMinutes"), ({"topK": 0}, "topK"),
    ({"topK": 101}, "topK"), ({"collapseRepeats": "yes"}, "collapseRepeats"),
    ({"where": [{"property": "x", "operator": "like", "value": 1}]}, "where[0].operator"),
    ({"startTime": T0 + 10, "endTime": T0}, "startTime"), ({"segment": 3}, "segment"),
])
def test_bad_input_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_paths(body, NOW)
    assert err.value.details[0]["field"] == field
    with pytest.raises(ValidationError) as err:
        parse_execute({"type": "paths", "config": body}, NOW)
    assert err.value.details[0]["field"] == f"config.{field}"
