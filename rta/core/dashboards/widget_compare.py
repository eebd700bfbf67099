"""A counter's change against the previous period (`compare: "previous_period"` on its
data source).

The previous period is the counter's own window moved back by its length: [start - L,
end - L) for a window [start, end) of length L (a counter covers exactly its window, so no
bucket rounding applies). The previous value is resolved by the same widget path as the
current one (count, unique users, an aggregation or a formula), and the view gains
`comparison`, shaped as the analytics API's (`queries/compare.py`): the previous `value`,
`absoluteChange`, `relativeChange` (null when the previous value is 0) and `significance`:
the exact conditional Poisson test for counts (a count source, or an aggregation of count),
the exact McNemar test for unique users (the users of both periods together give those seen
in both), null for other aggregations and formulas (docs/statistics.md, "Comparisons").

Thread rule: in the dashboard's worker thread, over its pinned backend view.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from rta.core.queries import compare as cmp
from rta.core.queries.compare_stats import Significance, mcnemar_test, poisson_test

if TYPE_CHECKING:
    from rta.core.dashboards.widgets import Pinned, Window


def counter(pinned: Pinned, widget: dict[str, Any], index: int, src: dict[str, Any],
            win: Window, tz_offset_min: int) -> dict[str, Any]:
    """The counter's value view with the previous period's `comparison`."""
    from rta.core.dashboards import widgets as w

    plain = {k: v for k, v in src.items() if k != "compare"}
    view = w._widget_view(pinned, widget, index, plain, win, tz_offset_min)
    length = win.end - win.start
    before = dataclasses.replace(win, start=win.start - length, end=win.end - length)
    previous = w._widget_view(pinned, widget, index, plain, before, tz_offset_min)["value"]
    current = view["value"]
    sig = _significance(pinned, plain, win, length, current, previous)
    comparison = cmp.Comparison(length, before.start, before.end - 1, current, previous, sig)
    return {**view, "comparison": comparison.to_json()}


def _significance(pinned: Pinned, src: dict[str, Any], win: Window, shift: int,
                  current: Any, previous: Any) -> Significance | None:
    if current is None or previous is None or "series" in src:
        return None
    measure = src["type"] if src["type"] != "aggregation" else src.get("aggregation", "count")
    if measure == "count":
        return poisson_test(int(current), int(previous))
    if measure == "unique_users":
        from rta.core.dashboards.widgets import _source_filter

        union = cmp.union_filter(_source_filter(pinned, src, win), win.start, win.end, shift)
        either, _ = pinned.ctx.backend.unique_users(union)
        both = int(current) + int(previous) - int(either)
        return mcnemar_test(int(current) - both, int(previous) - both, both)
    return None
