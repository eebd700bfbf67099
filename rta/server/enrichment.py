"""The request's side of ingest-time enrichment: who sent it (User-Agent, client IP).

`install(app)` builds the app's `Enricher` (settings `geoip_database`, `trusted_proxies`);
the browser-side routes call `enrich(events)` on raw event dicts before validation. See
`rta/core/enrich.py` for the rules.
"""

from __future__ import annotations

from typing import Any

from quart import current_app, request
from quart_trio import QuartTrio

from rta.core.enrich import Client, Enricher, is_browser_agent
from rta.server.client_ip import client_ip, parse_networks

CONFIG_KEY = "RTA_ENRICH"


def install(app: QuartTrio) -> None:
    """Once per app (a bad `trusted_proxies` fails here, at start)."""
    if CONFIG_KEY in app.config:
        return
    options = app.config["RTA_OPTIONS"]
    app.config[CONFIG_KEY] = (Enricher(options.get("geoip_database") or None),
                              parse_networks(options.get("trusted_proxies") or ""))


def _state() -> tuple[Enricher, Any]:
    if CONFIG_KEY not in current_app.config:
        install(current_app)  # type: ignore[arg-type]
    state: tuple[Enricher, Any] = current_app.config[CONFIG_KEY]
    return state


def request_client(browser: bool | None = None) -> Client:
    """The sender as the request shows it; `browser` None: judged by its User-Agent."""
    _enricher, trusted = _state()
    ua = request.headers.get("User-Agent") or None
    ip = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted)
    return Client(ua, ip, is_browser_agent(ua) if browser is None else browser)


def enrich(events: list[dict[str, Any]], client: Client | None = None) -> None:
    """Add the derived device and geo properties to `events` in place."""
    enricher, _trusted = _state()
    enricher.apply(events, client or request_client())
