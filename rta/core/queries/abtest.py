"""A/B test analysis: exposures, conversions, intervals, tests and a verdict per variant.

Semantics (formulas in docs/statistics.md):

- **Exposure**: a user's first assignment event (`eventType`, optional `filters`, in
  [startTime, endTime]) carrying `variantProperty`. Users seen in more than one variant are
  contaminated: they are left out of every variant and counted in `excludedUsers`.
- **Conversion**: a `metricEvent` (optional `metricFilters`) at or after the user's exposure
  timestamp (same millisecond counts) and before endTime when given.
- **Metric**: with `metricProperty`, each exposed user's value is the sum of that property over
  their counted metric events (0 when none); variants compare the mean per exposed user.
- Each variant is compared to `control` (default "control"): two-proportion z-test (pooled),
  Wilson interval per variant, relative lift with a log-ratio (Katz) interval, Welch's t-test
  on the metric, and the Beta(1+c, 1+n-c) posterior probability that the variant beats
  control. With m > 1 variants, Bonferroni: p-values are multiplied by m and the lift
  intervals use level 1 - alpha/m.
- Verdict: `insufficient_sample` if control or the variant has fewer than
  `minimumSampleSize` exposures, else `significant` when the adjusted p-value < alpha, else
  `not_significant`. A chi-square goodness-of-fit test on exposures against the expected split
  (equal unless `expectedSplit` is given) flags a sample-ratio mismatch when p < 0.001.

The distributions are implemented here with `math` (regularised incomplete beta and gamma
functions by continued fractions, as in Numerical Recipes), so the product needs no scipy.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from rta.core.errors import field_error
from rta.core.queries.behaviour_results import (
    AbExposures,
    AbTestResult,
    Comparison,
    MetricComparison,
    SampleRatio,
    VariantMetric,
    VariantMoments,
    VariantStats,
)
from rta.core.queries.behaviour_specs import AbTestQuery
from rta.core.queries.intervals import wilson

_NORMAL = NormalDist()
SRM_THRESHOLD = 0.001
_NOBODY = VariantMoments(0, 0, 0.0, 0.0, 0.0)  # a variant value nobody was exposed to


# -- distributions ---------------------------------------------------------------------------


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    return _NORMAL.inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
           + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if math.isinf(df):
        return norm_sf(t)
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t (bisection on the survival function; p in (0, 1))."""
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - p:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > 1.0 - p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x)."""
    if x <= 0.0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1.0:  # series for P, then Q = 1 - P
        ap, total = a, 1.0 / a
        delta = total
        for _ in range(100_000):
            ap += 1.0
            delta *= x / ap
            total += delta
            if abs(delta) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(-x + a * math.log(x) - gln) * h


def chi2_sf(x: float, df: float) -> float:
    return gammaincc(df / 2.0, x / 2.0)


# -- statistics --------------------------------------------------------------------------------


def two_proportion_z(c1: int, n1: int, c2: int, n2: int) -> tuple[float, float] | None:
    """Pooled two-proportion z-test of p2 - p1: (z, two-sided p)."""
    if n1 == 0 or n2 == 0:
        return None
    pool = (c1 + c2) / (n1 + n2)
    se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (c2 / n2 - c1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def lift_interval(c1: int, n1: int, c2: int, n2: int, z: float) -> tuple[float, float] | None:
    """Relative lift (p2/p1 - 1) interval by the log risk ratio (Katz)."""
    if min(c1, c2, n1, n2) == 0:
        return None
    rr = (c2 / n2) / (c1 / n1)
    se = math.sqrt(1 / c2 - 1 / n2 + 1 / c1 - 1 / n1)
    return math.exp(math.log(rr) - z * se) - 1, math.exp(math.log(rr) + z * se) - 1


def welch(m1: float, v1: float, n1: int, m2: float, v2: float, n2: int,
          ) -> tuple[float, float, float, float] | None:
    """Welch's t-test of mean2 - mean1: (t, df, two-sided p, standard error)."""
    if n1 < 2 or n2 < 2:
        return None
    a, b = v1 / n1, v2 / n2
    se = math.sqrt(a + b)
    if se == 0:
        return None
    t = (m2 - m1) / se
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    return t, df, min(1.0, 2.0 * t_sf(abs(t), df)), se


