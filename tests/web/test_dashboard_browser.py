"""The dashboard in real headless Chromium: every widget type draws, counters agree with the
API, live updates arrive without a reload, a dashboard can be created from the UI, and the
sankey widget lays out the paths answer's nodes."""

from __future__ import annotations

import json
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from rta.core.queries.timeparse import now_ms
from tests.web.conftest import Site

pytestmark = pytest.mark.browser

# Per widget: its state, and for canvases the share of painted pixels (0 = blank).
WIDGET_PROBE = """
() => [...document.querySelectorAll('.widget')].map((w) => {
  const c = w.querySelector('canvas');
  let painted = null;
  if (c && c.width && c.height) {
    const ctx = c.getContext('2d');
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    painted = n / (c.width * c.height);
  }
  const v = w.querySelector('.counter-value, .gauge-label');
  return {id: w.dataset.widgetId, type: w.dataset.type, state: w.dataset.state || null,
          painted, text: v ? v.textContent : null,
          rows: w.querySelectorAll('tbody tr').length,
          error: (w.querySelector('.widget-error') || {}).textContent || null};
})
"""


def open_dashboard(page: Any, site: Site, dashboard_id: str, query: str = "") -> None:
    page.goto(f"{site.url}/#/dashboards/{dashboard_id}{query}")
    page.wait_for_function(
        "(id) => document.querySelector('#grid').dataset.dashboardId === id && "
        "[...document.querySelectorAll('.widget')].every((w) => w.dataset.state)",
        arg=dashboard_id)
    page.wait_for_timeout(400)  # let Chart.js finish its first animation


def counter_value(page: Any, widget_id: str) -> float:
    raw = page.get_attribute(f".widget[data-widget-id='{widget_id}'] .counter-value",
                             "data-value")
    return float(raw)


def test_every_template_renders_every_widget_type_without_errors(page: Any,
                                                                 site: Site) -> None:
    seen_types: set[str] = set()
    for template in ("overview", "engagement", "performance", "errors", "web"):
        doc = site.post("/dashboards/template", {"template": template, "timeRange": "last_7d"})
        open_dashboard(page, site, doc["id"])
        widgets = page.evaluate(WIDGET_PROBE)
        assert len(widgets) == len(doc["widgets"])
        for w in widgets:
            assert w["state"] == "ok", (template, w)
            seen_types.add(w["type"])
            if w["type"] in ("counter", "gauge"):
                assert w["text"] and w["text"] != "\u2013", w
            if w["type"] == "table":
                assert w["rows"] > 0, w
            if w["type"] not in ("counter", "table"):
                assert w["painted"] is not None and w["painted"] > 0.02, (template, w)
        # a canvas is opaque to screen readers: its label carries the numbers
        labels = page.eval_on_selector_all(
            ".widget canvas[role=img]", "cs => cs.map(c => [c.closest('.widget').dataset.type,"
            " c.getAttribute('aria-label')])")
        for wtype, label in labels:
            assert "NaN" not in label and "undefined" not in label, (template, label)
            if wtype in ("heatmap", "funnel"):
                assert any(ch.isdigit() for ch in label.split(".", 1)[1]), (template, label)
    assert seen_types == {"line-chart", "bar-chart", "pie-chart", "gauge", "counter", "table",
                          "heatmap", "funnel"}
    assert page.rta_log.errors == []


def test_counter_shows_the_value_the_api_returns(page: Any, site: Site) -> None:
    doc = site.post("/dashboards", {"name": "Counts", "timeRange": "last_7d", "widgets": [
        {"id": "pv", "type": "counter", "title": "Pageviews",
         "dataSource": {"type": "count", "eventType": "pageview"}},
        {"id": "rev", "type": "counter", "title": "Revenue", "config": {"format": "currency"},
         "dataSource": {"type": "aggregation", "eventType": "purchase", "metric": "amount",
                        "aggregation": "sum"}}]})
    open_dashboard(page, site, doc["id"])
    data = site.get(f"/dashboards/{doc['id']}/data")
    api = {w["id"]: w["data"]["value"] for w in data["widgets"]}
    count = site.get("/analytics/count", type="pageview", timeRange="last_7d")["count"]
    assert counter_value(page, "pv") == api["pv"] == count > 0
    assert counter_value(page, "rev") == pytest.approx(api["rev"])
    text = page.text_content(".widget[data-widget-id='pv'] .counter-value")
    assert text.replace(",", "").replace("\u202f", "").replace(".", "") == str(count)
    assert page.text_content(".widget[data-widget-id='rev'] .counter-value").startswith("$")
    assert page.rta_log.errors == []


