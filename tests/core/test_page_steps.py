"""Page steps (rta.core.queries.page_steps): a funnel step on a pageview type matches every
SDK's pageviews, a page condition reading the first page-path alias the event carries.
Checked against the naive funnel reference of test_funnel with a naive page matcher, on
mixed-SDK logs (rta `pageview`, Segment `page`, PostHog `$pageview`)."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.queries import behaviour
from rta.core.queries.behaviour import parse
from rta.core.queries.filters import Group, Predicate
from rta.core.queries.page_steps import step_filter
from tests.core import test_funnel
from tests.core.test_funnel_data import NOW, T0, make_engine

PV_TYPES = ("pageview", "page", "$pageview")
ALIASES = ("$pathname", "path", "page", "context.page.path")  # the documented order
PAGES = ("/pricing", "/docs", "/")
MISSING = object()

PageStep = tuple[str, str | None, str | None]  # (event type, operator or None, page)


def page_of(e: dict[str, Any]) -> Any:
    """The page path by hand: the first alias the event carries."""
    props = e.get("properties", {})
    return next((props[k] for k in ALIASES if k in props), MISSING)


def matches(e: dict[str, Any], step: tuple[str, str | None, str | None, str]) -> bool:
    """Whether `e` matches (type, operator, page, the property the condition names)."""
    etype, op, value, key = step
    if etype in PV_TYPES:
        if e["type"] not in PV_TYPES:
            return False
        page = page_of(e)
    else:
        if e["type"] != etype:
            return False
        page = e.get("properties", {}).get(key, MISSING)  # an ordinary property
    if op is None:
        return True
    if op == "eq":
        return page is not MISSING and page == value
    return page is MISSING or page != value  # neq matches a missing page


@st.composite
def mixed_event(draw: st.DrawFn) -> dict[str, Any]:
    etype = draw(st.sampled_from((*PV_TYPES, *PV_TYPES, "signup", "click")))
    props = {k: draw(st.one_of(st.sampled_from(PAGES), st.integers(0, 1)))
             for k in draw(st.lists(st.sampled_from(ALIASES), max_size=2, unique=True))}
    e: dict[str, Any] = {"type": etype, "timestamp": T0 + draw(st.integers(0, 40)),
                         "userId": draw(st.sampled_from(("u1", "u2", "u3"))),
                         "sessionId": draw(st.sampled_from(("s1", "s2")))}
    if props:
        e["properties"] = props
    return e


STEPS = st.tuples(st.sampled_from((*PV_TYPES, "signup")), st.sampled_from((None, "eq", "neq")),
                  st.sampled_from(PAGES))


def _spec(step: PageStep, key: str) -> Any:
    etype, op, value = step
    if op is None:
        return etype
    return {"eventType": etype, "where": [{"property": key, "operator": op, "value": value}]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(mixed_event(), max_size=30), steps=st.lists(STEPS, min_size=2,
                                                                    max_size=3),
       key=st.sampled_from(ALIASES), window=st.integers(1, 30),
       order=st.sampled_from(("ordered", "strict", "any")),
       unit=st.sampled_from(("users", "sessions")))
def test_page_steps_match_the_naive_reference(events: list[dict[str, Any]],
                                              steps: list[PageStep], key: str, window: int,
                                              order: str, unit: str) -> None:
    eng = make_engine(events)
    body = {"steps": [_spec(s, key) for s in steps], "timeLimit": window, "order": order,
            "countBy": unit}
    out = behaviour.run_funnel(eng, body, NOW)
    # a page condition names the page whichever alias the user wrote it with
    with mock.patch.object(test_funnel, "_matches", matches):
        want = test_funnel.reference(events, [(*s, key) for s in steps],  # type: ignore[misc]
                                     window, order, unit)
    assert [s["count"] for s in out["steps"]] == want


def test_both_sdks_reach_a_page_step_both_ways() -> None:
    events = [
        {"type": "pageview", "timestamp": T0, "userId": "u1", "properties": {"page": "/pricing"}},
        {"type": "$pageview", "timestamp": T0, "userId": "u2",
         "properties": {"$pathname": "/pricing", "$current_url": "https://a.io/pricing"}},
        {"type": "page", "timestamp": T0, "userId": "u3",
         "properties": {"context.page.path": "/pricing"}},
        {"type": "$pageview", "timestamp": T0, "userId": "u4", "properties": {"$pathname": "/"}},
        *({"type": "signup", "timestamp": T0 + 5, "userId": u} for u in ("u1", "u2", "u4"))]
    eng = make_engine(events)
    for etype, key in (("pageview", "page"), ("$pageview", "$pathname"), ("page", "path")):
        body = {"steps": [{"eventType": etype, "where": {key: "/pricing"}}, "signup"]}
        assert [s["count"] for s in behaviour.run_funnel(eng, body, NOW)["steps"]] == [3, 2]
        # the answer names the step as written
        assert behaviour.run_funnel(eng, body, NOW)["steps"][0]["eventType"] == etype
    assert [s["count"] for s in behaviour.run_funnel(
        eng, {"steps": ["$pageview", "signup"]}, NOW)["steps"]] == [4, 3]


def test_the_rewrite_keeps_other_steps_and_the_users_where() -> None:
    q = parse("funnel", {"steps": [{"eventType": "pageview", "where": {"page": "/x",
                                                                       "plan": "pro"}},
                                   {"eventType": "signup", "where": {"page": "/x"}}]}, NOW)
    first, second = q.steps  # type: ignore[attr-defined]
    assert first.where == Group("and", (Predicate("page", "eq", "/x"),
                                        Predicate("plan", "eq", "pro")))
    assert first.flt.types == PV_TYPES and first.flt.where != first.where
    assert second.flt == step_filter("signup", second.where)
    assert second.flt.types == ("signup",) and second.flt.where == second.where
    assert step_filter("pageview", None).where is None


# -- retention and segments: the same rule, checked against a canonical log -------------------

def canonical(e: dict[str, Any]) -> dict[str, Any]:
    """The event as rta's own `pageview` with its page in `page` (the naive page above)."""
    if e["type"] not in PV_TYPES:
        return e
    out = {**e, "type": "pageview"}
    out.pop("properties", None)
    page = page_of(e)
    if page is not MISSING:
        out["properties"] = {"page": page}
    return out