def prob_beats(c1: int, n1: int, c2: int, n2: int, grid: int = 4001) -> float:
    """P(p2 > p1) for independent Beta(1+c, 1+n-c) posteriors, by numerical integration.

    Integrates f2(x) * F1(x) on a grid spanning both posteriors' mass (±12 sd), with F1 the
    trapezoid cumulative of f1 on the same grid; accurate to ~1e-6 for any counts.
    """
    a1, b1, a2, b2 = 1.0 + c1, 1.0 + n1 - c1, 1.0 + c2, 1.0 + n2 - c2

    def moments(a: float, b: float) -> tuple[float, float]:
        m = a / (a + b)
        return m, math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    (m1, s1), (m2, s2) = moments(a1, b1), moments(a2, b2)
    lo = max(0.0, min(m1 - 12 * s1, m2 - 12 * s2))
    hi = min(1.0, max(m1 + 12 * s1, m2 + 12 * s2))
    x = np.linspace(lo, hi, grid)
    inner = x[1:-1]

    def pdf(a: float, b: float) -> np.ndarray:
        out = np.zeros(grid)
        lnorm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        with np.errstate(divide="ignore"):
            out[1:-1] = np.exp(lnorm + (a - 1) * np.log(inner) + (b - 1) * np.log1p(-inner))
        for i in (0, grid - 1):
            xi = x[i]
            if 0.0 < xi < 1.0:
                out[i] = math.exp(lnorm + (a - 1) * math.log(xi) + (b - 1) * math.log1p(-xi))
            elif (xi == 0.0 and a == 1.0) or (xi == 1.0 and b == 1.0):
                out[i] = math.exp(lnorm)
        return out

    f1, f2 = pdf(a1, b1), pdf(a2, b2)
    dx = np.diff(x)
    cdf1 = np.concatenate(([0.0], np.cumsum((f1[1:] + f1[:-1]) * dx / 2)))
    total1 = cdf1[-1]
    if total1 > 0:
        cdf1 = cdf1 / total1
    g = f2 * cdf1
    val = float(np.sum((g[1:] + g[:-1]) * dx / 2))
    norm2 = float(np.sum((f2[1:] + f2[:-1]) * dx / 2))
    return min(1.0, max(0.0, val / norm2 if norm2 > 0 else 0.5))


def srm_test(observed: list[int], weights: list[float]) -> tuple[float, float]:
    """Chi-square goodness of fit of `observed` against proportions `weights`: (chi2, p)."""
    total = sum(observed)
    wsum = sum(weights)
    if total == 0 or len(observed) < 2:
        return 0.0, 1.0
    chi = 0.0
    for o, w in zip(observed, weights, strict=True):
        e = total * w / wsum
        if e > 0:
            chi += (o - e) ** 2 / e
    return chi, chi2_sf(chi, len(observed) - 1)


# -- the query ---------------------------------------------------------------------------------


