"""Issue #23, findings 5 and 6, in real Chromium: a long-period widget over a short range says
so and offers its natural range; a phone (390 x 844) gets a compact header, whole funnel
labels and readable widget titles in edit mode; a blank dashboard is created from the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import Site, logged_page
from tests.web.test_dashboard_browser import open_dashboard

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    pg = logged_page(context)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="module")
def overview(site: Site) -> dict[str, Any]:
    return site.post("/dashboards/template", {"template": "overview"})  # (range: last 24 h)


def test_heatmap_over_a_short_range_says_so_and_offers_a_week(page: Any, site: Site) -> None:
    doc = site.post("/dashboards", {"name": "Weekly rhythm", "timeRange": "last_24h",
                                    "widgets": [{"id": "heat", "type": "heatmap",
                                                 "title": "Activity",
                                                 "dataSource": {"type": "count"}}]})
    data = site.get(f"/dashboards/{doc['id']}/data", timeRange="last_15m")["widgets"][0]
    assert "15 minutes" in data["data"]["note"] and data["data"]["suggestedRange"] == "last_7d"
    assert "note" not in site.get(f"/dashboards/{doc['id']}/data",
                                  timeRange="last_7d")["widgets"][0]["data"]
    open_dashboard(page, site, doc["id"])
    note = ".widget[data-widget-id='heat'] .widget-note"
    assert "1 day" in page.text_content(note) and "7 days" in page.text_content(note)
    page.click(f"{note} button")
    page.wait_for_selector(note, state="detached")
    assert page.get_attribute("#range-picker [data-range='last_7d']", "aria-pressed") == "true"
    assert "range=last_7d" in page.url
    assert page.rta_log.errors == []


def test_phone_header_is_at_most_two_rows(phone: Any, site: Site,
                                          overview: dict[str, Any]) -> None:
    open_dashboard(phone, site, overview["id"])
    box = phone.evaluate("() => { const r = document.querySelector('.topbar')"
                         ".getBoundingClientRect(); return [r.height, r.width]; }")
    assert box[1] <= PHONE["width"]
    assert box[0] <= 100, box  # one row is ~50 px; three were 140
    # rows: a child starts a new one when it begins below the current row's bottom
    rows = phone.evaluate("""() => {
        const boxes = [...document.querySelector('.topbar').children]
          .map((c) => c.getBoundingClientRect()).filter((r) => r.width && r.height)
          .sort((a, b) => a.top - b.top);
        let rows = 0, bottom = -1;
        for (const r of boxes) {
          if (r.top >= bottom) { rows++; bottom = r.bottom; }
          else bottom = Math.max(bottom, r.bottom);
        }
        return rows; }""")
    assert rows <= 2
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.get_attribute("#new-dashboard", "aria-label") == "New dashboard"
    assert phone.rta_log.errors == []


def test_phone_funnel_labels_are_whole(phone: Any, site: Site) -> None:
    doc = site.post("/dashboards", {"name": "Funnel", "timeRange": "last_7d", "widgets": [
        {"id": "f", "type": "funnel", "title": "Purchase funnel",
         "position": {"x": 0, "y": 0, "w": 6, "h": 4},
         "dataSource": {"type": "funnel", "steps": [
             {"name": "Visited the site", "eventType": "pageview"},
             {"name": "Clicked anything", "eventType": "click"},
             {"name": "Submitted a form", "eventType": "form_submit"},
             {"name": "Purchased", "eventType": "purchase"}]}}]})
    open_dashboard(phone, site, doc["id"])
    drawn = phone.evaluate("() => JSON.parse(document.querySelector("
                           "\".widget[data-widget-id='f'] canvas\").dataset.labels)")
    steps = site.get(f"/dashboards/{doc['id']}/data")["widgets"][0]["data"]["steps"]
    assert len(drawn["labels"]) == len(steps) == 4
    for label, step in zip(drawn["labels"], steps, strict=True):
        assert label["text"].startswith(f"{step['count']} · ")  # counts < 1000 here
        assert label["text"].endswith("%")
        assert label["left"] >= 0 and label["right"] <= drawn["width"], (label, drawn["width"])
    assert phone.rta_log.errors == []


def test_edit_mode_keeps_widget_titles_whole(phone: Any, site: Site,
                                             overview: dict[str, Any]) -> None:
    open_dashboard(phone, site, overview["id"])
    probe = ("() => [...document.querySelectorAll('.widget h2')].map((h) => "
             "[h.textContent, h.scrollWidth <= h.clientWidth])")
    before = dict(phone.evaluate(probe))
    phone.click("#edit-dashboard")
    phone.wait_for_selector(".widget-tools .change")
    after = dict(phone.evaluate(probe))
    squeezed = [t for t, whole in after.items() if before[t] and not whole]
    assert squeezed == []
    assert before["Active users"] and before["Revenue"]
    # every widget's tools stay inside its box
    outside = phone.evaluate("""() => [...document.querySelectorAll('.widget')].filter((w) => {
        const r = w.getBoundingClientRect(), t = w.querySelector('.widget-tools')
          .getBoundingClientRect();
        return t.right > r.right || t.left < r.left || t.bottom > r.bottom; }).length""")
    assert outside == 0
    assert phone.rta_log.errors == []


def test_blank_dashboard_from_the_page(page: Any, site: Site) -> None:
    doc = site.post("/dashboards/template", {"template": "errors"})
    open_dashboard(page, site, doc["id"])
    page.click("#new-dashboard")
    page.fill("#template-name", "From scratch")
    page.click("#dialog-templates .template-card[data-template='']")
    page.wait_for_function(
        "() => document.querySelector('#dash-name').textContent === 'From scratch'")
    assert not page.is_visible("#template-dialog")
    created = {d["name"]: d for d in site.get("/dashboards")["dashboards"]}["From scratch"]
    assert site.get(f"/dashboards/{created['id']}")["widgets"] == []
    # straight into edit mode: the next step is a widget (shown once the new page rendered)
    page.wait_for_selector("#add-widget", state="visible", timeout=10_000)
    page.click("#add-widget")
    page.fill("#widget-form [name=title]", "Signups")
    page.select_option("#widget-form [name=type]", "counter")
    page.select_option("#widget-form [name=source]", "count")
    page.fill("#widget-form [name=eventType]", "signup")
    page.click("#widget-save")
    page.wait_for_function("() => !document.querySelector('#widget-dialog').open")
    page.wait_for_selector(".widget .counter-value")
    stored = site.get(f"/dashboards/{created['id']}")
    assert [w["title"] for w in stored["widgets"]] == ["Signups"]
    assert page.rta_log.errors == []
