"""posthog-js and the first-party script in Chromium, on pages of another origin (#19).

A second tiny HTTP server on another port plays the customer's website; rta is a real
`rta serve` process. The pages navigate the way sites do (a landing URL with UTM parameters
and a search-engine referrer, single-page-app pushState/replaceState/back, an outbound link,
custom events), and the test reads what landed through rta's API. posthog-js is the vendored
npm bundle (tests/fixtures/vendor), initialised with `opt_out_useragent_filter` since it
drops events from headless browsers otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServeProcess
from tests.web.conftest import Site, logged_page

pytestmark = pytest.mark.browser

VENDOR = Path(__file__).resolve().parents[1] / "fixtures" / "vendor" / "posthog-js-1.455.2"
CHROME_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/124.0.0.0 Safari/537.36")
LANDING = "?utm_source=news&utm_medium=email&utm_campaign=launch"
REFERRER = "https://www.google.com/"

POSTHOG_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>PH Shop</title>
<script src="/vendor/array.full.js"></script>
<script>
posthog.init("phc_test", {api_host: "%(rta)s", opt_out_useragent_filter: true,
  capture_pageview: "history_change", persistence: "memory", request_batching: false});
</script></head>
<body><h1>Shop</h1><button id="buy" class="cta">Buy now</button></body></html>"""

FIRST_PARTY_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>FP Shop</title>
<script>window.rta = window.rta || function () { (window.rta.q = window.rta.q || [])
  .push(arguments) }; rta("early", {queued: true});</script>
<script defer src="%(rta)s/js/rta.js"></script></head>
<body><h1>Shop</h1><a id="out" href="http://localhost:%(port)s/elsewhere">Partner</a>
</body></html>"""


class Pages(BaseHTTPRequestHandler):
    """The customer's site: /ph/* (posthog-js), /fp/* (rta.js), the vendored bundle."""

    rta = ""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        port = self.server.server_address[1]
        if path == "/vendor/array.full.js":
            body, kind = (VENDOR / "array.full.js").read_bytes(), "text/javascript"
        elif path.startswith("/ph/"):
            body, kind = (POSTHOG_PAGE % {"rta": self.rta}).encode(), "text/html"
        elif path.startswith("/fp/"):
            body = (FIRST_PARTY_PAGE % {"rta": self.rta, "port": port}).encode()
            kind = "text/html"
        else:
            body, kind = b"<!doctype html><title>Elsewhere</title>elsewhere", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """rta, empty (overrides conftest's demo-filled `site`, which `browser` depends on)."""
    proc = ServeProcess(str(tmp_path_factory.mktemp("tracking") / "data"))
    s = Site(proc.start())
    try:
        yield s
    finally:
        s.http.close()
        proc.kill()


