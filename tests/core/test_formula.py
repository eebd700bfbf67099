"""Formulas over named series: the grammar against a naive reference evaluator, the error
offsets, and formula queries against per-bucket counts computed in plain Python."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.errors import ValidationError
from rta.core.queries import formula_query as fq
from rta.core.queries.backend import QueryContext
from rta.core.queries.formula import FormulaError, evaluate, evaluate_scalar, parse_formula
from tests.core.test_analytics import BASE, STEP, make_engine

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NAMES = ("A", "B", "c_1")

# -- the grammar ---------------------------------------------------------------------------

leaves = st.one_of(st.sampled_from(NAMES).map(lambda n: ("ref", n)),
                   st.sampled_from(["0", "1", "2.5", "100", ".5", "1e2", "3E-1"]).map(
                       lambda t: ("num", t)))
trees = st.recursive(leaves, lambda sub: st.one_of(
    st.tuples(st.just("neg"), sub),
    st.tuples(st.just("bin"), st.sampled_from("+-*/"), sub, sub)), max_leaves=12)


def render(t: Any) -> str:
    """Fully parenthesised text, with random-looking but fixed spacing."""
    if t[0] == "ref":
        return str(t[1])
    if t[0] == "num":
        return str(t[1])
    if t[0] == "neg":
        return f"-({render(t[1])})"
    return f"({render(t[2])}{t[1]} {render(t[3])})"


def reference(t: Any, env: dict[str, float | None]) -> float | None:
    """Plain Python: None propagates, x / 0 is None, non-finite results are None."""
    if t[0] == "ref":
        return env[t[1]]
    if t[0] == "num":
        return float(t[1])
    if t[0] == "neg":
        v = reference(t[1], env)
        return None if v is None else -v
    a, b = reference(t[2], env), reference(t[3], env)
    if a is None or b is None:
        return None
    if t[1] == "/" and b == 0:
        return None
    r = {"+": a + b, "-": a - b, "*": a * b}[t[1]] if t[1] != "/" else a / b
    return r if math.isfinite(r) else None


values = st.one_of(st.none(), st.integers(-5, 5).map(float), st.sampled_from([0.5, 1e6, -2.25]))


@SETTINGS
@given(tree=trees, envs=st.lists(st.fixed_dictionaries({n: values for n in NAMES}),
                                 min_size=1, max_size=6))
def test_formula_matches_reference(tree: Any, envs: list[dict[str, float | None]]) -> None:
    node = parse_formula(render(tree))
    arrays = {n: np.array([np.nan if e[n] is None else e[n] for e in envs]) for n in NAMES}
    got = evaluate(node, arrays, len(envs))
    for i, env in enumerate(envs):
        want = reference(tree, env)
        have = None if np.isnan(got[i]) else float(got[i])
        assert (want is None and have is None) or (
            want is not None and have is not None and math.isclose(want, have, rel_tol=1e-12,
                                                                   abs_tol=1e-12)), (
            render(tree), env, want, have)


@pytest.mark.parametrize(("text", "env", "want"), [
    ("A / B * 100", {"A": 3, "B": 4}, 75.0),
    ("A - B - 1", {"A": 10, "B": 3}, 6.0),          # left associative
    ("A / B / 2", {"A": 8, "B": 2}, 2.0),
    ("A + B * 2", {"A": 1, "B": 3}, 7.0),           # * before +
    ("(A + B) * 2", {"A": 1, "B": 3}, 8.0),
    ("-A * B", {"A": 2, "B": 3}, -6.0),
    ("2 * -A", {"A": 3}, -6.0),
    ("--A", {"A": 3}, 3.0),
    ("+A", {"A": 3}, 3.0),
    ("A/B", {"A": 1, "B": 0}, None),                # division by zero is null
    ("A/B", {"A": 0, "B": 0}, None),
    ("A * 0 + 1", {"A": None}, None),               # a null operand is null
    (".5 + 1e2 + 2.", {}, 100.5 + 2),
    ("1e400 * A", {"A": 1}, None),                  # not finite: null
])
def test_precedence_and_nulls(text: str, env: dict[str, float | None],
                              want: float | None) -> None:
    assert evaluate_scalar(parse_formula(text), env) == want


@pytest.mark.parametrize(("text", "position", "fragment"), [
    ("A +", 3, "end of the formula"),
    ("A + * B", 4, "'*'"),
    ("(A + B", 6, "expected ')'"),
    ("A $ B", 2, "'$'"),
    ("A B", 2, "expected an operator"),
    ("A + B)", 5, "')'"),
    ("", 0, "end of the formula"),
    ("A / ()", 5, "')'"),
    ("(" * 70 + "A" + ")" * 70, 64, "nested"),
])
def test_parse_errors_say_where(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    assert info.value.position == position
    assert fragment in str(info.value) and f"at character {position}" in str(info.value)


# -- the query -----------------------------------------------------------------------------

def _body(formula: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "series": [{"name": "A", "eventType": "pageview"},
                   {"name": "B", "eventType": "click", "aggregation": "count"}],
        "interval": 5 * STEP, "startTime": BASE, "endTime": BASE + 21 * STEP - 1, **extra}
    if formula is not None:
        body["formula"] = formula
    return body


def _ctx(events: list[dict[str, Any]]) -> QueryContext:
    from rta.core import query_services

    return query_services.context(make_engine(events), now=BASE + 30 * STEP)


event_st = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["pageview", "click", "other"]),
    "userId": st.sampled_from(["u1", "u2", "u3"]),
    "timestamp": st.one_of(st.integers(0, 21).map(lambda i: BASE + i * STEP),
                           st.integers(-STEP, 22 * STEP).map(lambda o: BASE + o)),
    "properties": st.fixed_dictionaries({"m": st.integers(-20, 20)})}), max_size=40)


@SETTINGS
@given(events=event_st)
def test_formula_per_bucket_and_total_match_python(events: list[dict[str, Any]]) -> None:
    ctx = _ctx(events)
    q = fq.parse_formula_query(_body("A / B * 100 - 1"), BASE + 30 * STEP)
    out = fq.execute(q, ctx).to_json()
    start, end, step = BASE, BASE + 21 * STEP, 5 * STEP
    n = -(-(end - start) // step)
    assert [b["timestamp"] for b in out["buckets"]] == [start + k * step for k in range(n)]

    def counts(etype: str) -> list[int]:
        c = [0] * n
        for e in events:
            if e["type"] == etype and start <= e["timestamp"] < end:
                c[(e["timestamp"] - start) // step] += 1
        return c

    a, b = counts("pageview"), counts("click")
    for k in range(n):
        want = None if b[k] == 0 else a[k] / b[k] * 100 - 1
        got = out["buckets"][k]["value"]
        assert (want is None and got is None) or math.isclose(want, got), (k, want, got)
    total = None if sum(b) == 0 else sum(a) / sum(b) * 100 - 1
    assert (total is None and out["total"]["value"] is None) or math.isclose(
        total, out["total"]["value"])
    assert [s["name"] for s in out["series"]] == ["A", "B"]
    assert [x["value"] for x in out["series"][0]["buckets"]] == a


@SETTINGS
@given(events=event_st)
def test_formula_of_metric_series_with_nulls(events: list[dict[str, Any]]) -> None:
    """avg is null in an empty bucket, so the formula is null there."""
    ctx = _ctx(events)
    body = {"series": [{"name": "S", "eventType": "pageview", "aggregation": "avg",
                        "property": "properties.m"},
                       {"name": "N", "type": "pageview"}],
            "formula": "S * N", "interval": "5m", "startTime": BASE,
            "endTime": BASE + 21 * STEP - 1}
    out = fq.execute(fq.parse_formula_query(body, BASE + 30 * STEP), ctx).to_json()
    step = 5 * STEP
    for k, bucket in enumerate(out["buckets"]):
        vals = [e["properties"]["m"] for e in events if e["type"] == "pageview"
                and BASE + k * step <= e["timestamp"] < min(BASE + (k + 1) * step,
                                                            BASE + 21 * STEP)]
        want = float(sum(vals)) if vals else None
        got = bucket["value"]
        assert (want is None and got is None) or math.isclose(want, got, abs_tol=1e-9)


def test_top_level_filters_apply_to_every_series() -> None:
    events = [{"type": t, "userId": u, "timestamp": BASE + i * STEP,
               "properties": {"plan": p}}
              for i, (t, u, p) in enumerate([("pageview", "u1", "pro"), ("click", "u1", "pro"),
                                             ("click", "u2", "free"), ("pageview", "u2", "free"),
                                             ("pageview", "u3", "pro")])]
    ctx = _ctx(events)
    body = _body("A + B", where=[{"property": "plan", "operator": "eq", "value": "pro"}])
    body["series"][1]["where"] = {"userId": "u1"}
    out = fq.execute(fq.parse_formula_query(body, BASE + 30 * STEP), ctx).to_json()
    assert out["total"]["value"] == 2 + 1
    assert out["series"][0]["total"]["count"] == 2


@pytest.mark.parametrize(("change", "field", "fragment"), [
    ({"formula": "A / C"}, "formula", "unknown series 'C'"),
    ({"formula": "A / (B"}, "formula", "at character 6"),
    ({"formula": 3}, "formula", "expression"),
    ({"series": [{"name": f"S{i}", "eventType": "x"} for i in range(11)]}, "series",
     "at most 10"),
    ({"series": []}, "series", "non-empty"),
    ({"series": [{"name": "A"}, {"name": "A"}]}, "series[1].name", "earlier series"),
    ({"series": [{"name": "1x"}]}, "series[0].name", "a name"),
    ({"series": [{"name": "A", "startTime": 0}]}, "series[0].startTime", "top level"),
    ({"series": [{"name": "A", "groupBy": "page"}]}, "series[0].groupBy", "top level"),
    ({"series": [{"name": "A", "aggregation": "sum"}]}, "series[0].metric", "required"),
    ({"series": [{"name": "A", "where": 5}]}, "series[0].where", "list"),
    ({"series": [{"name": "A", "bogus": 1}]}, "series[0].bogus", "unknown"),
    ({"series": ["A"]}, "series[0]", "object"),
    ({"bogus": 1}, "bogus", "unknown"),
])
def test_bad_input_names_the_field(change: dict[str, Any], field: str, fragment: str) -> None:
    body = {**_body("A / B"), **change}
    with pytest.raises(ValidationError) as info:
        fq.parse_formula_query(body, BASE)
    assert info.value.details[0]["field"] == field, info.value.details
    assert fragment in info.value.message, info.value.message
    assert info.value.message.startswith(field)


def test_formula_error_has_position_detail() -> None:
    with pytest.raises(ValidationError) as info:
        fq.parse_formula_query(_body("A + + * B"), BASE)
    assert info.value.details[0]["position"] == 6


def test_without_formula_the_series_alone() -> None:
    out = fq.execute(fq.parse_formula_query(_body(None), BASE + 30 * STEP),
                     _ctx([{"type": "click", "userId": "u1", "timestamp": BASE}])).to_json()
    assert out["formula"] is None and "buckets" not in out and "total" not in out
    assert out["series"][1]["total"]["value"] == 1


def test_series_reuse_the_cache() -> None:
    """A formula costs its series: asked again (or a single series of it), all cached."""
    from rta.core.queries.query_cache import QueryCache

    ctx = _ctx([{"type": "click", "userId": "u1", "timestamp": BASE + STEP}])
    cache = QueryCache()
    q = fq.parse_formula_query(_body("A / B"), BASE + 30 * STEP)
    assert not fq.execute(q, ctx, cache).cached
    assert len(cache) == 2
    again = fq.parse_formula_query(_body("B - A"), BASE + 30 * STEP)
    assert fq.execute(again, ctx, cache).cached
