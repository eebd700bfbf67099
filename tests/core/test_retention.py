"""Cohort retention against a naive per-user reference on adversarial event logs."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.embedded import user_index
from rta.core.errors import ValidationError
from rta.core.queries import behaviour
from tests.core.test_funnel_data import NOW, T0, event_logs, make_engine


def reference(events: list[dict[str, Any]], entry: str, ret: str, periods: int, length: int,
              start: int, end: int, rtype: str, criterion: str, now: int,
              ) -> tuple[list[int], list[list[int | None]]]:
    ncoh = -(-(end - start) // length)
    # memberships: (user, cohort) -> entry ts
    members: dict[tuple[str, int], int] = {}
    if rtype == "first_time":
        first: dict[str, int] = {}
        for e in events:
            if e["type"] == entry and e["timestamp"] < end:
                first[e["userId"]] = min(first.get(e["userId"], e["timestamp"]),
                                         e["timestamp"])
        for u, t in first.items():
            if t >= start:
                members[(u, (t - start) // length)] = t
    else:
        for e in events:
            t = e["timestamp"]
            if e["type"] == entry and start <= t < end:
                key = (e["userId"], (t - start) // length)
                members[key] = min(members.get(key, t), t)
    returned: dict[tuple[str, int], set[int]] = defaultdict(set)
    for e in events:
        t = e["timestamp"]
        if e["type"] != ret or t < start or t > now:
            continue
        grid = (t - start) // length
        for (u, c), et in members.items():
            n = grid - c
            if u == e["userId"] and 0 <= n <= periods and t >= et:
                returned[(u, c)].add(n)
    sizes = [0] * ncoh
    grid_counts = [[0] * (periods + 1) for _ in range(ncoh)]
    for (u, c) in members:
        sizes[c] += 1
        got = returned.get((u, c), set())
        for n in range(periods + 1):
            hit = (n in got) if criterion == "on" else any(m >= n for m in got)
            grid_counts[c][n] += hit
    out: list[list[int | None]] = []
    for c in range(ncoh):
        out.append([None if start + (c + n) * length > now else grid_counts[c][n]
                    for n in range(periods + 1)])
    return sizes, out


@settings(max_examples=80, deadline=None)
@given(events=event_logs(), periods=st.integers(1, 5), length=st.integers(5, 120),
       lo=st.integers(-50, 100), span=st.integers(1, 300),
       rtype=st.sampled_from(("first_time", "recurring")),
       criterion=st.sampled_from(("on", "on_or_after")),
       now_off=st.integers(0, 400), ret=st.sampled_from(("a", "b")))
def test_matches_reference(events: list[dict[str, Any]], periods: int, length: int, lo: int,
                           span: int, rtype: str, criterion: str, now_off: int,
                           ret: str) -> None:
    eng = make_engine(events)
    start, end = T0 + lo, T0 + lo + span
    now = T0 + now_off + 1000 if now_off > 300 else T0 + now_off
    now = max(now, end)  # endTime may not be in the future of `now` in practice
    body = {"entryEvent": "a", "retentionEvent": ret, "periods": periods,
            "periodLength": length, "startTime": start, "endTime": end - 1,
            "retentionType": rtype, "criterion": criterion}
    out = behaviour.run_cohort(eng, body, now)
    sizes, grid = reference(events, "a", ret, periods, length, start, end, rtype, criterion,
                            now)
    assert [c["size"] for c in out["cohorts"]] == sizes
    assert [c["counts"] for c in out["cohorts"]] == grid
    for n in range(periods + 1):
        seen = [(c["counts"][n], c["size"]) for c in out["cohorts"] if c["counts"][n] is not None]
        if seen:
            num, den = sum(a for a, _ in seen), sum(b for _, b in seen)
            assert out["average"]["counts"][n] == num
            assert out["average"]["percentages"][n] == (round(100 * num / den, 2) if den else 0)


def _ev(t: str, u: str, dt: int) -> dict[str, Any]:
    return {"type": t, "userId": u, "timestamp": T0 + dt}


def test_daily_example_and_defaults() -> None:
    day = 86_400_000
    base = (NOW // day - 3) * day
    events = [{"type": "signup", "userId": "u1", "timestamp": base + 10},
              {"type": "login", "userId": "u1", "timestamp": base + day + 5},
              {"type": "signup", "userId": "u2", "timestamp": base + 20},
              {"type": "login", "userId": "u2", "timestamp": base + 2 * day + 5},
              {"type": "login", "userId": "u2", "timestamp": base + 5},  # before signup
              {"type": "signup", "userId": "u3", "timestamp": base + day + 1}]
    eng = make_engine(events)
    out = behaviour.run_cohort(eng, {"name": "User Retention", "entryEvent": "signup",
                                     "retentionEvent": "login", "periods": 3,
                                     "periodLength": day}, NOW)
    assert out["startTime"] == base
    first = out["cohorts"][0]
    assert first["size"] == 2 and first["counts"] == [0, 1, 1, 0]
    assert first["percentages"] == [0, 50, 50, 0]
    assert out["cohorts"][1]["counts"] == [0, 0, 0, None]
    assert out["cohorts"][3]["counts"] == [0, None, None, None]
    assert out["average"]["size"] == 3
    assert out["average"]["counts"][:2] == [0, 1]


@pytest.mark.parametrize(("body", "field"), [
    ({"retentionEvent": "login"}, "entryEvent"),
    ({"entryEvent": "s", "periods": 0}, "periods"),
    ({"entryEvent": "s", "periodLength": 0}, "periodLength"),
    ({"entryEvent": "s", "retentionType": "sometimes"}, "retentionType"),
    ({"entryEvent": "s", "criterion": "before"}, "criterion"),
    ({"entryEvent": "s", "periodLength": 1, "startTime": 0, "endTime": 10**9}, "periodLength"),
    ({"entryEvent": "s", "segment": "Missing"}, "segment"),
])
def test_bad_input_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        behaviour.run_cohort(make_engine([]), body, NOW)
    assert info.value.details[0]["field"] == field


@settings(max_examples=50, deadline=None)
@given(events=event_logs(), periods=st.integers(1, 5), length=st.integers(5, 120),
       lo=st.integers(-50, 100), span=st.integers(1, 300),
       rtype=st.sampled_from(("first_time", "recurring")),
       criterion=st.sampled_from(("on", "on_or_after")), filtered=st.booleans(),
       on_disk=st.booleans())
def test_indexed_equals_gathered(events: list[dict[str, Any]], periods: int, length: int,
                                 lo: int, span: int, rtype: str, criterion: str,
                                 filtered: bool, on_disk: bool) -> None:
    """The per-type user index (cached for on-disk segments) and the gather-and-sort path
    give the same whole answer, with entry and retention filters."""
    start = T0 + lo
    body: dict[str, Any] = {
        "entryEvent": "a", "retentionEvent": "b", "periods": periods, "periodLength": length,
        "startTime": start, "endTime": start + span - 1, "retentionType": rtype,
        "criterion": criterion}
    if filtered:
        body.update(entryFilters={"k": 1}, retentionFilters=[
            {"property": "k", "operator": "neq", "value": 0}])
    with tempfile.TemporaryDirectory() as tmp:
        eng = make_engine(events, data_dir=tmp if on_disk else None)
        try:
            fast = behaviour.run_cohort(eng, body, NOW)
            with pytest.MonkeyPatch.context() as mp:
                real = user_index.EventIndex.__init__

                def unindexed(self: user_index.EventIndex, snap: Any) -> None:
                    real(self, snap)
                    self.ok = False

                mp.setattr(user_index.EventIndex, "__init__", unindexed)
                slow = behaviour.run_cohort(eng, body, NOW)
        finally:
            eng.close()
    assert fast == slow
