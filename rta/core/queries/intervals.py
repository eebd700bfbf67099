"""Wilson score intervals for the proportions behavioural answers report (funnel step rates,
retention cells, A/B conversion rates); docs/statistics.md gives the formula.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

import math
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054


def wilson(c: int, n: int, z: float) -> tuple[float, float] | None:
    """Wilson score interval for a proportion c/n (None when n is 0)."""
    if n == 0:
        return None
    p = c / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_pct(c: int | None, n: int | None) -> list[float] | None:
    """The 95% interval of c/n in percent (0-100, 4 decimals, like the A/B rates), as the
    JSON pair [low, high]; None without a denominator or a count."""
    if c is None or not n:
        return None
    ci = wilson(c, n, Z95)
    assert ci is not None
    return [round(100 * ci[0], 4), round(100 * ci[1], 4)]
