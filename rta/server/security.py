"""Authentication, scopes, rate limits, CORS and security headers for every route.

Registered first among the feature modules so its hooks run before any handler. Auth is
`auto` by default: required when the daemon binds a non-loopback address, optional on
loopback (where any presented token is still checked).

Browsers are the other clients to guard against, since a page the operator opens can send
requests to the daemon:
- a WebSocket handshake or a state-changing request (POST, PUT, PATCH, DELETE) that carries
  an `Origin` is refused unless that origin is the daemon's own page or in `cors_origins`
  (CORS preflights do not cover WebSockets or "simple" text/plain and form posts);
- while loopback is trusted without a token, a request addressed (`Host`) to any name but
  localhost or a loopback address is refused, so a DNS-rebinding page cannot reach it.
SDK routes stay open to every origin (browser SDKs post from customers' sites), and so do
the PostHog config routes and the first-party script's `/api/event`.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app, g, request, websocket
from quart_trio import QuartTrio

from rta.core.auth import TokenStore, scope_allows
from rta.core.engine import Engine
from rta.core.share_links import SCOPE as SHARE_SCOPE
from rta.core.share_links import ShareLinkStore, is_share_secret
from rta.server.http import drain, json_response

bp = Blueprint("security", __name__)
API_PREFIXES = ("/events", "/analytics", "/queries", "/alerts", "/export", "/dashboards",
                "/segments", "/stats", "/metrics", "/tokens", "/ws", "/reports",
                "/annotations",
                "/persons",
                "/groups")
# (also the PostHog config routes and the first-party script's ingest route, #19)
SDK_PREFIXES = ("/batch", "/capture", "/e/", "/e", "/i/v0/e", "/v1/", "/flags", "/decide",
                "/array/", "/api/event")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self' ws: wss:; font-src 'self' data:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_sdk_path(path: str) -> bool:
    return path.startswith(SDK_PREFIXES) and not path.startswith(API_PREFIXES)


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for public routes (health, the dashboard's files)."""
    if path == "/health" or path == "/openapi.json":
        return None
    if is_sdk_path(path):
        return "write" if method == "POST" else None
    if not path.startswith(API_PREFIXES):
        return None  # the dashboard page and its static assets
    if path.startswith("/events") and method == "POST":
        return "write"
    if path.startswith("/tokens") or is_share_admin_path(path):
        return "admin"
    if path.startswith("/persons/") and path.endswith("/properties") and method == "POST":
        return "write"  # person properties, as an SDK's identify traits set them
    if path.startswith("/annotations") and method == "POST":
        return "write"  # a deploy pipeline marks its releases with its ingest token
    if method in ("GET", "HEAD", "OPTIONS") or path == "/ws":
        return "read"
    if path.startswith(("/analytics", "/queries", "/export")):
        return "read"
    if path.startswith("/alerts") and path.endswith("/test"):
        return "read"
    return "admin"


def is_share_admin_path(path: str) -> bool:
    """/dashboards/{id}/share[/{linkId}]: making, listing and revoking share links."""
    parts = path.split("/")
    return len(parts) >= 4 and parts[1] == "dashboards" and parts[3] == "share"


def share_allows(method: str, path: str, args: Any, dashboard_id: str) -> bool:
    """What a share link's token may reach: its dashboard's definition and widget data, the
    annotations shown on it, and /ws (whose session admits only that dashboard's channels).
    Public routes (the pages, /health, /openapi.json) stay public; everything else is 403."""
    if method not in ("GET", "HEAD"):
        return False
    if path == "/ws":
        return True
    if path == "/annotations":
        return bool(args.get("dashboard") == dashboard_id)
    return path in (f"/dashboards/{dashboard_id}", f"/dashboards/{dashboard_id}/data")


def _share_access(opts: dict[str, Any], method: str, path: str, args: Any, secret: str,
                  remote: str | None, need: str) -> Response | None:
    """A share link's token: verified whatever the `auth` mode (a revoked or expired link
    is refused at once), then held to its one dashboard."""
    shares: ShareLinkStore = opts["shares"]
    record = shares.verify(secret)
    if record is None:
        return _rate_limited(opts, need, f"addr:{remote}") or _error(
            401, "unauthorized", "this share link is invalid, revoked or expired")
    g.rta_token = {"id": record["id"], "name": None, "scope": SHARE_SCOPE,
                   "dashboard": record["dashboardId"]}
    if not share_allows(method, path, args, record["dashboardId"]):
        return _error(403, "forbidden", "a share link reaches its own dashboard's data only")
    return _rate_limited(opts, need, f"share:{record['id']}")