def analyse(q: AbTestQuery, exp: AbExposures) -> AbTestResult:
    """The A/B statistics over a backend's per-variant partials (pure maths)."""
    alpha, control, wanted, split = q.alpha, q.control, q.variants, q.split
    min_n, mprop, labels = q.minimum_sample, q.metric_property, exp.labels
    present = sorted(exp.present, key=lambda i: str(labels[i]))
    names = [labels[i] for i in present]
    if wanted is not None:
        names = list(wanted)
    elif names and control not in names:
        same = [name for name in names if str(name) == str(control)]
        if not same:  # a typo would otherwise compare every variant against nothing
            raise field_error("control", f"{control!r} is not one of the variants seen: "
                              f"{', '.join(map(str, names))}", value=control,
                              allowed=names)
        control = same[0]  # "1" given for the variant value 1
    variants: list[VariantStats] = []
    z95 = norm_ppf(1 - alpha / 2)
    stats: dict[Any, tuple[int, int, float, float]] = {}
    for name in names:
        idx = labels.index(name) if name in labels else -1
        mo = exp.moments.get(idx, _NOBODY)
        n, c, mean, var = mo.exposures, mo.conversions, mo.mean, mo.variance
        stats[name] = (n, c, mean, var)
        ci = wilson(c, n, z95)
        variants.append(VariantStats(
            name, name == control, n, c, round(100.0 * c / n, 4) if n else 0.0,
            None if ci is None else (round(100 * ci[0], 4), round(100 * ci[1], 4)),
            n >= min_n,
            VariantMetric(round(mean, 6), round(math.sqrt(var), 6), round(mo.total, 6))
            if mprop else None))
    variants.sort(key=lambda v: not v.is_control)
    others = [v.name for v in variants if not v.is_control]
    k = max(1, len(others))
    alpha_adj = alpha / k
    z_adj = norm_ppf(1 - alpha_adj / 2)
    comparisons: list[Comparison] = []
    n0, c0, mean0, var0 = stats.get(control, (0, 0, 0.0, 0.0))
    for name in others:
        n1, c1, mean1, var1 = stats[name]
        zt = two_proportion_z(c0, n0, c1, n1)
        li = lift_interval(c0, n0, c1, n1, z_adj)
        p0, p1 = (c0 / n0 if n0 else 0.0), (c1 / n1 if n1 else 0.0)
        pval = None if zt is None else zt[1]
        adj = None if pval is None else min(1.0, pval * k)
        metric = None
        if mprop:
            w = welch(mean0, var0, n0, mean1, var1, n1)
            if w is not None:
                tq = t_ppf(1 - alpha_adj / 2, w[1])
                diff = mean1 - mean0
                metric = MetricComparison(
                    round(diff, 6), round(w[0], 6), round(w[1], 4), w[2], min(1.0, w[2] * k),
                    (round(diff - tq * w[3], 6), round(diff + tq * w[3], 6)),
                    min(1.0, w[2] * k) < alpha)
        if n0 < min_n or n1 < min_n:
            verdict = "insufficient_sample"
        elif adj is not None and adj < alpha:
            verdict = "significant"
        else:
            verdict = "not_significant"
        comparisons.append(Comparison(
            name, control, round(100 * (p1 - p0), 4),
            round(100 * (p1 / p0 - 1), 4) if p0 > 0 else None,
            None if li is None else (round(100 * li[0], 4), round(100 * li[1], 4)),
            None if zt is None else round(zt[0], 6), pval, adj,
            round(prob_beats(c0, n0, c1, n1), 6), verdict == "significant", verdict,
            bool(mprop), metric))
    if any(c.verdict == "insufficient_sample" for c in comparisons) or not comparisons \
            or n0 < min_n:
        verdict = "insufficient_sample"
    elif any(c.significant for c in comparisons):
        verdict = "significant"
    else:
        verdict = "not_significant"
    winner = None
    if verdict == "significant":
        wins = [c for c in comparisons if c.significant and c.difference > 0]
        if wins:
            winner = max(wins, key=lambda c: c.difference).variant
        elif all(c.significant and c.difference < 0 for c in comparisons):
            winner = control
    observed = [v.exposures for v in variants]
    weights = [float(split.get(str(v.name), 0)) if split else 1.0 for v in variants]
    if split and not all(w > 0 for w in weights):
        raise field_error("expectedSplit", "must give a weight for every variant",
                          variants=[v.name for v in variants])
    chi, srm_p = srm_test(observed, weights)
    return AbTestResult(
        q.name, q.assign, q.variant_property, q.metric_event, mprop, control, q.level, alpha,
        "bonferroni" if k > 1 else None, round(alpha_adj, 12), min_n, exp.total_exposures,
        exp.excluded_users, tuple(variants), tuple(comparisons), verdict, winner,
        SampleRatio(round(chi, 6), srm_p, srm_p < SRM_THRESHOLD, SRM_THRESHOLD,
                    tuple(round(sum(observed) * w / sum(weights), 3) for w in weights)
                    if observed else ()))
