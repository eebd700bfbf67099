"""The `sankey` widget in real headless Chromium: a dashboard with a paths source draws the
flow (nodes laid out by the vendored chartjs-chart-sankey) with the server's numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.web.conftest import Site
from tests.web.test_dashboard_browser import WIDGET_PROBE, open_dashboard

pytestmark = pytest.mark.browser


def test_sankey_widget_draws_the_paths_answer(page: Any, site: Site) -> None:
    doc = site.post("/dashboards", {"name": "Paths", "timeRange": "last_7d", "widgets": [
        {"id": "flow", "type": "sankey", "title": "After a pageview",
         "dataSource": {"type": "paths", "startPoint": "pageview", "steps": 4, "topK": 4}},
        {"id": "pages", "type": "sankey", "title": "Pages",
         "dataSource": {"type": "paths", "pathType": "pages", "collapseRepeats": True}}]})
    open_dashboard(page, site, doc["id"])
    data = {w["id"]: w["data"] for w in site.get(f"/dashboards/{doc['id']}/data")["widgets"]}
    flow = data["flow"]
    assert flow["kind"] == "sankey" and flow["links"], flow
    widgets = {w["id"]: w for w in page.evaluate(WIDGET_PROBE)}
    for wid in ("flow", "pages"):
        assert widgets[wid]["state"] == "ok", widgets[wid]
    assert widgets["flow"]["painted"] > 0.02, widgets["flow"]
    canvas = ".widget[data-widget-id='flow'] canvas"
    page.wait_for_function(f"() => document.querySelector(\"{canvas}\").dataset.nodes")
    drawn = json.loads(page.get_attribute(canvas, "data-nodes"))
    linked = {link["source"] for link in flow["links"]} | {link["target"]
                                                             for link in flow["links"]}
    users = {n["id"]: n["users"] for n in flow["nodes"]}
    assert {n["id"] for n in drawn} == linked
    for n in drawn:
        assert n["users"] == users[n["id"]]
    # steps are columns, left to right
    x = {n["id"]: n["x"] for n in drawn}
    assert x["1_pageview"] < min(v for k, v in x.items() if k.startswith("2_"))
    label = page.get_attribute(canvas, "aria-label")
    assert f"{flow['totalPaths']:,} paths" in label.replace("\u202f", ",")
    assert page.rta_log.errors == []