@pytest.fixture(scope="module")
def pages(site: Site) -> Iterator[str]:
    handler = type("BoundPages", (Pages,), {"rta": site.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def visitor(browser: Any) -> Iterator[Any]:
    """A page in a fresh context whose browser says it is desktop Chrome on Linux."""
    context = browser.new_context(user_agent=CHROME_LINUX)
    pg = logged_page(context)
    try:
        yield pg
    finally:
        context.close()


def wait_for(site: Site, match: Callable[[dict[str, Any]], bool], count: int = 1,
             timeout: float = 15.0) -> list[dict[str, Any]]:
    """The stored events `match` accepts, oldest first, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in site.get("/events", limit=1000)["events"] if match(e)][::-1]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{len(found)} of {count} events landed: {found}"
            return found
        time.sleep(0.1)


def test_posthog_js_pageviews_autocapture_and_flags(visitor: Any, site: Site,
                                                     pages: str) -> None:
    answers: list[tuple[str, int]] = []
    visitor.on("response", lambda r: answers.append((r.url, r.status)))
    visitor.goto(f"{pages}/ph/home{LANDING}", referer=REFERRER)

    def ph(kind: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["type"] == kind and e["properties"].get("$lib") == "web"

    (landing,) = wait_for(site, ph("$pageview"))
    props = landing["properties"]
    assert props["$pathname"] == "/ph/home"
    assert props["$current_url"] == f"{pages}/ph/home{LANDING}"
    assert props["$referrer"] == REFERRER
    assert (props["utm_source"], props["utm_medium"], props["utm_campaign"]) == (
        "news", "email", "launch")
    assert (props["$browser"], props["$os"], props["$device_type"]) == (
        "Chrome", "Linux", "Desktop")
    assert props["$host"] == pages.removeprefix("http://")
    assert "$bot" not in props

    visitor.evaluate("history.pushState({}, '', '/ph/pricing')")
    views = wait_for(site, ph("$pageview"), count=2)
    assert views[-1]["properties"]["$pathname"] == "/ph/pricing"
    assert views[-1]["userId"] == landing["userId"]
    assert views[-1]["sessionId"] == landing["sessionId"] is not None

    # autocapture runs: rta's remote config switched it on
    visitor.click("#buy")
    (click,) = wait_for(site, ph("$autocapture"))
    assert click["properties"]["$event_type"] == "click"
    assert "Buy now" in click["properties"]["$elements_chain"]

    statuses = {url.split("?")[0].removeprefix(site.url): status for url, status in answers
                if url.startswith(site.url)}
    assert statuses.get("/flags/") == 200, statuses
    # (the full bundle reads the JSON config; the array.js loader takes config.js first)
    assert 200 in (statuses.get("/array/phc_test/config"),
                   statuses.get("/array/phc_test/config.js")), statuses
    assert all(status < 300 for status in statuses.values()), statuses
    assert visitor.rta_log.errors == []


def test_first_party_script_pageviews_spa_outbound_and_custom_events(
        visitor: Any, browser: Any, site: Site, pages: str) -> None:
    def fp(kind: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["type"] == kind and e["properties"].get("$lib") == "rta.js"

    visitor.goto(f"{pages}/fp/home{LANDING}", referer=REFERRER)
    (landing,) = wait_for(site, fp("$pageview"))
    props = landing["properties"]
    assert props["$pathname"] == "/fp/home" and props["title"] == "FP Shop"
    assert props["$current_url"] == f"{pages}/fp/home{LANDING}"
    assert props["$referrer"] == REFERRER
    assert props["$host"] == pages.removeprefix("http://")
    assert (props["$browser"], props["$os"], props["$device_type"]) == (
        "Chrome", "Linux", "Desktop")
    assert "$bot" not in props and landing["sessionId"] is None
    visitor_id = landing["userId"]
    (early,) = wait_for(site, fp("early"))  # called before the script loaded: queued
    assert early["properties"]["queued"] is True and early["userId"] == visitor_id

    # single-page-app navigation: pushState and back are pageviews; replaceState to the same
    # path is not
    visitor.evaluate("history.pushState({}, '', '/fp/pricing')")
    wait_for(site, fp("$pageview"), count=2)
    visitor.evaluate("history.replaceState({}, '', '/fp/pricing?tab=2')")
    visitor.evaluate("history.back()")
    views = wait_for(site, fp("$pageview"), count=3)
    assert [v["properties"]["$pathname"] for v in views] == ["/fp/home", "/fp/pricing",
                                                              "/fp/home"]
    visitor.evaluate("window.rta('signup', {plan: 'pro'})")
    (signup,) = wait_for(site, fp("signup"))
    assert signup["properties"]["plan"] == "pro" and signup["userId"] == visitor_id

    # no cookies, no storage: the visitor id is the server's daily hash
    assert visitor.context.cookies() == []
    assert visitor.evaluate("localStorage.length + sessionStorage.length") == 0

    with visitor.expect_navigation():
        visitor.click("#out")
    (out,) = wait_for(site, fp("$outbound_click"))
    port = pages.rsplit(":", 1)[1]
    assert out["properties"]["$outbound_url"] == f"http://localhost:{port}/elsewhere"
    assert out["userId"] == visitor_id
    assert len(wait_for(site, fp("$pageview"))) == 3  # no pageview for the page we left
    assert visitor.rta_log.errors == []

    # Chromium's own headless User-Agent is a bot's
    context = browser.new_context()
    try:
        headless = logged_page(context)
        headless.goto(f"{pages}/fp/headless")
        (bot,) = wait_for(site, lambda e: e["type"] == "$pageview"
                          and e["properties"].get("$pathname") == "/fp/headless")
        assert bot["properties"]["$bot"] is True
    finally:
        context.close()
