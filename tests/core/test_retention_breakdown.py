"""Retention split by a property and cohorts defined by filters, on a hand-made log: the
value comes from each membership's entry event (the first, ties by arrival), users without
it are the `null` group, and answers without a breakdown keep their shape."""

from __future__ import annotations

from typing import Any

import pytest

from rta.core.errors import ValidationError
from rta.core.queries import behaviour
from rta.core.queries.behaviour_specs import parse_cohort
from tests.core.test_analytics import make_engine

DAY = 86_400_000
T0 = 1_700_006_400_000
NOW = T0 + 3 * DAY + 5


def _log() -> list[dict[str, Any]]:
    def ev(t: str, u: str, day: int, off: int = 0, **props: Any) -> dict[str, Any]:
        return {"type": t, "userId": u, "timestamp": T0 + day * DAY + off,
                **({"properties": props} if props else {})}

    return [
        ev("signup", "a", 0, plan="pro"), ev("signup", "a", 0, plan="free"),  # tie: first wins
        ev("visit", "a", 1), ev("visit", "a", 2),
        ev("signup", "b", 0, 5, plan="free"), ev("visit", "b", 1),
        ev("signup", "c", 1, plan="pro"), ev("visit", "c", 2, page="/x"),
        ev("signup", "d", 1), ev("signup", "d", 2, plan="pro"),  # first entry has no plan
        ev("visit", "e", 0, page="/x"), ev("visit", "e", 2, page="/x"),
    ]


def _run(body: dict[str, Any]) -> dict[str, Any]:
    eng = make_engine(_log(), chunk=3)
    return behaviour.run_cohort(eng, {"startTime": T0, "endTime": T0 + 3 * DAY - 1,
                                      "periods": 2, **body}, NOW)


def test_breakdown_by_the_entry_events_value() -> None:
    out = _run({"entryEvent": "signup", "retentionEvent": "visit", "breakdown": "plan"})
    assert out["breakdownProperty"] == "plan" and out["breakdownTruncated"] is False
    groups = {g["value"]: g for g in out["breakdown"]}
    assert [g["value"] for g in out["breakdown"]] == ["pro", None, "free"]  # size, text
    pro, free, unset = groups["pro"], groups["free"], groups[None]
    assert (pro["totalUsers"], free["totalUsers"], unset["totalUsers"]) == (2, 1, 1)
    assert [c["size"] for c in pro["cohorts"]] == [1, 1, 0]  # a (day 0), c (day 1)
    assert pro["cohorts"][0]["counts"] == [0, 1, 1]
    assert pro["cohorts"][1]["counts"] == [0, 1, 0]
    assert free["cohorts"][0]["counts"] == [0, 1, 0]  # b
    assert [c["size"] for c in unset["cohorts"]] == [0, 1, 0]  # d's first signup
    assert "intervals" in pro["cohorts"][0] and pro["average"]["size"] == 2

    limited = _run({"entryEvent": "signup", "retentionEvent": "visit", "breakdown": "plan",
                    "breakdownLimit": 1})
    assert limited["breakdownTruncated"] and len(limited["breakdown"]) == 1
    plain = _run({"entryEvent": "signup", "retentionEvent": "visit"})
    assert "breakdown" not in plain
    assert {k: v for k, v in out.items() if not k.startswith("breakdown")} == plain


def test_cohort_defined_by_filters_alone() -> None:
    out = _run({"entryFilters": {"page": "/x"}, "breakdown": "page"})
    assert out["entryEvent"] is None and out["retentionEvent"] is None
    # entry: any event with page=/x (c on day 2, e on day 0); return: any event
    assert [c["size"] for c in out["cohorts"]] == [1, 0, 1]
    assert out["cohorts"][0]["counts"] == [1, 0, 1]
    assert out["breakdown"][0]["value"] == "/x"
    typed = _run({"entryFilters": {"page": "/x"}, "retentionEvent": "visit"})
    assert typed["retentionEvent"] == "visit" and typed["cohorts"][0]["counts"] == [1, 0, 1]


def test_bad_breakdowns_name_their_field() -> None:
    for body, field in (({"entryEvent": "a", "breakdown": 3}, "breakdown"),
                        ({"entryEvent": "a", "breakdown": {"property": ""}}, "breakdown"),
                        ({"entryEvent": "a", "breakdownLimit": 0}, "breakdownLimit"),
                        ({}, "entryEvent"), ({"entryFilters": {}}, "entryEvent")):
        with pytest.raises(ValidationError) as err:
            parse_cohort(body, NOW)
        assert err.value.details[0]["field"] == field