def _cond(step: PageStep, key: str) -> tuple[str, list[dict[str, Any]] | None]:
    etype, op, value = step
    where = None if op is None else [{"property": key, "operator": op, "value": value}]
    return etype, where


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(mixed_event(), max_size=30), entry=STEPS, ret=STEPS,
       key=st.sampled_from(ALIASES), rtype=st.sampled_from(("first_time", "recurring")),
       count=st.integers(0, 2))
def test_retention_and_segments_read_page_steps(events: list[dict[str, Any]], entry: PageStep,
                                                ret: PageStep, key: str, rtype: str,
                                                count: int) -> None:
    mixed, plain = make_engine(events), make_engine([canonical(e) for e in events])

    def as_written(step: PageStep, alias: str) -> tuple[str, list[dict[str, Any]] | None]:
        """The mixed query names the page by `key`; the canonical one by `page` (other
        types' properties are the same on both logs, so named alike)."""
        if step[0] not in PV_TYPES:
            return _cond(step, key)
        etype, where = _cond(step, alias)
        return ("pageview" if alias == "page" else etype), where

    def cohort(alias: str) -> dict[str, Any]:
        (et, ew), (rt, rw) = as_written(entry, alias), as_written(ret, alias)
        body: dict[str, Any] = {"entryEvent": et, "retentionEvent": rt, "periods": 3,
                                "periodLength": 10, "startTime": T0, "endTime": T0 + 40,
                                "retentionType": rtype}
        if ew:
            body["entryFilters"] = ew
        if rw:
            body["retentionFilters"] = rw
        return body

    got = behaviour.run_cohort(mixed, cohort(key), NOW)
    want = behaviour.run_cohort(plain, cohort("page"), NOW)
    assert got["cohorts"] == want["cohorts"]

    def segment(alias: str) -> dict[str, Any]:
        et, where = as_written(entry, alias)
        cond: dict[str, Any] = {"eventType": et, "count": {"operator": "gte", "value": count}}
        if where:
            cond["where"] = where
        return {"filters": [cond], "sampleSize": 100}

    got = behaviour.run_segment(mixed, segment(key), NOW)
    want = behaviour.run_segment(plain, segment("page"), NOW)
    assert sorted(got["sampleUsers"]) == sorted(want["sampleUsers"])
    assert got["userCount"] == want["userCount"]
