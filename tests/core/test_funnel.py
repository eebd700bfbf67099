"""Funnels against a naive per-user reference and DuckDB SQL, on adversarial event logs."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.embedded import funnel
from rta.core.errors import ValidationError
from rta.core.queries import behaviour
from tests.core.test_funnel_data import NOW, T0, event_logs, ingest, make_engine

Step = tuple[str, int | None]  # (type, required value of property k or None)


def _matches(e: dict[str, Any], step: Step) -> bool:
    return e["type"] == step[0] and (step[1] is None or e["properties"]["k"] == step[1])


def reference(events: list[dict[str, Any]], steps: list[Step], window: int, order: str,
              unit: str = "users", start: int | None = None, end: int | None = None,
              exclusions: tuple[tuple[Step, int, int], ...] = ()) -> list[int]:
    """Per-entity event lists in (timestamp, arrival) order; every attempt walked by hand."""
    key = "userId" if unit == "users" else "sessionId"
    per: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for i, e in enumerate(events):
        per[e[key]].append((e["timestamp"], i, e))
    best: dict[str, int] = {}
    for ent, seq in per.items():
        seq.sort(key=lambda x: (x[0], x[1]))
        evs = [x[2] for x in seq]
        depths = []
        for i, e in enumerate(evs):
            t0 = e["timestamp"]
            if not _matches(e, steps[0]):
                continue
            if (start is not None and t0 < start) or (end is not None and t0 > end):
                continue
            deadline = t0 + window
            pos = [i]
            for k in range(1, len(steps)):
                found = None
                if order == "strict":
                    j = pos[-1] + 1
                    if j < len(evs) and _matches(evs[j], steps[k]) and \
                            evs[j]["timestamp"] <= deadline:
                        found = j
                else:
                    frm = pos[-1] if order == "ordered" else i
                    for j in range(frm + 1, len(evs)):
                        if evs[j]["timestamp"] > deadline:
                            break
                        if _matches(evs[j], steps[k]):
                            found = j
                            break
                if found is None:
                    break
                pos.append(found)
            depth = len(pos)
            void = False
            for xstep, lo, hi in exclusions:
                if depth <= lo:
                    continue
                for j in range(pos[lo] + 1, len(evs)):
                    if evs[j]["timestamp"] > deadline or (depth > hi and j >= pos[hi]):
                        break
                    if _matches(evs[j], xstep):
                        void = True
                        break
            if not void:
                depths.append(depth)
        if depths:
            best[ent] = max(depths)
    return [sum(1 for d in best.values() if d > k) for k in range(len(steps))]


def _body(steps: list[Step], window: int, order: str, **extra: Any) -> dict[str, Any]:
    return {"steps": [{"name": f"s{i}", "eventType": t,
                       **({"filters": {"k": v}} if v is not None else {})}
                      for i, (t, v) in enumerate(steps)],
            "timeLimit": window, "order": order, **extra}


steps_st = st.lists(st.tuples(st.sampled_from(("a", "b", "c")),
                              st.one_of(st.none(), st.integers(0, 2))), min_size=2, max_size=4)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_logs(), steps=steps_st, window=st.integers(1, 200),
       order=st.sampled_from(funnel.ORDERS), unit=st.sampled_from(funnel.UNITS))
def test_matches_reference(events: list[dict[str, Any]], steps: list[Step], window: int,
                           order: str, unit: str) -> None:
    eng = make_engine(events)
    out = behaviour.run_funnel(eng, _body(steps, window, order, countBy=unit), NOW)
    assert [s["count"] for s in out["steps"]] == reference(events, steps, window, order, unit)


@settings(max_examples=50, deadline=None)
@given(events=event_logs(), steps=steps_st, window=st.integers(1, 200),
       lo=st.integers(0, 150), hi=st.integers(150, 300),
       xtype=st.sampled_from(("x", "c")))
def test_time_range_and_exclusions(events: list[dict[str, Any]], steps: list[Step],
                                   window: int, lo: int, hi: int, xtype: str) -> None:
    eng = make_engine(events)
    start, end = T0 + lo, T0 + hi
    excl = ((xtype, None), 0, len(steps) - 1)
    body = _body(steps, window, "ordered", startTime=start, endTime=end,
                 exclusions=[{"eventType": xtype, "fromStep": 0, "toStep": len(steps) - 1}])
    out = behaviour.run_funnel(eng, body, NOW)
    assert [s["count"] for s in out["steps"]] == reference(
        events, steps, window, "ordered", start=start, end=end, exclusions=(excl,))


@settings(max_examples=30, deadline=None)
@given(events=event_logs(30), window=st.integers(1, 200))
def test_three_steps_match_duckdb(events: list[dict[str, Any]], window: int) -> None:
    """Ordered a -> b -> c: a user reaches step k iff some chain of events in (ts, arrival)
    order fits in the window of its first event (checked by brute-force joins)."""
    eng = make_engine(events)
    out = behaviour.run_funnel(eng, _body([("a", None), ("b", None), ("c", None)], window,
                                          "ordered"), NOW)
    con = duckdb.connect()
    con.execute("CREATE TABLE e (seq INT, u VARCHAR, t VARCHAR, ts BIGINT)")
    if events:
        con.executemany("INSERT INTO e VALUES (?, ?, ?, ?)",
                        [(i, e["userId"], e["type"], e["timestamp"])
                         for i, e in enumerate(events)])
    after = "({y}.ts > {x}.ts OR ({y}.ts = {x}.ts AND {y}.seq > {x}.seq))"
    q1 = "SELECT count(DISTINCT u) FROM e WHERE t = 'a'"
    q2 = (f"SELECT count(DISTINCT e1.u) FROM e e1 JOIN e e2 ON e1.u = e2.u AND e1.t = 'a' "
          f"AND e2.t = 'b' AND {after.format(x='e1', y='e2')} AND e2.ts <= e1.ts + {window}")
    q3 = (f"SELECT count(DISTINCT e1.u) FROM e e1 JOIN e e2 ON e1.u = e2.u JOIN e e3 "
          f"ON e1.u = e3.u WHERE e1.t = 'a' AND e2.t = 'b' AND e3.t = 'c' "
          f"AND {after.format(x='e1', y='e2')} AND {after.format(x='e2', y='e3')} "
          f"AND e3.ts <= e1.ts + {window}")
    expected = [con.execute(q).fetchone()[0] for q in (q1, q2, q3)]  # type: ignore[index]
    assert [s["count"] for s in out["steps"]] == expected


def _ev(t: str, u: str, dt: int, **props: Any) -> dict[str, Any]:
    return {"type": t, "userId": u, "sessionId": u + "-s", "timestamp": T0 + dt,
            "properties": props}


def test_seed_shape_and_rates() -> None:
    events = []
    for i in range(10):
        u = f"u{i}"
        events.append(_ev("pageview", u, 0, plan="pro" if i < 4 else "free"))
        if i < 5:
            events.append(_ev("click", u, 10, category="products"))
        if i < 2:
            events.append(_ev("form_submit", u, 30))
    eng = make_engine(events)
    body = {"steps": [{"name": "Landing", "eventType": "pageview"},
                      {"name": "Product View", "eventType": "click",
                       "filters": {"category": "products"}},
                      {"name": "Checkout", "eventType": "form_submit"}],
            "startTime": T0, "endTime": T0 + 1000, "timeLimit": 3600000, "breakdown": "plan"}
    out = behaviour.run_funnel(eng, body, NOW)
    assert [(s["name"], s["count"], s["conversionRate"], s["dropoffRate"])
            for s in out["steps"]] == [("Landing", 10, 100, 0), ("Product View", 5, 50, 50),
                                       ("Checkout", 2, 40, 60)]
    assert (out["totalEntered"], out["totalCompleted"], out["overallConversionRate"]) == \
        (10, 2, 20)
    assert out["steps"][1]["medianTimeToConvert"] == 10
    assert out["steps"][2]["p90TimeToConvert"] == 20
    by = {g["value"]: [s["count"] for s in g["steps"]] for g in out["breakdown"]}
    assert by == {"pro": [4, 4, 2], "free": [6, 1, 0]}


def test_tie_rule_and_window_boundary() -> None:
    # same millisecond: counts only when the later step arrived later
    eng = make_engine([_ev("a", "u1", 5), _ev("b", "u1", 5),
                       _ev("b", "u2", 5), _ev("a", "u2", 5)], chunk=1)
    out = behaviour.run_funnel(eng, _body([("a", None), ("b", None)], 10, "ordered"), NOW)
    assert [s["count"] for s in out["steps"]] == [2, 1]
    # the window is inclusive: exactly timeLimit later still converts
    eng = make_engine([_ev("a", "u1", 0), _ev("b", "u1", 100), _ev("a", "u2", 0),
                       _ev("b", "u2", 101)])
    out = behaviour.run_funnel(eng, _body([("a", None), ("b", None)], 100, "ordered"), NOW)
    assert [s["count"] for s in out["steps"]] == [2, 1]


def test_any_attempt_counts() -> None:
    # the first attempt times out; the second one (later step 1) completes
    eng = make_engine([_ev("a", "u1", 0), _ev("a", "u1", 150), _ev("b", "u1", 200)])
    out = behaviour.run_funnel(eng, _body([("a", None), ("b", None)], 100, "ordered"), NOW)
    assert [s["count"] for s in out["steps"]] == [1, 1]
    assert out["steps"][1]["avgTimeToConvert"] == 50


@pytest.mark.parametrize(("body", "field"), [
    ({"steps": [{"eventType": "a"}]}, "steps"),
    ({"steps": [{"eventType": "a"}] * 21}, "steps"),
    ({"steps": [{"eventType": "a"}, {"name": "x"}]}, "steps[1].eventType"),
    ({"steps": ["a", "b"], "order": "sideways"}, "order"),
    ({"steps": ["a", "b"], "timeLimit": 0}, "timeLimit"),
    ({"steps": ["a", "b"], "timeLimit": -5}, "timeLimit"),
    ({"steps": ["a", "b"], "countBy": "devices"}, "countBy"),
    ({"steps": ["a", "b"], "exclusions": [{"eventType": "x", "fromStep": 1,
                                           "toStep": 0}]}, "exclusions[0].toStep"),
    ({"steps": ["a", "b"], "segment": "Nope"}, "segment"),
    ({"steps": "a,b"}, "steps"),
])
def test_bad_input_names_the_field(body: dict[str, Any], field: str) -> None:
    eng = make_engine([])
    with pytest.raises(ValidationError) as info:
        behaviour.run_funnel(eng, body, NOW)
    assert info.value.details[0]["field"] == field


def _row_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the general gather-and-sort kernel (the indexed one is the default)."""
    monkeypatch.setattr(funnel, "compute", funnel._compute_rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_logs(), steps=steps_st, window=st.integers(1, 200),
       lo=st.integers(0, 150), hi=st.integers(150, 300), where=st.booleans(),
       on_disk=st.booleans())