def test_web_template_counters_and_tables_agree_with_the_web_api(page: Any,
                                                                 site: Site) -> None:
    """The web template over rta's own pageviews plus PostHog-shaped ones: its headline
    counters are /analytics/web's figures, with the change against the previous period, and
    its tables list /analytics/web/{dimension}'s rows."""
    now = now_ms()
    site.post("/events/batch", [
        {"type": "$pageview", "userId": f"ph{i}", "timestamp": now - 60_000 * (i + 1),
         "properties": {"$current_url": f"https://shop.example/p{i % 3}?utm_campaign=spring",
                        "$referrer": "https://www.google.com/", "$browser": "Firefox",
                        "$device_type": "Mobile", "$geoip_country_code": "FR"}}
        for i in range(6)])
    doc = site.post("/dashboards/template", {"template": "web", "timeRange": "last_7d"})
    open_dashboard(page, site, doc["id"])
    data = site.get(f"/dashboards/{doc['id']}/data")
    web = site.get("/analytics/web", timeRange="last_7d")["metrics"]
    by_title = {w["title"]: w for w in data["widgets"]}
    for title, measure in (("Unique visitors", "visitors"), ("Total visits", "visits"),
                           ("Total pageviews", "pageviews"), ("Bounce rate", "bounce_rate")):
        widget = by_title[title]
        assert widget["data"]["value"] == web[measure]["value"], title
        assert counter_value(page, widget["id"]) == pytest.approx(web[measure]["value"])
    campaigns = site.get("/analytics/web/utm-campaigns", timeRange="last_7d")["rows"]
    table = by_title["UTM campaigns"]["data"]["rows"]
    assert [(r[0], r[1]) for r in table] == [
        ("(none)" if r["value"] is None else r["value"], r["visitors"]) for r in campaigns]
    assert ("spring", 6) in [(r[0], r[1]) for r in table]
    rows = page.locator(".widget", has_text="UTM campaigns").locator("tbody tr")
    assert rows.count() == len(table)
    assert page.rta_log.errors == []


def test_ingested_events_show_up_live_without_reload(page: Any, site: Site) -> None:
    # a long refresh interval: only the WebSocket push can make the counter move in time
    doc = site.post("/dashboards", {"name": "Live", "refreshInterval": 600_000, "widgets": [
        {"id": "n", "type": "counter", "title": "Live events",
         "dataSource": {"type": "count", "eventType": "browser_probe"}}]})
    open_dashboard(page, site, doc["id"])
    page.wait_for_function("() => document.querySelector('#live').dataset.state === 'live'")
    before = counter_value(page, "n")
    page.evaluate("() => { window.__marker = 1; }")
    now = now_ms()
    t0 = time.monotonic()
    site.post("/events/batch", [{"type": "browser_probe", "userId": f"b{i}",
                                 "timestamp": now - i} for i in range(3)])
    page.wait_for_function(
        f"() => Number(document.querySelector(\".widget[data-widget-id='n'] .counter-value\")"
        f".dataset.value) === {before + 3}", timeout=3000)
    assert time.monotonic() - t0 < 3
    assert page.evaluate("() => window.__marker") == 1  # same document: no reload
    assert page.rta_log.errors == []


