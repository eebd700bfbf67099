"""create_app(engine) -> QuartTrio: a thin HTTP/WebSocket layer over the engine."""

from __future__ import annotations

import gzip
import importlib
import logging
import os
from typing import Any

import trio
from quart import Response, request
from quart.wrappers.response import DataBody
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from rta.core.engine import Engine
from rta.core.errors import RtaError
from rta.core.services import DEFAULT_EVENTS_RATE, DEFAULT_WS_QUEUE, ServingOptions
from rta.server.http import error_response, json_response
from rta.server.notifiers import WebhookNotifier
from rta.server.security import drain_body
from rta.server.transport import TransportGuard

log = logging.getLogger("rta.server")

# Each module exposes `bp` (a Blueprint) and optionally `setup(app, engine)` for the
# services it needs (hubs, evaluators). Order matters only for route precedence.
FEATURE_MODULES = (
    "rta.server.security",
    "rta.server.system_api",
    "rta.server.events_api",
    "rta.server.analytics_api",
    "rta.server.queries_api",
    "rta.server.silences_api",  # (before alerts_api: /alerts/silences is not an alert id)
    "rta.server.alerts_api",
    "rta.server.reports_api",
    "rta.server.export_api",
    "rta.server.dashboards_api",
    "rta.server.ws_api",
    "rta.server.sdk_api",
    "rta.server.posthog_config",
    "rta.server.web_tracking",
    "rta.server.tokens_api",
    "rta.server.annotations_api",
    "rta.server.share_api",
    "rta.server.persons_api",
    "rta.server.groups_api",
    "rta.server.openapi",
    "rta.server.web",
)


def create_app(engine: Engine, compression: bool = True, **options: Any) -> QuartTrio:
    app = QuartTrio("rta", static_folder=None)
    app.config["RTA_ENGINE"] = engine
    app.config["RTA_OPTIONS"] = options
    # Body size and stall limits are the transport guard's (installed in front of every
    # other middleware below), the same on every path; Quart's own would apply to its
    # routes only (and its timeout bounds a whole upload, not a stall).
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["BODY_TIMEOUT"] = None
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["RTA_QUERIES"] = {
        "limiter": trio.CapacityLimiter(int(options.get("max_concurrent_queries") or 4)),
        "timeout_s": int(options.get("query_timeout_ms") or 30_000) / 1000}
    engine.start_serving(serving_options(options))
    for name in FEATURE_MODULES:
        module = importlib.import_module(name)
        app.register_blueprint(module.bp)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app, engine)
    app.asgi_app = TransportGuard(app.asgi_app, app)  # type: ignore[method-assign, assignment]

    @app.errorhandler(RtaError)
    async def _rta_error(exc: RtaError) -> Response:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name or "error"
        if exc.code == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        elif exc.code == 405:
            message = f"{request.method} is not allowed on {request.path}"
        response = json_response({"error": {"code": code, "message": message, "details": []}},
                                 exc.code or 500)
        if exc.code in (404, 405):
            await drain_body()
        return response

    @app.errorhandler(RecursionError)
    async def _too_deep(exc: RecursionError) -> Response:
        # input nested past what a recursive reader of it can take (a `where` of a thousand
        # groups): the client's doing, so a 400, not an internal error
        return json_response({"error": {"code": "validation_error", "message":
                                        "the request nests too deeply", "details": []}}, 400)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"error": {"code": "internal_error",
                                        "message": "internal server error; see the server log",
                                        "details": [{"type": type(exc).__name__}]}}, 500)

    if compression:
        @app.after_request
        async def _compress(response: Response) -> Response:
            return await gzip_response(response)

    return app


def serving_options(options: dict[str, Any]) -> ServingOptions:
    """The live and alert services' settings, and the webhook sender only the server has."""
    notifier = WebhookNotifier(timeout=float(options.get("webhook_timeout", 5.0)),
                               retries=int(options.get("webhook_retries", 3)),
                               backoff=float(options.get("webhook_backoff", 0.5)),
                               allow_private=bool(options.get("allow_private_webhooks")))
    return ServingOptions(
        ws_queue=int(_option(options, "ws_queue", "RTA_WS_QUEUE", DEFAULT_WS_QUEUE)),
        live_events_rate=_option(options, "live_events_rate", "RTA_LIVE_EVENTS_RATE",
                                 DEFAULT_EVENTS_RATE),
        notifier=notifier)


def _option(options: dict[str, Any], name: str, env: str, default: float) -> float:
    value = options.get(name)
    if value is None:
        value = os.environ.get(env)
    return float(value) if value not in (None, "") else default


async def gzip_response(response: Response) -> Response:
    """gzip buffered bodies over 1 KiB when the client accepts it; streams pass through."""
    if (not isinstance(response.response, DataBody)
            or response.headers.get("Content-Encoding")
            or "gzip" not in (request.headers.get("Accept-Encoding") or "")
            or response.status_code < 200 or response.status_code == 204):
        return response
    data = await response.get_data(as_text=False)
    if len(data) < 1024:
        return response
    response.set_data(gzip.compress(data, compresslevel=5))
    response.headers["Content-Encoding"] = "gzip"
    response.headers.add("Vary", "Accept-Encoding")
    return response