@dataclass
class TokenBucket:
    rate: float
    burst: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str, now: float | None = None) -> float:
        """0 if allowed, else the seconds to wait before retrying."""
        t = time.monotonic() if now is None else now
        tokens, last = self.buckets.get(key, (self.burst, t))
        tokens = min(self.burst, tokens + (t - last) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, t)
            if len(self.buckets) > 100_000:
                self.buckets.clear()  # bounded memory under address churn
            return 0.0
        self.buckets[key] = (tokens, t)
        return (1 - tokens) / self.rate


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message, "details": []}}, status,
                         headers)


def _presented_token(headers: Any, args: Any) -> str | None:
    auth = headers.get("Authorization") or ""
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    return args.get("token") or headers.get("X-Rta-Token") or None


_CHANGES = ("POST", "PUT", "PATCH", "DELETE")


def browser_refusal_reason(method: str, path: str, host: str, origin: str | None,
                           opts: dict[str, Any]) -> tuple[int, str, str] | None:
    """(status, code, message) refusing a request a foreign page may have sent (see the
    module docstring), from its `Host` ("" when absent) and `Origin`; None to let it pass.

    The one rule for every path: the Quart routes, the ingest fast lane and the /ws handshake
    all call this, so no path is more permissive than another."""
    if opts["host_check"] and path != "/health":
        name = (urlsplit("//" + host).hostname or "") if host else ""
        if not (is_loopback(name) or name.endswith(".localhost") or name == opts["bind"]):
            return (403, "host_forbidden", "this daemon trusts loopback clients without a "
                    "token, so it answers only requests addressed to localhost or a loopback "
                    f"address, not {host!r}: use one, or serve with --auth on")
    if origin is None or is_sdk_path(path) or (path != "/ws" and method not in _CHANGES):
        return None
    cors = opts["cors"]
    if "*" in cors or origin in cors or urlsplit(origin).netloc.lower() == host.lower():
        return None
    return (403, "origin_forbidden", f"requests from pages at {origin} are not allowed "
            "(add the origin to cors_origins to allow them)")


def browser_refusal(method: str, path: str, headers: Any, opts: dict[str, Any]
                    ) -> Response | None:
    """`browser_refusal_reason` for a request's headers, as a response (HTTP/2 names the
    host in `:authority`)."""
    host = headers.get("Host") or headers.get(":authority") or ""
    reason = browser_refusal_reason(method, path, host, headers.get("Origin"), opts)
    return None if reason is None else _error(*reason)


def response_headers(path: str, origin: str | None, cors: set[str]) -> list[tuple[str, str]]:
    """The headers every answer carries (security headers; CORS for an allowed origin),
    whoever writes it: the after-request hook or the transport guard's own refusals."""
    out = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
           ("Referrer-Policy", "no-referrer"), ("Content-Security-Policy", CSP)]
    if origin and (is_sdk_path(path) or "*" in cors or origin in cors):
        out += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    return out


def check_access(method: str, path: str, headers: Any, args: Any,
                 remote: str | None) -> Response | None:
    """Authenticate and rate-limit one request; a Response means: refuse with it."""
    opts = current_app.config["RTA_SECURITY"]
    g.rta_token = None
    refusal = browser_refusal(method, path, headers, opts)
    if refusal is not None:
        return refusal
    need = required_scope(method, path)
    need_auth = None if opts["mode"] == "off" else need
    secret = _presented_token(headers, args)
    if secret is not None and need is not None and is_share_secret(secret):
        return _share_access(opts, method, path, args, secret, remote, need)
    if is_sdk_path(path) and secret is None:
        need_auth = None  # the SDK's own key (body or basic auth) is checked by sdk_api
    tokens: TokenStore = opts["tokens"]
    if secret is not None and need_auth is not None:
        record = tokens.verify(secret)
        if record is None:  # (counted against the address: guesses are rate-limited too)
            return _rate_limited(opts, need, f"addr:{remote}") or _error(
                401, "unauthorized", "invalid or revoked token",
                {"WWW-Authenticate": 'Bearer realm="rta"'})
        g.rta_token = record
    if need_auth is not None and opts["auth_required"] and g.rta_token is None:
        return _error(401, "unauthorized", "this endpoint needs a token: send "
                      "'Authorization: Bearer <token>' (create one with `rta token create`)",
                      {"WWW-Authenticate": 'Bearer realm="rta"'})
    if need_auth is not None and g.rta_token is not None:
        # A presented token is held to its scope even where auth is optional (loopback
        # with `auth auto`): a read token given to a dashboard must not write.
        scope = g.rta_token["scope"]
        # /ws: a write-only token may connect to stream ingest (subscribing needs read).
        if not (scope_allows(scope, need_auth) or (path == "/ws" and scope == "write")):
            return _error(403, "forbidden", f"this token's scope does not allow this; "
                          f"it needs '{need_auth}'")
    key = f"token:{g.rta_token['id']}" if g.rta_token else f"addr:{remote}"
    return _rate_limited(opts, need, key)