def test_create_dashboard_from_template_in_the_ui(page: Any, site: Site) -> None:
    doc = site.post("/dashboards/template", {"template": "errors"})
    open_dashboard(page, site, doc["id"])
    page.click("#new-dashboard")
    page.fill("#template-name", "Checkout health")
    page.click("#dialog-templates .template-card[data-template='performance']")
    page.wait_for_function(
        "() => document.querySelector('#dash-name').textContent === 'Checkout health'")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget')].every((w) => w.dataset.state)")
    assert not page.is_visible("#template-dialog")
    names = {d["name"]: d for d in site.get("/dashboards")["dashboards"]}
    created = names["Checkout health"]
    assert created["template"] == "performance"
    assert f"#/dashboards/{created['id']}" in page.url
    options = page.eval_on_selector_all("#dashboard-select option", "os => os.map(o => o.text)")
    assert "Checkout health" in options
    assert page.rta_log.errors == []


def test_widget_errors_stay_inside_the_widget(page: Any, site: Site) -> None:
    doc = site.post("/dashboards", {"name": "Half broken", "widgets": [
        {"id": "ok", "type": "counter", "title": "Events", "dataSource": {"type": "count"}},
        {"id": "bad", "type": "gauge", "title": "Broken",
         "dataSource": {"type": "aggregation", "eventType": "late_type", "metric": "label",
                        "aggregation": "avg"}}]})
    site.post("/events/batch", [{"type": "late_type", "userId": "x", "timestamp": now_ms(),
                                 "properties": {"label": "text"}}])
    open_dashboard(page, site, doc["id"], "?range=last_1h")
    widgets = {w["id"]: w for w in page.evaluate(WIDGET_PROBE)}
    assert widgets["ok"]["state"] == "ok"
    assert widgets["bad"]["state"] == "error"
    assert "not numeric" in widgets["bad"]["error"]
    assert page.get_attribute("#range-picker [data-range='last_1h']", "aria-pressed") == "true"


def test_first_load_requests_everything_at_once_and_the_data_once(page: Any,
                                                                   site: Site) -> None:
    """The page's first render waits on one data request, started with the list and the
    dashboard (not after them), and nothing else makes the server resolve it meanwhile."""
    doc = site.post("/dashboards/template", {"template": "overview"})
    events: list[tuple[str, str, float]] = []
    page.on("request", lambda r: events.append(("start", r.url, time.perf_counter())))
    page.on("requestfinished", lambda r: events.append(("end", r.url, time.perf_counter())))
    open_dashboard(page, site, doc["id"])
    api = [(kind, url.split("?")[0].removeprefix(site.url), t) for kind, url, t in events
           if "/dashboards" in url]
    data_path = f"/dashboards/{doc['id']}/data"
    starts = {path: t for kind, path, t in api if kind == "start"}
    first_end = min(t for kind, _path, t in api if kind == "end")
    for path in ("/dashboards", f"/dashboards/{doc['id']}", data_path):
        assert starts[path] < first_end, (path, api)
    data_requests = [t for kind, path, t in api if kind == "start" and path == data_path]
    assert len(data_requests) == 1, api
    assert page.evaluate("document.querySelectorAll('.widget').length") == len(doc["widgets"])
    assert page.rta_log.errors == []


