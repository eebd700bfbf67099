"""Annotations in real headless Chromium: markers on every time-series chart of the
dashboard with the text on hover, and one made from the page's own form."""

from __future__ import annotations

from typing import Any

import pytest

from rta.core.queries.timeparse import now_ms
from tests.web.conftest import Site

pytestmark = pytest.mark.browser

HOUR = 3_600_000
SERIES = ("line-chart", "bar-chart")
# Per series widget: the markers' texts (tooltips) and whether they sit inside the chart box.
MARKERS = """
() => [...document.querySelectorAll('.widget')].filter((w) =>
    ['line-chart', 'bar-chart'].includes(w.dataset.type)).map((w) => ({
  id: w.dataset.widgetId,
  markers: [...w.querySelectorAll('.annotation-marker')].map((m) => {
    const box = w.querySelector('.chart-box').getBoundingClientRect();
    const r = m.getBoundingClientRect();
    return {title: m.title, inside: r.left >= box.left - 6 && r.right <= box.right + 6};
  }),
}))
"""


def series_dashboard(site: Site, name: str) -> dict[str, Any]:
    def widget(kind: str, title: str, y: int) -> dict[str, Any]:
        return {"type": kind, "title": title, "position": {"x": 0, "y": y, "w": 6, "h": 3},
                "dataSource": {"type": "aggregation", "aggregation": "count",
                               "interval": "1h"}}

    return site.post("/dashboards", {
        "name": name, "timeRange": "last_24h", "refreshInterval": 60_000,
        "widgets": [{"type": "counter", "title": "Events", "position":
                     {"x": 0, "y": 0, "w": 3, "h": 2}, "dataSource": {"type": "count"}},
                    widget("line-chart", "Events per hour", 2),
                    widget("bar-chart", "Bars per hour", 5)]})


def open_dashboard(page: Any, site: Site, dashboard_id: str) -> None:
    page.goto(f"{site.url}/#/dashboards/{dashboard_id}")
    page.wait_for_function(
        "(id) => document.querySelector('#grid').dataset.dashboardId === id && "
        "[...document.querySelectorAll('.widget')].every((w) => w.dataset.state)",
        arg=dashboard_id)


def test_markers_on_every_series_chart_with_the_text_on_hover(page: Any, site: Site) -> None:
    doc = series_dashboard(site, "annotated")
    other = series_dashboard(site, "not this one")
    now = now_ms()
    site.post("/events/batch", [{"type": "deploy_probe", "userId": "u1",
                                 "timestamp": now - i * HOUR} for i in range(5)])
    mine = site.post("/annotations", {"text": "v2.3 released", "timestamp": now - 3 * HOUR,
                                      "dashboardId": doc["id"], "author": "ci"})
    site.post("/annotations", {"text": "global note", "timestamp": now - 5 * HOUR})
    site.post("/annotations", {"text": "elsewhere", "timestamp": now - 4 * HOUR,
                               "dashboardId": other["id"]})
    site.post("/annotations", {"text": "too old", "timestamp": now - 72 * HOUR,
                               "dashboardId": doc["id"]})
    open_dashboard(page, site, doc["id"])
    page.wait_for_function(
        "() => document.querySelectorAll('.annotation-marker').length >= 4")
    charts = page.evaluate(MARKERS)
    assert len(charts) == 2
    for chart in charts:
        texts = sorted(m["title"].split("\n")[0] for m in chart["markers"])
        assert texts == ["global note", "v2.3 released"], chart  # not other's, not off-range
        assert all(m["inside"] for m in chart["markers"])
    marker = page.locator(f".widget[data-type='line-chart'] "
                          f".annotation-marker[data-annotation-id='{mine['id']}']")
    assert "ci" in (marker.get_attribute("title") or "")
    marker.hover()
    shown = page.evaluate("(m) => getComputedStyle(m, '::after').content", marker.element_handle())
    assert "v2.3 released" in shown
    # the marker sits between the ticks of the buckets around its time (3 h ago)
    between = page.evaluate("""([el, ts]) => {
      const chart = Chart.getChart(el.closest('.chart-box').querySelector('canvas'));
      const t = Array.from(chart.options.plugins.rtaAnnotations.timestamps);
      const i = t.findLastIndex((b) => b <= ts);
      const x = parseFloat(el.style.left);
      return [chart.scales.x.getPixelForValue(i), x, chart.scales.x.getPixelForValue(i + 1)];
    }""", [marker.element_handle(), mine["timestamp"]])
    assert between[0] - 1 <= between[1] <= between[2] + 1, between
    assert page.rta_log.errors == []


def test_an_annotation_made_from_the_page_appears_on_the_charts(page: Any, site: Site) -> None:
    doc = series_dashboard(site, "made here")
    open_dashboard(page, site, doc["id"])
    page.click("#add-annotation")
    page.fill("#annotation-form input[name=text]", "incident 42")
    page.fill("#annotation-form input[name=author]", "on call")
    page.click("#annotation-save")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.annotation-marker')]"
        ".filter((m) => m.title.startsWith('incident 42')).length === 2")
    assert not page.is_visible("#annotation-dialog")
    made = [a for a in site.get("/annotations", dashboard=doc["id"])["annotations"]
            if a["text"] == "incident 42"]
    assert len(made) == 1 and made[0]["dashboardId"] == doc["id"]
    assert made[0]["author"] == "on call"
    assert abs(made[0]["timestamp"] - now_ms()) < 5 * 60_000
    # an empty text is refused in the form, not sent
    page.click("#add-annotation")
    page.click("#annotation-save")
    assert page.is_visible("#annotation-error")
    assert page.rta_log.errors == []