def _rate_limited(opts: dict[str, Any], need: str | None, key: str) -> Response | None:
    """The 429 for `key` once its bucket is empty (public routes are never limited)."""
    limiter: TokenBucket | None = opts["limiter"]
    if limiter is None or need is None:
        return None
    wait = limiter.take(key)
    if wait <= 0:
        return None
    retry = max(1, int(wait + 0.999))
    return _error(429, "rate_limited", f"too many requests; retry in {retry} s",
                  {"Retry-After": str(retry)})


def token_scope_allows(need: str) -> bool:
    """For handlers that mix scopes (WebSocket ingest): may this connection do `need`?"""
    opts = current_app.config["RTA_SECURITY"]
    record = getattr(g, "rta_token", None)
    if record is None:
        return not opts["auth_required"]
    return scope_allows(record["scope"], need)


def setup(app: QuartTrio, engine: Engine) -> None:
    options = app.config["RTA_OPTIONS"]
    mode = options.get("auth", "auto")
    host = options.get("host", "127.0.0.1")
    rate = float(options.get("rate_limit_rps", 0) or 0)
    origins = options.get("cors_origins") or []
    if isinstance(origins, str):
        origins = [o.strip() for o in origins.split(",") if o.strip()]
    tokens = engine.services.tokens
    auth_required = mode == "on" or (mode == "auto" and not is_loopback(host))
    app.config["RTA_SECURITY"] = {
        "mode": mode,
        "tokens": tokens,
        "auth_required": auth_required,
        "host_check": is_loopback(host) and not auth_required,
        "bind": host,
        "limiter": TokenBucket(rate, float(options.get("rate_limit_burst") or rate * 2))
        if rate > 0 else None,
        "cors": set(origins),
        "shares": engine.services.shares,
    }

    @app.before_request
    async def _guard() -> Response | None:
        if request.method == "OPTIONS":
            return _preflight()
        refusal = check_access(request.method, request.path, request.headers, request.args,
                               request.remote_addr)
        if refusal is not None:
            await drain_body()
        return refusal

    @app.before_websocket
    async def _guard_ws() -> Response | None:
        return check_access("GET", websocket.path, websocket.headers, websocket.args,
                            websocket.remote_addr)

    @app.after_request
    async def _headers(response: Response) -> Response:
        h = response.headers
        for name, value in response_headers(request.path, request.headers.get("Origin"),
                                            app.config["RTA_SECURITY"]["cors"]):
            if name == "Vary":
                h.add(name, value)
            elif name == "Access-Control-Allow-Origin":
                h[name] = value
            elif name == "X-Frame-Options" and "frame-ancestors" in h.get(
                    "Content-Security-Policy", ""):
                continue  # a page that names its own frame-ancestors (share links' embeds)
            else:
                h.setdefault(name, value)
        return response


async def drain_body() -> None:
    """Read and drop the body of a request refused before it was read, so a client that
    sends its whole body before reading the answer gets the answer (not a reset), and the
    connection can serve its next request. The transport guard bounds this read like any
    other: past the route's body limit the answer becomes a 413, a stalled body a 408."""
    if request.method not in _CHANGES:
        return
    if request.content_length is None and not request.headers.get("Transfer-Encoding"):
        return
    await drain()


def _preflight() -> Response:
    allowed = current_app.config["RTA_SECURITY"]["cors"]
    origin = request.headers.get("Origin")
    sdk = is_sdk_path(request.path)  # browser SDKs post from customers' own sites
    if not origin or not (sdk or "*" in allowed or origin in allowed):
        return _error(403, "cors_forbidden", "cross-origin requests from this origin are not "
                      "allowed (configure cors_origins)")
    return Response("", 204, headers={
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
        "Access-Control-Max-Age": "600", "Vary": "Origin"})
