"""A newcomer's first minutes in Chromium (#23): a server with no events shows how to send
the first one, the first event makes it go away, and a template over SDK-shaped data (which
lacks the demo's properties) renders its pageviews and saves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import ServeProcess
from tests.web.conftest import Site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An empty server (this module's own: the shared one holds demo data)."""
    proc = ServeProcess(str(tmp_path_factory.mktemp("web-empty") / "data"))
    s = Site(proc.start())
    try:
        yield s
    finally:
        s.http.close()
        proc.kill()


def onboarding(page: Any) -> dict[str, str]:
    page.wait_for_selector("#onboarding:not([hidden])")
    return {name: page.text_content(f"#onboarding {sel}") or "" for name, sel in {
        "all": "", "curl": "#onboard-curl", "posthog": "#onboard-posthog",
        "segment": "#onboard-segment", "demo": "#onboard-demo"}.items()}


def test_empty_store_shows_how_to_send_the_first_event(page: Any, site: Site) -> None:
    page.goto(site.url)
    page.wait_for_selector("#welcome:not([hidden])")
    shown = onboarding(page)
    origin = site.url.rstrip("/")
    assert f"curl -X POST {origin}/events" in shown["curl"]
    assert "Content-Type: application/json" in shown["curl"]
    assert f'api_host: "{origin}"' in shown["posthog"]
    assert f'host: "{origin}"' in shown["segment"]
    assert "rta serve --demo" in shown["all"] and f"rta ingest -s {origin}" in shown["demo"]
    assert not page.is_visible("#dashboard-select")  # no empty switcher

    # with a dashboard open the hint stays until the first event lands, then goes away
    doc = site.post("/dashboards/template", {"template": "overview"})
    page.goto(f"{site.url}/#/dashboards/{doc['id']}")
    page.wait_for_function(
        "(id) => document.querySelector('#grid').dataset.dashboardId === id && "
        "[...document.querySelectorAll('.widget')].every((w) => w.dataset.state)",
        arg=doc["id"])
    onboarding(page)
    # what posthog-js sends: a pageview without the template's `page` property
    site.post("/events", {"type": "pageview", "userId": "u1",
                          "properties": {"$current_url": "https://shop.example/"}})
    page.wait_for_selector("#onboarding", state="hidden", timeout=15_000)
    # (#19) the template's pageview widgets understand every SDK's pageviews: the top
    # pages read the path from the URL posthog-js sends
    top = doc["widgets"][6]
    assert top["dataSource"] == {"type": "web_breakdown", "dimension": "pages", "n": 8}
    page.wait_for_function(
        "(id) => { const w = document.querySelector(`.widget[data-widget-id='${id}']`);"
        " const c = w && w.querySelector('canvas');"
        " return c && /\\//.test(c.getAttribute('aria-label') || ''); }",
        arg=top["id"], timeout=15_000)
    data = site.get(f"/dashboards/{doc['id']}/data")["widgets"][6]["data"]
    assert data["labels"] == ["/"] and data["values"] == [1]

    # renaming the template dashboard over that data saves (it was a 400)
    page.click("#edit-dashboard")
    page.click("#dashboard-settings")
    page.fill("#settings-form [name=name]", "My shop")
    page.click("#settings-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#dash-name').textContent === 'My shop'")
    assert page.is_hidden("#settings-error")
    assert site.get(f"/dashboards/{doc['id']}")["name"] == "My shop"
    assert page.rta_log.errors == []
