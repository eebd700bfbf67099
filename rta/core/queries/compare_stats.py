"""The significance tests of period comparisons (docs/statistics.md, "Comparisons").

- Counts: the exact conditional test of two Poisson counts over equal exposures. Given
  x1 + x2 = n, under H0 (equal rates) x1 ~ Binomial(n, 1/2); the two-sided p-value sums
  the probabilities of every outcome no more likely than x1 (scipy's `binomtest`), which
  for p = 1/2 is 2 * P(X <= min(x1, n - x1)), capped at 1.
- Unique users: the exact McNemar test. Users active in the current period only (b) and in
  the previous one only (c) are the discordant pairs; under H0 (a user is as likely to be
  active in either period) b ~ Binomial(b + c, 1/2), tested as above.

The binomial tail is summed exactly (term by term from the observed value outwards, in
log space, stopping once the terms no longer change the sum in double precision), so it is
exact for counts of any size without scipy.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.05
_CHUNK = 65_536


def binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), for k <= n / 2 (the tail below the mode)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_top = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
               - n * math.log(2.0))
    # pmf(j - 1) = pmf(j) * j / (n - j + 1): walk down from k, summing relative to pmf(k)
    total = 1.0
    log_rel = 0.0
    j = k
    while j > 0:
        js = np.arange(j, max(j - _CHUNK, 0), -1, dtype=np.float64)
        steps = log_rel + np.cumsum(np.log(js) - np.log(n - js + 1.0))
        terms = np.exp(steps)
        total += float(terms.sum())
        log_rel = float(steps[-1])
        j -= len(js)
        if terms[-1] < total * 1e-17:
            break
    return min(1.0, math.exp(log_top + math.log(total)))


def binom_test_half(x: int, n: int) -> float:
    """Two-sided exact p-value of x successes in n trials against p = 1/2 (as scipy's
    `binomtest(x, n, 0.5).pvalue`)."""
    if n <= 0:
        return 1.0
    low = min(x, n - x)
    if 2 * low == n:
        return 1.0
    return min(1.0, 2.0 * binom_cdf_half(low, n))


@dataclass(frozen=True)
class Significance:
    """A test's outcome: which test, its p-value, and whether p < alpha."""

    test: str
    p_value: float
    details: tuple[tuple[str, int], ...] = ()
    alpha: float = ALPHA

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "pValue": self.p_value, "alpha": self.alpha,
                "significant": self.significant, **dict(self.details)}


def poisson_test(current: int, previous: int) -> Significance:
    """Two counts over equally long periods: the exact conditional (binomial) test."""
    return Significance("poisson_exact_conditional", binom_test_half(current, current + previous))


def mcnemar_test(only_current: int, only_previous: int, both: int) -> Significance:
    """Distinct users of two periods: the exact McNemar test on the discordant users."""
    return Significance("mcnemar_exact", binom_test_half(only_current,
                                                         only_current + only_previous),
                        (("onlyCurrent", only_current), ("onlyPrevious", only_previous),
                         ("both", both)))
