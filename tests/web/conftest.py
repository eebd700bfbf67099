"""Browser fixtures: a real `rta serve` process and Debian's headless Chromium via Playwright.

Playwright's sync API runs in plain (sync) tests: pytest-trio only drives async tests, so no
event loop is running there. One server and one browser serve the whole module; each test
gets a fresh page, and a failing test leaves a screenshot in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rta.core.demo import iter_demo_events
from tests.support import ServeProcess

CHROMIUM = os.environ.get("RTA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without Chromium the browser tests fail loudly (they are not optional): README's test
    command installs Debian's chromium first."""
    if shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM):
        missing = pytest.mark.usefixtures("_chromium_required")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(missing)


@pytest.fixture
def _chromium_required() -> None:
    pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium "
                "(or set RTA_CHROMIUM)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


class Site:
    """The running server plus an HTTP client for arranging data through the API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def post(self, path: str, body: Any) -> Any:
        r = self.http.post(path, json=body)
        assert r.status_code < 300, r.text
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    proc = ServeProcess(str(root / "data"))
    url = proc.start()
    s = Site(url)
    try:
        events = list(iter_demo_events(4000, users=300, days=7, seed=7))
        for i in range(0, len(events), 2000):
            s.post("/events/batch", events[i:i + 2000])
        yield s
    finally:
        s.http.close()
        # SIGKILL: after any WebSocket client has come and gone, a graceful stop currently
        # waits out hypercorn's 5 s graceful timeout; the data dir is throwaway.
        proc.kill()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    """Depends on `site` so the browser closes first and the server stops with no open
    connections (else it waits out its graceful-shutdown timeout)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageLog:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def page_error(self, exc: Any) -> None:
        self.errors.append(f"pageerror: {exc}")


def logged_page(context: Any) -> Any:
    """A new page of `context` whose console errors and page errors are collected in
    `page.rta_log` (the tests assert none happened)."""
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    log = PageLog()
    pg.on("console", log.console)
    pg.on("pageerror", log.page_error)
    pg.rta_log = log
    return pg


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = logged_page(context)
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
            try:
                pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            except Exception:  # the page may be gone; the failure itself is what matters
                pass
        context.close()