def test_an_open_page_follows_changes_made_elsewhere(page: Any, site: Site) -> None:
    """A dashboard changed through the API is rebuilt in an open page (renamed, widget
    removed, widget added without reload); a deleted one says so and moves on."""
    keep = site.post("/dashboards", {"name": "Stays", "widgets": [
        {"id": "k", "type": "counter", "title": "All", "dataSource": {"type": "count"}}]})
    doc = site.post("/dashboards", {"name": "Before", "refreshInterval": 1000, "widgets": [
        {"id": "a", "type": "counter", "title": "Events", "dataSource": {"type": "count"}},
        {"id": "b", "type": "counter", "title": "Pageviews",
         "dataSource": {"type": "count", "eventType": "pageview"}}]})
    open_dashboard(page, site, doc["id"])
    page.evaluate("() => { window.__marker = 1; }")
    r = site.http.put(f"/dashboards/{doc['id']}", json={
        "name": "After", "refreshInterval": 1000, "widgets": [
            {"id": "a", "type": "counter", "title": "Events", "dataSource": {"type": "count"}},
            {"type": "counter", "title": "Clicks",
             "dataSource": {"type": "count", "eventType": "click"}}]})
    assert r.status_code == 200, r.text
    page.wait_for_function(
        "() => document.querySelector('#dash-name').textContent === 'After'", timeout=8000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget')].every((w) => w.dataset.state)")
    titles = page.eval_on_selector_all(".widget h2", "hs => hs.map(h => h.textContent)")
    assert titles == ["Events", "Clicks"]
    assert page.evaluate("() => window.__marker") == 1  # rebuilt in place, not reloaded
    assert site.http.delete(f"/dashboards/{doc['id']}").status_code in (200, 204)
    page.wait_for_function(
        "(id) => document.querySelector('#grid').dataset.dashboardId !== id", arg=doc["id"],
        timeout=8000)
    assert "“After” was deleted" in page.text_content("#banner")
    page.wait_for_timeout(1500)  # the next dashboard's data does not wipe the notice
    assert page.is_visible("#banner")
    page.goto(f"{site.url}/#/dashboards/no-such-id")
    page.wait_for_function(
        "() => document.querySelector('#banner').textContent.includes('no-such-id')")
    assert "no dashboard with id “no-such-id”" in page.text_content("#banner")
    assert keep["id"]  # (a dashboard remains to move to)


def test_widgets_are_added_changed_and_removed_in_the_page(page: Any, site: Site) -> None:
    """Edit mode: add a widget (over a property no event carries: saved, with a note in the
    banner and the widget saying why it is empty, #23), change it and another one, remove
    one and rename the dashboard; every change is in the API afterwards."""
    doc = site.post("/dashboards", {"name": "Editable", "timeRange": "last_7d", "widgets": [
        {"id": "all", "type": "counter", "title": "All events",
         "dataSource": {"type": "count"}},
        {"id": "gone", "type": "counter", "title": "To remove",
         "dataSource": {"type": "count", "eventType": "click"}}]})
    open_dashboard(page, site, doc["id"])
    assert not page.is_visible("#add-widget")
    page.click("#edit-dashboard")
    page.click("#add-widget")
    page.fill("#widget-form [name=title]", "Mean duration")
    page.select_option("#widget-form [name=type]", "counter")
    page.select_option("#widget-form [name=source]", "aggregation")
    page.select_option("#widget-form [name=aggregation]", "avg")
    page.fill("#widget-form [name=eventType]", "pageview")
    page.fill("#widget-form [name=metric]", "no_such_property")
    page.click("#widget-save")
    page.wait_for_function("() => !document.querySelector('#widget-dialog').open")
    banner = page.text_content("#banner")
    assert "Saved" in banner and "no_such_property" in banner
    assert banner.count("known:") <= 1
    added = site.get(f"/dashboards/{doc['id']}")["widgets"][-1]
    note = f".widget[data-widget-id='{added['id']}'] .empty-note .why"
    page.wait_for_selector(note)
    assert "No data: no 'pageview' events carry property 'no_such_property'" in \
        page.text_content(note)
    page.click(f".widget[data-widget-id='{added['id']}'] .widget-tools .change")
    page.fill("#widget-form [name=metric]", "duration")
    page.click("#widget-save")
    page.wait_for_function("() => !document.querySelector('#widget-dialog').open")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget h2')].some(h => h.textContent === "
        "'Mean duration') && [...document.querySelectorAll('.widget')].every(w => "
        "w.dataset.state)")
    page.wait_for_selector(note, state="detached")
    stored = site.get(f"/dashboards/{doc['id']}")
    added = stored["widgets"][-1]
    assert added["dataSource"] == {**added["dataSource"], "type": "aggregation",
                                   "aggregation": "avg", "metric": "duration",
                                   "eventType": "pageview"}
    expected = site.post("/analytics/aggregate", {
        "eventType": "pageview", "metric": "duration", "aggregation": "avg",
        "timeRange": "last_7d", "interval": "30d"})["total"]["value"]
    shown = float(page.get_attribute(
        f".widget[data-widget-id='{added['id']}'] .counter-value", "data-value"))
    assert shown == pytest.approx(expected, rel=1e-6)
    # change: the first counter becomes a line chart of signups
    page.click(".widget[data-widget-id='all'] .widget-tools .change")
    assert page.input_value("#widget-form [name=title]") == "All events"
    page.fill("#widget-form [name=title]", "Signups")
    page.select_option("#widget-form [name=type]", "line-chart")
    page.fill("#widget-form [name=eventType]", "signup")
    page.select_option("#widget-form [name=w]", "12")
    page.click("#widget-save")
    page.wait_for_function(
        "() => document.querySelector(\".widget[data-widget-id='all']\").dataset.type === "
        "'line-chart'")
    page.on("dialog", lambda d: d.accept())
    page.click(".widget[data-widget-id='gone'] .widget-tools .remove")
    page.wait_for_function("() => !document.querySelector(\".widget[data-widget-id='gone']\")")
    page.click("#dashboard-settings")
    page.fill("#settings-form [name=name]", "Edited in the page")
    page.click("#settings-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#dash-name').textContent === 'Edited in the page'")
    stored = site.get(f"/dashboards/{doc['id']}")
    assert stored["name"] == "Edited in the page"
    assert [w["id"] for w in stored["widgets"]] == ["all", added["id"]]
    changed = stored["widgets"][0]
    assert changed["type"] == "line-chart" and changed["title"] == "Signups"
    assert changed["dataSource"]["eventType"] == "signup"
    assert changed["position"]["w"] == 12
    options = page.eval_on_selector_all("#dashboard-select option", "os => os.map(o => o.text)")
    assert "Edited in the page" in options
    assert page.rta_log.errors == []


