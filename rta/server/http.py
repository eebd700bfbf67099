"""Request/response helpers shared by every blueprint: JSON bodies, errors, query params."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any, TypeVar

import orjson
import trio
from quart import Response, current_app, request

from rta.core import jsonstrict
from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError, ValidationError, field_error

# curl's default (form-urlencoded) and text/plain are read as JSON: clients that forget the
# header should not be punished; anything else that is not JSON gets a 415.
T = TypeVar("T")
JSON_TYPES = ("", "application/json", "text/json", "text/plain",
              "application/x-www-form-urlencoded")
# Bodies of every route but ingestion (which takes `max_batch_bytes`).
DEFAULT_BODY_LIMIT = 1024 * 1024
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/x-jsonlines", "application/jsonlines")


def engine() -> Engine:
    eng: Engine = current_app.config["RTA_ENGINE"]
    return eng


class QueryTimeout(RtaError):
    status = 504
    code = "query_timeout"


class RequestTimeout(RtaError):
    status = 408
    code = "request_timeout"


class QueryBusy(RtaError):
    status = 503
    code = "too_many_queries"


async def run_query(fn: Callable[..., T], *args: Any) -> T:
    """Run a CPU-bound query off the event loop, at most `max_concurrent_queries` at once,
    cancelled (504) past `query_timeout_ms`, so ingestion and other clients stay responsive."""
    opts = current_app.config["RTA_QUERIES"]
    limiter: trio.CapacityLimiter = opts["limiter"]
    timeout_s: float = opts["timeout_s"]
    with trio.move_on_after(timeout_s):
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=limiter,
                                             abandon_on_cancel=True)
    if limiter.borrowed_tokens >= limiter.total_tokens:
        raise QueryBusy(f"the server is busy with {limiter.total_tokens} queries; "
                        "retry shortly", [{"timeoutMs": int(timeout_s * 1000)}])
    raise QueryTimeout(f"the query ran longer than {int(timeout_s * 1000)} ms and was "
                       "cancelled", [{"timeoutMs": int(timeout_s * 1000)}])


def json_response(payload: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(json_text(payload), status=status, mimetype="application/json",
                    headers=headers)


def json_text(payload: Any) -> str:
    """Compact JSON as every response body is written (UTF-8-encodable)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_default)
    if not body.isascii():
        try:
            body.encode()
        except UnicodeEncodeError:  # an unpaired surrogate echoed from the input: escape it
            body = json.dumps(payload, separators=(",", ":"), default=_default)
    return body


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error_response(exc: RtaError) -> Response:
    return json_response(exc.to_dict(), exc.status)


async def read_body(max_bytes: int) -> bytes:
    """The request body, gunzipped if needed, refusing anything over `max_bytes`.

    A declared length over the limit is refused before any of it is read (the transport
    guard then closes the connection rather than read the rest); the guard also stops an
    undeclared (chunked) body at the route's limit while it arrives."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {max_bytes}",
                              [{"bytes": length, "limit": max_bytes}])
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    assert isinstance(raw, bytes)
    return decode_body(raw, request.headers.get("Content-Encoding"), max_bytes)


def decode_body(raw: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """A received body checked against `max_bytes` and gunzipped/inflated if encoded."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body is over the limit of {max_bytes} bytes",
                              [{"limit": max_bytes}])
    encoding = (content_encoding or "").lower().strip()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            d = zlib.decompressobj(47 if encoding != "deflate" else 15)
            raw = d.decompress(raw, max_bytes + 1)
            if len(raw) > max_bytes or d.unconsumed_tail:
                raise PayloadTooLarge(f"decompressed body is over the limit of {max_bytes} "
                                      "bytes", [{"limit": max_bytes}])
            if not d.eof:
                raise zlib.error("the compressed stream ends early (truncated)")
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise ValidationError(f"body is not valid {encoding}: {exc}",
                                  [{"field": "Content-Encoding"}], code="bad_encoding") from None
    elif encoding not in ("", "identity"):
        raise RtaError(f"unsupported Content-Encoding {encoding!r}; use gzip",
                       [{"field": "Content-Encoding", "allowed": ["gzip", "identity"]}],
                       code="unsupported_encoding")
    return raw


async def drain() -> None:
    """Read and discard a body the answer does not need (a request refused before it was
    read): a client that sends its whole body before reading would otherwise never see the
    answer. Bounded by the transport guard: past the route's limit it answers 413 instead,
    and a body that stalls gets a 408."""
    with suppress(Exception):  # (a client that gives up: nothing more to drain)
        async for _chunk in request.body:
            pass


def media_type() -> str:
    return (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()


class _Unparsed:
    """Marks a body orjson could not parse (the standard library decides instead)."""


UNPARSED = _Unparsed()


def parse_json_fast(raw: bytes) -> Any:
    """The body parsed by orjson (several times faster than `json`), or UNPARSED.

    orjson and `json` agree on every document except that orjson refuses some `json`
    accepts (NaN, a byte-order mark, UTF-16, unpaired surrogate escapes, numbers beyond
    double range: then `parse_json` decides, errors included) and reads integers beyond
    64 bits as floats (so callers re-parse with `parse_json` when a float of 2**63 or more
    would matter; `EventValidator.fast_batch` says when).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UNPARSED


def parse_json(raw: bytes) -> Any:
    try:
        return jsonstrict.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        details: dict[str, Any] = {"message": str(exc)}
        if isinstance(exc, json.JSONDecodeError):
            details.update(line=exc.lineno, column=exc.colno)
        raise ValidationError(f"body is not valid JSON: {exc}", [details],
                              code="invalid_json") from None


async def json_body(max_bytes: int = DEFAULT_BODY_LIMIT) -> Any:
    """A JSON request body (any JSON content type, or none given)."""
    kind = media_type()
    if not is_json_type(kind):
        raise unsupported_media(kind, ["application/json"])
    return parse_json(await read_body(max_bytes))


def is_json_type(kind: str) -> bool:
    return kind in JSON_TYPES or kind.endswith("+json")


async def json_object(max_bytes: int = DEFAULT_BODY_LIMIT) -> dict[str, Any]:
    body = await json_body(max_bytes)
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object",
                              [{"field": "", "got": type(body).__name__}])
    return body


def unsupported_media(kind: str, allowed: list[str]) -> RtaError:
    err = RtaError(f"unsupported Content-Type {kind!r}; send {' or '.join(allowed)}",
                   [{"field": "Content-Type", "got": kind, "allowed": allowed}],
                   code="unsupported_media_type")
    err.status = 415
    return err


def int_arg(name: str, default: int | None = None, lo: int | None = None,
            hi: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise field_error(name, "must be an integer", value=raw) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise field_error(name, f"must be between {lo} and {hi}", value=value)
    return value


def bool_arg(name: str, default: bool = False) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on", ""):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise field_error(name, "must be true or false", value=raw)