def test_indexed_kernel_equals_row_kernel(events: list[dict[str, Any]], steps: list[Step],
                                          window: int, lo: int, hi: int, where: bool,
                                          on_disk: bool) -> None:
    """Whole answers (counts, times to convert, breakdown by the best attempt's step-1
    value) of the indexed `ordered` kernel equal the row kernel's, in memory and over
    sealed on-disk segments (the cached index) plus the head."""
    body = _body(steps, window, "ordered", startTime=T0 + lo, endTime=T0 + hi,
                 breakdown="k", **({"where": [{"property": "k", "operator": "lt",
                                               "value": 2}]} if where else {}))
    with tempfile.TemporaryDirectory() as tmp:
        eng = make_engine(events, data_dir=tmp if on_disk else None)
        try:
            fast = behaviour.run_funnel(eng, body, NOW)
            with pytest.MonkeyPatch.context() as mp:
                _row_kernel(mp)
                slow = behaviour.run_funnel(eng, body, NOW)
        finally:
            eng.close()
    assert fast == slow


def test_index_follows_new_and_dropped_segments(tmp_path: Any) -> None:
    """The cached index of sealed segments is extended as segments are added and rebuilt
    when one goes away; answers always equal the row kernel's and the naive reference."""
    import random

    from rta.core.embedded import user_index

    rng = random.Random(7)
    events = [{**_ev(rng.choice("abc"), f"u{rng.randrange(6)}", rng.randrange(0, 3000),
                     k=rng.randrange(3)), "id": f"e{i}"} for i in range(400)]
    steps: list[Step] = [("a", None), ("b", None), ("c", None)]
    eng = make_engine(events[:200], data_dir=str(tmp_path), max_events=25)
    try:
        def check(expected_events: list[dict[str, Any]]) -> None:
            body = _body(steps, 500, "ordered", breakdown="k")
            fast = behaviour.run_funnel(eng, body, NOW)
            with pytest.MonkeyPatch.context() as mp:
                _row_kernel(mp)
                assert fast == behaviour.run_funnel(eng, body, NOW)
            assert [s["count"] for s in fast["steps"]] == reference(
                expected_events, steps, 500, "ordered")

        check(events[:200])
        snap = eng.snapshot()
        sealed = [b for b in snap.blocks if b.label.startswith("seg-")]
        assert len(sealed) >= 5
        cache = user_index._CACHES[snap.dicts]
        code = snap.dicts.types.lookup("a")
        assert len(cache.entries[code].blocks) == len(sealed)
        first_index = cache.entries[code].index
        ingest(eng, events[200:])  # more segments: merged into the cached index
        check(events)
        assert len(cache.entries[code].blocks) > len(sealed)
        assert cache.entries[code].index is not first_index
        dropped = eng.store.segments.pop(0)  # as retention does: those rows are gone
        eng.store._log.record(dropped.block.min_ts, dropped.block.max_ts)  # (a new version)
        gone = set(dropped.block.ids(slice(None)))
        check([e for e in events if e["id"] not in gone])
    finally:
        eng.close()