def test_sankey_widget_draws_the_paths_answer(page: Any, site: Site) -> None:
    """A paths source drawn as a Sankey (vendored chartjs-chart-sankey): the nodes laid out
    are the linked nodes of the server's answer, with its numbers, steps left to right."""
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


def _change_text(c: dict[str, Any]) -> str:
    """What the page shows for a comparison (web/js/format.js changeText), in Python."""
    rel = c["relativeChange"]
    if rel is None:
        return "new" if c["value"] == 0 and (c["absoluteChange"] or 0) > 0 else "\u2013"
    pct = abs(rel * 100)
    sign = "+" if rel > 0 else "\u2212" if rel < 0 else "\u00b1"
    # JS toFixed rounds an exact half up (16.25 -> "16.3"); Python's format rounds it to
    # even ("16.2"): round the float's exact value half up, as toFixed does
    places = Decimal(1) if pct >= 100 else Decimal("0.1")
    return f"{sign}{Decimal(pct).quantize(places, ROUND_HALF_UP)}%"


def test_formula_widgets_and_compared_counters_from_the_editor(page: Any, site: Site) -> None:
    """The editor makes a formula chart (series A, B with their own event types and
    aggregations) and a formula counter compared with the previous period; a formula naming
    an unknown series is refused next to the formula input; reopening shows the series.
    A count counter compared with the previous day shows the change and the Poisson test."""
    doc = site.post("/dashboards", {"name": "Formulas", "timeRange": "last_7d", "widgets": [
        {"id": "pv", "type": "counter", "title": "Pageviews today",
         "dataSource": {"type": "count", "eventType": "pageview", "timeRange": "last_24h",
                        "compare": "previous_period"}}]})
    open_dashboard(page, site, doc["id"])
    data = {w["id"]: w["data"] for w in site.get(f"/dashboards/{doc['id']}/data")["widgets"]}
    c = data["pv"]["comparison"]
    line = ".widget[data-widget-id='pv'] .counter-compare"
    shown = page.text_content(line)
    assert shown.startswith(_change_text(c)), (shown, c)
    verdict = "significant" if c["significance"]["significant"] else "not significant"
    assert verdict in shown and "p " in shown
    assert page.get_attribute(line, "data-significant") == str(
        c["significance"]["significant"]).lower()

    page.click("#edit-dashboard")
    page.click("#add-widget")
    page.fill("#widget-form [name=title]", "Clicks per pageview")
    page.select_option("#widget-form [name=type]", "line-chart")
    page.select_option("#widget-form [name=source]", "formula")
    assert page.is_visible("#series-rows") and not page.is_visible("#widget-form [name=eventType]")
    assert not page.is_visible("#widget-form [name=compare]")  # (counters only)
    page.fill("[data-series=A] .series-event", "click")
    page.fill("[data-series=B] .series-event", "pageview")
    page.select_option("[data-series=B] .series-aggregation", "avg")
    assert page.is_visible("[data-series=B] .series-property")
    page.fill("[data-series=B] .series-property", "duration")
    page.fill("#widget-form [name=formula]", "A / C")
    page.click("#widget-save")
    page.wait_for_selector("#widget-error:not([hidden])")
    assert "C" in page.text_content("#widget-error")
    assert page.get_attribute("#widget-form [name=formula]", "aria-invalid") == "true"
    page.fill("#widget-form [name=formula]", "A / B")
    page.click("#widget-save")
    page.wait_for_function("() => !document.querySelector('#widget-dialog').open")
    chart = site.get(f"/dashboards/{doc['id']}")["widgets"][-1]
    assert chart["dataSource"] == {"type": "aggregation", "formula": "A / B", "series": [
        {"name": "A", "eventType": "click"},
        {"name": "B", "eventType": "pageview", "aggregation": "avg", "property": "duration"}]}

    page.click("#add-widget")
    page.fill("#widget-form [name=title]", "Signups per 100 logins")
    page.select_option("#widget-form [name=type]", "counter")
    page.select_option("#widget-form [name=source]", "formula")
    page.fill("[data-series=A] .series-event", "signup")
    page.fill("[data-series=B] .series-event", "login")
    page.click("#add-series")
    page.fill("[data-series=C] .series-event", "purchase")
    page.click("[data-series=C] .series-remove")
    assert page.locator(".series-row").count() == 2
    page.fill("#widget-form [name=formula]", "A / B * 100")
    page.check("#widget-form [name=compare]")
    page.select_option("#widget-form [name=timeRange]", "last_24h")
    page.click("#widget-save")
    page.wait_for_function("() => !document.querySelector('#widget-dialog').open")
    ratio = site.get(f"/dashboards/{doc['id']}")["widgets"][-1]
    assert ratio["dataSource"]["compare"] == "previous_period"
    assert [s["eventType"] for s in ratio["dataSource"]["series"]] == ["signup", "login"]
    sel = f".widget[data-widget-id='{ratio['id']}']"
    page.wait_for_selector(f"{sel} .counter-compare")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget')].every((w) => w.dataset.state)")
    data = {w["id"]: w for w in site.get(f"/dashboards/{doc['id']}/data")["widgets"]}
    got = data[ratio["id"]]["data"]
    assert data[chart["id"]]["error"] is None and data[chart["id"]]["data"]["kind"] == "series"
    assert counter_value(page, ratio["id"]) == pytest.approx(got["value"])
    shown = page.text_content(f"{sel} .counter-compare")
    assert shown.startswith(_change_text(got["comparison"])) and "significant" not in shown

    page.click(f"{sel} .widget-tools .change")  # reopened: its series and formula are back
    assert page.input_value("[data-series=B] .series-event") == "login"
    assert page.input_value("#widget-form [name=formula]") == "A / B * 100"
    assert page.is_checked("#widget-form [name=compare]")
    page.uncheck("#widget-form [name=compare]")
    page.click("#widget-save")
    page.wait_for_function("() => !document.querySelector('#widget-dialog').open")
    page.wait_for_selector(f"{sel} .counter-compare", state="detached")
    assert "compare" not in site.get(f"/dashboards/{doc['id']}")["widgets"][-1]["dataSource"]
    refused = [e for e in page.rta_log.errors if "status of 400" in e]
    assert len(refused) == 1 and len(page.rta_log.errors) == 1  # (only the save of "A / C")
