"""A/B tests: the distributions against scipy, the statistics against scipy / published
formulas, and exposure/conversion counting against a naive reference."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from rta.core.errors import ValidationError
from rta.core.queries import abtest, behaviour
from tests.core.test_funnel_data import NOW, T0, make_engine


@pytest.mark.parametrize("df", [1, 2.5, 7, 30, 400])
@pytest.mark.parametrize("t", [0.0, 0.3, 1.7, 4.2, -2.2, 12.0])
def test_t_distribution(df: float, t: float) -> None:
    assert abtest.t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("df", [1, 3, 12.5, 80])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.9995])
def test_t_quantile(df: float, p: float) -> None:
    assert abtest.t_ppf(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8)


@pytest.mark.parametrize("df", [1, 2, 5, 30])
@pytest.mark.parametrize("x", [0.01, 0.5, 3.0, 11.3, 60.0])
def test_chi_square(df: int, x: float) -> None:
    assert abtest.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(a=st.floats(0.1, 500), b=st.floats(0.1, 500), x=st.floats(0, 1))
def test_incomplete_beta(a: float, b: float, x: float) -> None:
    from scipy.special import betainc

    assert abtest.betainc(a, b, x) == pytest.approx(betainc(a, b, x), rel=1e-8, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(n1=st.integers(1, 3000), n2=st.integers(1, 3000), f1=st.floats(0, 1),
       f2=st.floats(0, 1))
def test_proportion_statistics(n1: int, n2: int, f1: float, f2: float) -> None:
    c1, c2 = round(n1 * f1), round(n2 * f2)
    lo, hi = stats.binomtest(c2, n2).proportion_ci(0.95, method="wilson")
    ours = abtest.wilson(c2, n2, abtest.norm_ppf(0.975))
    assert ours is not None
    assert ours == pytest.approx((lo, hi), abs=1e-9)
    z = abtest.two_proportion_z(c1, n1, c2, n2)
    assert z is not None
    if 0 < c1 + c2 < n1 + n2:  # the pooled z-test is the uncorrected chi-square test
        chi = stats.chi2_contingency([[c1, n1 - c1], [c2, n2 - c2]], correction=False)
        assert z[1] == pytest.approx(chi.pvalue, rel=1e-7, abs=1e-12)
        assert z[0] ** 2 == pytest.approx(chi.statistic, rel=1e-7, abs=1e-9)
    if min(c1, c2) > 0:
        rr = stats.contingency.relative_risk(c2, n2, c1, n1).confidence_interval(0.95)
        li = abtest.lift_interval(c1, n1, c2, n2, abtest.norm_ppf(0.975))
        assert li is not None
        assert li == pytest.approx((rr.low - 1, rr.high - 1), rel=1e-7)


@settings(max_examples=40, deadline=None)
@given(c1=st.integers(0, 300), n1=st.integers(300, 2000), c2=st.integers(0, 300),
       n2=st.integers(300, 2000))
def test_probability_to_beat_control(c1: int, n1: int, c2: int, n2: int) -> None:
    a1, b1, a2, b2 = 1 + c1, 1 + n1 - c1, 1 + c2, 1 + n2 - c2
    # exact: P(X2 > X1) = integral of f2(x) F1(x)
    lo = min(stats.beta.ppf(1e-12, a1, b1), stats.beta.ppf(1e-12, a2, b2))
    hi = max(stats.beta.ppf(1 - 1e-12, a1, b1), stats.beta.ppf(1 - 1e-12, a2, b2))
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, a2, b2) * stats.beta.cdf(x, a1, b1),
                              lo, hi, limit=200, points=[a1 / (a1 + b1), a2 / (a2 + b2)])
    assert abtest.prob_beats(c1, n1, c2, n2) == pytest.approx(exact, abs=2e-5)


def test_welch_and_srm_against_scipy() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.exponential(5, 300), rng.exponential(6, 250)
    w = abtest.welch(float(x.mean()), float(x.var(ddof=1)), len(x), float(y.mean()),
                     float(y.var(ddof=1)), len(y))
    ref = stats.ttest_ind(y, x, equal_var=False)
    assert w is not None
    assert w[0] == pytest.approx(ref.statistic, rel=1e-10)
    assert w[2] == pytest.approx(ref.pvalue, rel=1e-8)
    assert w[1] == pytest.approx(ref.df, rel=1e-10)
    chi, p = abtest.srm_test([5100, 4900, 5300], [1, 1, 1])
    ref2 = stats.chisquare([5100, 4900, 5300])
    assert (chi, p) == pytest.approx((ref2.statistic, ref2.pvalue), rel=1e-9)


def _experiment(rng: np.random.Generator, rates: dict[str, float], n: int,
                revenue: float = 10.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(n):
        variant = list(rates)[i % len(rates)]
        u = f"u{i}"
        t = T0 + int(rng.integers(0, 1000))
        events.append({"type": "experiment_assigned", "userId": u, "timestamp": t,
                       "properties": {"experiment": "btn", "variant": variant}})
        if rng.random() < rates[variant]:
            events.append({"type": "conversion", "userId": u, "timestamp": t + 5,
                           "properties": {"revenue": revenue * (1 + rng.random())}})
    return events


def test_end_to_end_matches_statistics() -> None:
    rng = np.random.default_rng(7)
    events = _experiment(rng, {"control": 0.10, "variant_a": 0.16, "variant_b": 0.10}, 3000)
    # contamination: u0 also sees variant_a later; a conversion before exposure is ignored
    events.append({"type": "experiment_assigned", "userId": "u0", "timestamp": T0 + 2000,
                   "properties": {"experiment": "btn", "variant": "variant_a"}})
    events.append({"type": "conversion", "userId": "late", "timestamp": T0,
                   "properties": {"revenue": 1.0}})
    events.append({"type": "experiment_assigned", "userId": "late", "timestamp": T0 + 10,
                   "properties": {"experiment": "btn", "variant": "control"}})
    eng = make_engine(events, chunk=500, max_events=2000)
    body = {"name": "Button Color Test", "eventType": "experiment_assigned",
            "variantProperty": "variant", "metricEvent": "conversion",
            "metricProperty": "revenue", "minimumSampleSize": 100,
            "filters": {"experiment": "btn"}}
    out = behaviour.run_abtest(eng, body, NOW)
    assert out["excludedUsers"] == 1
    # naive reference
    exposure: dict[str, tuple[int, set[str]]] = {}
    for e in events:
        if e["type"] == "experiment_assigned":
            t, vs = exposure.get(e["userId"], (e["timestamp"], set()))
            exposure[e["userId"]] = (min(t, e["timestamp"]), vs | {e["properties"]["variant"]})
    first_variant: dict[str, str] = {}
    for e in sorted((e for e in events if e["type"] == "experiment_assigned"),
                    key=lambda e: e["timestamp"]):
        first_variant.setdefault(e["userId"], e["properties"]["variant"])
    value: dict[str, float] = {}
    for e in events:
        u = e["userId"]
        if e["type"] == "conversion" and u in exposure and e["timestamp"] >= exposure[u][0]:
            value[u] = value.get(u, 0.0) + e["properties"]["revenue"]
    groups: dict[str, list[str]] = {}
    for u, (_, vs) in exposure.items():
        if len(vs) == 1:
            groups.setdefault(first_variant[u], []).append(u)
    variants = {v["name"]: v for v in out["variants"]}
    assert out["variants"][0]["name"] == "control"
    for name, users in groups.items():
        assert variants[name]["exposures"] == len(users)
        assert variants[name]["conversions"] == sum(u in value for u in users)
        assert variants[name]["metricMean"] == pytest.approx(
            np.mean([value.get(u, 0.0) for u in users]), rel=1e-6)
    comps = {c["variant"]: c for c in out["comparisons"]}
    ctrl = groups["control"]
    for name in ("variant_a", "variant_b"):
        users = groups[name]
        c0, c1 = sum(u in value for u in ctrl), sum(u in value for u in users)
        chi = stats.chi2_contingency([[c0, len(ctrl) - c0], [c1, len(users) - c1]],
                                     correction=False)
        assert comps[name]["pValue"] == pytest.approx(chi.pvalue, rel=1e-6)
        assert comps[name]["adjustedPValue"] == pytest.approx(min(1, 2 * chi.pvalue), rel=1e-6)
        t = stats.ttest_ind([value.get(u, 0.0) for u in users],
                            [value.get(u, 0.0) for u in ctrl], equal_var=False)
        assert comps[name]["metric"]["pValue"] == pytest.approx(t.pvalue, rel=1e-6)
    assert comps["variant_a"]["verdict"] == "significant"
    assert comps["variant_b"]["verdict"] == "not_significant"
    assert out["verdict"] == "significant" and out["winner"] == "variant_a"
    assert out["correction"] == "bonferroni"
    assert comps["variant_a"]["probabilityToBeatControl"] > 0.99
    assert not out["sampleRatioMismatch"]["detected"]


def test_insufficient_sample_and_srm() -> None:
    rng = np.random.default_rng(1)
    events = _experiment(rng, {"control": 0.1, "variant_a": 0.1}, 60)
    out = behaviour.run_abtest(make_engine(events), {
        "variantProperty": "variant", "metricEvent": "conversion", "minimumSampleSize": 100},
        NOW)
    assert out["verdict"] == "insufficient_sample"
    assert out["comparisons"][0]["verdict"] == "insufficient_sample"
    skewed = _experiment(rng, {"control": 0.1}, 600) + [
        {**e, "userId": e["userId"] + "b", "properties": {"variant": "variant_a"}}
        for e in _experiment(rng, {"control": 0.1}, 400) if e["type"] != "conversion"]
    out = behaviour.run_abtest(make_engine(skewed, chunk=500, max_events=2000), {
        "variantProperty": "variant", "metricEvent": "conversion"}, NOW)
    srm = out["sampleRatioMismatch"]
    assert srm["detected"] and srm["pValue"] == pytest.approx(
        stats.chisquare([600, 400]).pvalue, rel=1e-9)


@pytest.mark.parametrize(("body", "field"), [
    ({"metricEvent": "conversion"}, "variantProperty"),
    ({"variantProperty": "variant"}, "metricEvent"),
    ({"variantProperty": "v", "metricEvent": "c", "variants": ["only"]}, "variants"),
    ({"variantProperty": "v", "metricEvent": "c", "minimumSampleSize": -1},
     "minimumSampleSize"),
    ({"variantProperty": "v", "metricEvent": "c", "confidenceLevel": 2}, "confidenceLevel"),
    ({"variantProperty": "v", "metricEvent": "c", "segment": "Nope"}, "segment"),
])
def test_bad_input_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        behaviour.run_abtest(make_engine([]), body, NOW)
    assert info.value.details[0]["field"] == field


def test_normal_helpers() -> None:
    assert abtest.norm_cdf(1.959963984540054) == pytest.approx(0.975, rel=1e-12)
    assert abtest.norm_sf(3) == pytest.approx(stats.norm.sf(3), rel=1e-12)
    assert math.isclose(abtest.norm_ppf(0.975), stats.norm.ppf(0.975), rel_tol=1e-12)