def test_index_cache_is_bounded(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached per-type indexes beyond the budget are evicted least recently used first, and
    answers from evicted (rebuilt) indexes stay equal to the naive reference."""
    import random

    from rta.core.embedded import user_index

    rng = random.Random(11)
    events = [{**_ev(rng.choice("abcd"), f"u{rng.randrange(8)}", rng.randrange(0, 3000)),
               "id": f"e{i}"} for i in range(300)]
    eng = make_engine(events, data_dir=str(tmp_path), max_events=40)
    try:
        snap = eng.snapshot()
        cache_budget = 16 * 2 * 80  # room for about two types' indexes
        monkeypatch.setattr(user_index, "CACHE_BUDGET_BYTES", cache_budget)
        pairs: list[list[Step]] = [[("a", None), ("b", None)], [("c", None), ("d", None)],
                                   [("a", None), ("d", None)], [("b", None), ("c", None)]]
        for steps in pairs:
            body = _body(steps, 500, "ordered")
            got = behaviour.run_funnel(eng, body, NOW)
            assert [s["count"] for s in got["steps"]] == reference(events, steps, 500,
                                                                   "ordered")
            cache = user_index._CACHES[snap.dicts]
            assert cache.nbytes <= cache_budget or len(cache.entries) == 1
        last = snap.dicts.types.lookup("c")
        assert next(reversed(cache.entries)) == last  # most recently used kept
    finally:
        eng.close()
