"""SDK-compatible ingestion: the PostHog capture API and the Segment tracking API.

Apps keep their PostHog or Segment SDK and point its host at rta. Bodies are decoded here,
mapped by `rta.core.sdk_mapping` into rta's raw events, validated as a whole and ingested
exactly like `POST /events/batch`. Answers mimic each vendor (`{"status": 1}`,
`{"success": true}`) so the SDKs' retry logic behaves; errors are rta's JSON error body plus
the fields each SDK reads (`detail` for PostHog, `message` for Segment). Before validation
the events get their derived device and geo properties (`rta/server/enrichment.py`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, current_app, g, request
from quart_trio import QuartTrio

from rta.core.auth import PREFIX as TOKEN_PREFIX
from rta.core.auth import scope_allows
from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError
from rta.core.queries.timeparse import now_ms
from rta.core.sdk_mapping import (
    DEFAULT_GROUP_TYPE,
    Mapped,
    decode_json,
    decode_posthog_body,
    posthog_batch,
    segment_batch,
    validate_mapped,
)
from rta.server import enrichment
from rta.server.http import engine, json_response, media_type, read_body

bp = Blueprint("sdk_api", __name__)


def setup(app: QuartTrio, eng: Engine) -> None:
    enrichment.install(app)

POSTHOG_PATHS = ("/batch", "/capture", "/e", "/i/v0/e")
SEGMENT_KINDS = ("track", "page", "screen", "identify", "alias", "group")


def authorize_sdk_key(eng: Engine, sdk: str, key: str | None) -> None:
    """The one place an SDK's API key / write key is checked.

    Keys are rta tokens: when auth is required, the key must be a live token with write (or
    admin) scope. A request that already presented a Bearer token was checked by the
    security module. A wrong key is refused even when auth is optional, as everywhere else.
    """
    if getattr(g, "rta_token", None) is not None:
        return
    opts = current_app.config["RTA_SECURITY"]
    if opts["mode"] == "off":
        return
    if not key:
        if opts["auth_required"]:
            raise _unauthorized(f"{sdk}: send your rta write token as the API key")
        return
    record = opts["tokens"].verify(key)
    if record is None:
        if opts["auth_required"] or key.startswith(TOKEN_PREFIX):
            raise _unauthorized("invalid or revoked API key")
        return  # auth optional and the key is not an rta token (e.g. a PostHog project key)
    if not scope_allows(record["scope"], "write"):
        err = RtaError("this key's scope does not allow ingestion; it needs 'write'",
                       code="forbidden")
        err.status = 403
        raise err


def _unauthorized(message: str) -> RtaError:
    err = RtaError(message, code="unauthorized")
    err.status = 401
    return err


async def _ingest(eng: Engine, mapped: Mapped, now: int) -> None:
    limit = eng.validator.limits.max_batch_events
    if mapped.total > limit:
        raise PayloadTooLarge(f"batch has {mapped.total} events; the limit is {limit}",
                              [{"field": "batch", "count": mapped.total, "limit": limit}],
                              code="batch_too_large")
    authorize_sdk_key(eng, mapped.sdk, mapped.key)
    enrichment.enrich(mapped.events)
    try:
        batch = validate_mapped(eng.validator, mapped, now)
    except RtaError as exc:
        eng.events_rejected += len({d["index"] for d in exc.details if "index" in d})
        raise
    if len(batch):
        await eng.ingest(batch)


def _sdk_error(exc: RtaError, extra: Callable[[RtaError], dict[str, Any]]) -> Response:
    return json_response({**exc.to_dict(), **extra(exc)}, exc.status)


def _posthog_extra(exc: RtaError) -> dict[str, Any]:
    kind = "authentication_error" if exc.status == 401 else "validation_error"
    return {"type": kind, "code": exc.code, "detail": exc.message, "attr": None}


def _segment_extra(exc: RtaError) -> dict[str, Any]:
    return {"success": False, "code": exc.code, "message": exc.message}


# -- PostHog ---------------------------------------------------------------------------------


def _bearer() -> str | None:
    auth = request.headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


async def posthog_capture() -> Response:
    """POST /batch/, /capture/, /e/, /i/v0/e/ (with or without the trailing slash)."""
    try:
        eng = engine()
        now = now_ms()
        max_bytes = eng.validator.limits.max_batch_bytes
        raw = await read_body(max_bytes)
        body = decode_posthog_body(raw, media_type(), request.args.get("compression"),
                                   max_bytes)
        key = _bearer() or request.args.get("api_key") or request.args.get("token") or None
        mapped = posthog_batch(body, now, eng.validator.limits.future_tolerance_ms, key)
        await _ingest(eng, mapped, now)
    except RtaError as exc:
        return _sdk_error(exc, _posthog_extra)
    return json_response({"status": 1})


for _path in POSTHOG_PATHS:
    for _variant in (_path, _path + "/"):
        bp.add_url_rule(_variant, "posthog" + _variant.replace("/", "_"), posthog_capture,
                        methods=["POST"], strict_slashes=True)


# -- Segment ---------------------------------------------------------------------------------


def _basic_user() -> str | None:
    """The write key: the user name of HTTP basic auth (Segment sends 'key:')."""
    auth = request.headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # (ValueError: non-ASCII base64 text, bad UTF-8)
        return None
    return text.partition(":")[0] or None


def _segment_route(kind: str | None) -> Callable[[], Awaitable[Response]]:
    async def handler() -> Response:
        try:
            eng = engine()
            now = now_ms()
            max_bytes = eng.validator.limits.max_batch_bytes
            body = decode_json(await read_body(max_bytes), max_bytes)
            group_type = current_app.config.get("RTA_OPTIONS", {}).get(
                "segment_group_type") or DEFAULT_GROUP_TYPE
            mapped = segment_batch(body, kind, now, eng.validator.limits.future_tolerance_ms,
                                   _basic_user(), group_type)
            await _ingest(eng, mapped, now)
        except RtaError as exc:
            return _sdk_error(exc, _segment_extra)
        return json_response({"success": True})
    handler.__name__ = f"segment_{kind or 'batch'}"
    handler.__doc__ = f"POST /v1/{kind or 'batch'} (Segment tracking API)."
    return handler


bp.add_url_rule("/v1/batch", "segment_batch", _segment_route(None), methods=["POST"])
bp.add_url_rule("/v1/import", "segment_import", _segment_route(None), methods=["POST"])
for _kind in SEGMENT_KINDS:
    bp.add_url_rule(f"/v1/{_kind}", f"segment_{_kind}", _segment_route(_kind), methods=["POST"])
