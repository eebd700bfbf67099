"""A share link in real headless Chromium, against `rta serve --auth on`: the link opens its
dashboard with no rta token (widgets, annotation markers, live updates over the
`dashboard:<id>` channel), shows no editing controls, hides its header in embed mode, and
stops at once when the link is revoked (the open WebSocket is closed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from rta.core.auth import TokenStore
from rta.core.metadata import MetadataStore
from rta.core.queries.timeparse import now_ms
from tests.support import ServeProcess
from tests.web.conftest import Site, logged_page

pytestmark = pytest.mark.browser

HOUR = 3_600_000
EDITING = ("#edit-dashboard", "#add-widget", "#delete-dashboard", "#dashboard-settings",
           "#add-annotation", "#new-dashboard", "#dashboard-select", ".widget-tools")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """This module's server requires tokens (`--auth on`); the Site's client is admin."""
    data = str(tmp_path_factory.mktemp("share") / "data")
    os.makedirs(data)
    meta = MetadataStore(data)
    secret, _ = TokenStore(meta).create("admin", "owner")
    meta.close()
    proc = ServeProcess(data, "--auth", "on")
    s = Site(proc.start())
    s.http.headers["Authorization"] = f"Bearer {secret}"
    try:
        yield s
    finally:
        s.http.close()
        proc.kill()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile: no token, no cookies, no storage."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


def shared_dashboard(site: Site) -> tuple[dict[str, Any], dict[str, Any]]:
    now = now_ms()
    site.post("/events/batch", [{"type": "visit", "userId": f"u{i}",
                                 "timestamp": now - (i % 6) * HOUR} for i in range(30)])
    doc = site.post("/dashboards", {
        "name": "Shared KPIs", "timeRange": "last_24h", "refreshInterval": 120_000,
        "widgets": [
            {"type": "counter", "title": "Visits", "position": {"x": 0, "y": 0, "w": 3, "h": 2},
             "dataSource": {"type": "count", "eventType": "visit"}},
            {"type": "line-chart", "title": "Visits per hour",
             "position": {"x": 0, "y": 2, "w": 8, "h": 4},
             "dataSource": {"type": "aggregation", "eventType": "visit",
                            "aggregation": "count", "interval": "1h"}}]})
    site.post("/annotations", {"text": "v2.3 released", "timestamp": now - 2 * HOUR,
                               "dashboardId": doc["id"]})
    link = site.post(f"/dashboards/{doc['id']}/share", {"expiresIn": "1d"})
    return doc, link


def wait_rendered(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelectorAll('.widget').length === 2 && "
        "[...document.querySelectorAll('.widget')].every((w) => w.dataset.state === 'ok')")


def visits(page: Any) -> float:
    return float(page.get_attribute(".counter-value", "data-value"))


def test_share_link_opens_read_only_with_live_updates_until_revoked(context: Any,
                                                                    site: Site) -> None:
    doc, link = shared_dashboard(site)
    page = logged_page(context)
    sockets: list[Any] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.goto(link["url"])
    wait_rendered(page)
    assert page.text_content("#dash-name") == "Shared KPIs"
    assert visits(page) == 30
    for selector in EDITING:
        assert page.locator(selector).count() == 0, selector
    page.wait_for_selector(".widget[data-type='line-chart'] .annotation-marker")
    assert page.get_attribute(".annotation-marker", "title").startswith("v2.3 released")
    page.wait_for_function("() => document.querySelector('#live').dataset.state === 'live'")
    # a live push (not a poll: the refresh interval is 2 minutes) brings new events
    site.post("/events/batch", [{"type": "visit", "userId": "late"}] * 1)
    page.wait_for_function("() => document.querySelector('.counter-value').dataset.value === '31'")
    # the page's own token is the link's: it cannot list dashboards
    status = page.evaluate("""(t) => fetch('/dashboards', {headers: {Authorization: 'Bearer ' + t}})
                              .then((r) => r.status)""", link["token"])
    assert status == 403
    assert len(sockets) == 1 and not sockets[0].is_closed()
    # revoked: the open WebSocket is closed and the page says the link ended
    r = site.http.delete(f"/dashboards/{doc['id']}/share/{link['id']}")
    assert r.status_code == 200, r.text
    page.wait_for_function("() => document.body.dataset.linkState === 'ended'")
    for _ in range(50):  # (the close frame may trail the error message a little)
        if sockets[0].is_closed():
            break
        page.wait_for_timeout(100)
    assert sockets[0].is_closed()
    assert len(sockets) == 1  # and the page did not reconnect
    # (only the refusals this test provoked: the 403 above, the 401s of the ended link)
    errors = [e for e in page.rta_log.errors if "status of 40" not in e]
    assert errors == []
    again = context.new_page()
    response = again.goto(link["url"])
    assert response.status == 404
    assert "revoked or expired" in again.text_content("body")


def test_embed_mode_hides_the_header(context: Any, site: Site) -> None:
    _doc, link = shared_dashboard(site)
    page = logged_page(context)
    response = page.goto(link["embedUrl"])
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    assert "x-frame-options" not in response.headers
    wait_rendered(page)
    assert not page.is_visible(".topbar")
    assert page.is_visible(".widget")
    assert page.rta_log.errors == []
