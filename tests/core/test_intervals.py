"""95% Wilson intervals of funnel step rates and retention cells: the formula against scipy,
and the answers' intervals against the counts they describe."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rta.core.queries import behaviour
from rta.core.queries.intervals import wilson_pct
from tests.core.test_analytics import make_engine

DAY = 86_400_000
T0 = 1_700_006_400_000


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 100_000), share=st.floats(0, 1))
def test_wilson_matches_scipy(n: int, share: float) -> None:
    c = round(share * n)
    ci = stats.binomtest(c, n).proportion_ci(0.95, method="wilson")
    got = wilson_pct(c, n)
    assert got is not None
    assert got == pytest.approx([100 * ci.low, 100 * ci.high], abs=1e-4)
    assert wilson_pct(c, 0) is None and wilson_pct(None, n) is None


def _check(ci: list[float] | None, c: int | None, n: int | None) -> None:
    if c is None or not n:
        assert ci is None
        return
    want = stats.binomtest(c, n).proportion_ci(0.95, method="wilson")
    assert ci == pytest.approx([100 * want.low, 100 * want.high], abs=1e-4)


def _events() -> list[dict[str, Any]]:
    out = []
    for i in range(40):
        u = f"u{i}"
        out.append({"type": "a", "userId": u, "timestamp": T0 + i * 1000})
        if i % 3:
            out.append({"type": "b", "userId": u, "timestamp": T0 + DAY + i * 1000})
        if i % 5 == 0:
            out.append({"type": "c", "userId": u, "timestamp": T0 + 2 * DAY + i * 1000})
    return out


def test_funnel_steps_carry_wilson_intervals() -> None:
    eng = make_engine(_events(), chunk=16)
    out = behaviour.run_funnel(eng, {"steps": ["a", "b", "c", "never", "gone"], "startTime": T0,
                                     "endTime": T0 + 3 * DAY}, T0 + 4 * DAY)
    steps = out["steps"]
    assert steps[0]["conversionInterval"] is None
    assert steps[0]["overallConversionInterval"] is None
    for k in range(1, len(steps)):
        _check(steps[k]["conversionInterval"], steps[k]["count"], steps[k - 1]["count"])
        _check(steps[k]["overallConversionInterval"], steps[k]["count"], steps[0]["count"])
    assert steps[3]["conversionInterval"][0] == 0.0  # none of step 2's users: [0, z²/(n+z²)]
    assert steps[4]["conversionInterval"] is None  # nobody reached step 3 to go on
    _check(out["overallConversionInterval"], out["totalCompleted"], out["totalEntered"])
    lo, hi = steps[1]["conversionInterval"]
    assert lo < steps[1]["conversionRate"] < hi


def test_retention_cells_carry_wilson_intervals() -> None:
    eng = make_engine(_events(), chunk=16)
    out = behaviour.run_cohort(eng, {"entryEvent": "a", "retentionEvent": "b", "periods": 3,
                                     "startTime": T0, "endTime": T0 + 3 * DAY - 1},
                               T0 + 2 * DAY + 5)
    assert out["cohorts"]
    for row in out["cohorts"]:
        assert len(row["intervals"]) == len(row["counts"])
        for c, ci in zip(row["counts"], row["intervals"], strict=True):
            _check(ci, c, row["size"])
    avg = out["average"]
    for n, ci in enumerate(avg["intervals"]):
        sizes = sum(r["size"] for r in out["cohorts"] if r["counts"][n] is not None)
        _check(ci, avg["counts"][n], sizes)
    assert avg["intervals"][-1] is None  # period 3 has not started for any cohort
