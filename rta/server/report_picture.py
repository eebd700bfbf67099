"""A PNG picture of a dashboard for report emails: headless Chromium (Playwright, with the
system's browser at `executable_path`) opens the dashboard page on this server with a
short-lived read token, waits until every widget has drawn, and takes a screenshot.

The token exists only while the picture is taken (revoked in `finally`) and can only read.
When Playwright or Chromium is missing, or the page does not settle in time, the report
goes without a picture and says why.

Thread rule: Playwright's sync API runs in a worker thread (no event loop there).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import trio

from rta.core.engine import Engine

log = logging.getLogger("rta.server.reports")
DEFAULT_CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
TIMEOUT_MS = 30_000
READY = ("(id) => document.querySelector('#grid') && "
         "document.querySelector('#grid').dataset.dashboardId === id && "
         "[...document.querySelectorAll('.widget')].every((w) => w.dataset.state)")
_LIMIT = trio.CapacityLimiter(1)  # one browser at a time: it is the heaviest thing we run


def chromium_path(configured: str | None = None) -> str | None:
    path = configured or os.environ.get("RTA_CHROMIUM") or DEFAULT_CHROMIUM
    found = path if os.path.exists(path) else shutil.which(path)
    return found or None


def local_url(binds: list[str]) -> str | None:
    """A URL this process can reach itself at, from the addresses it listens on."""
    for bind in binds:
        scheme, _, rest = bind.partition("://")
        host, _, port = rest.rpartition(":")
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host in ("[::]", "::"):
            host = "[::1]"
        return f"{scheme}://{host}:{port}"
    return None


def _shoot(executable: str, url: str, dashboard_id: str, token: str) -> bytes:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900},
                                    extra_http_headers={"Authorization": f"Bearer {token}"})
            page.goto(url, timeout=TIMEOUT_MS)
            page.wait_for_function(READY, arg=dashboard_id, timeout=TIMEOUT_MS)
            page.wait_for_timeout(400)  # Chart.js's first animation
            return bytes(page.screenshot(full_page=True, type="png"))
        finally:
            browser.close()


def picturer(engine: Engine, server_url: Callable[[], str | None],
             configured: str | None = None) -> Callable[[dict[str, Any]],
                                                         Any]:
    """The `Delivery.picture` callable for this server."""

    async def picture(dashboard: dict[str, Any]) -> tuple[bytes | None, str | None]:
        executable = chromium_path(configured)
        if executable is None:
            return None, ("No picture of the dashboard: headless Chromium is not available "
                          "on the server.")
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return None, ("No picture of the dashboard: Playwright is not installed on the "
                          "server (pip install playwright).")
        base = server_url()
        if base is None:
            return None, "No picture of the dashboard: the server's address is not known yet."
        tokens = engine.services.tokens
        secret, record = tokens.create("read", name=f"report-picture-{dashboard['id']}")
        try:
            png = await trio.to_thread.run_sync(
                _shoot, executable, f"{base}/#/dashboards/{dashboard['id']}",
                dashboard["id"], secret, limiter=_LIMIT)
        except Exception as exc:
            log.warning("dashboard picture failed: %s", exc)
            return None, f"No picture of the dashboard: the browser failed ({type(exc).__name__})."
        finally:
            tokens.revoke(record["id"])
        return png, None

    return picture
