"""Ingestion and raw event listing: POST /events, POST /events/batch, GET /events."""

from __future__ import annotations

import gc
import gzip
import json
import logging
import weakref
from typing import Any

from quart import Blueprint, Response, request
from quart_trio import QuartTrio

from rta.core import jsonstrict, query_services
from rta.core.arrow_ingest import ARROW_STREAM, ArrowEvents, fast_arrow, read_stream
from rta.core.embedded.store import IngestResult
from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError, ValidationError
from rta.core.events import EventBatch
from rta.core.ingest import Admitted
from rta.core.json_batch import fast_json_batch
from rta.core.queries import event_list, query_warnings
from rta.core.queries.event_list import parse_event_list
from rta.core.queries.timeparse import int_text, now_ms
from rta.server.http import (
    NDJSON_TYPES,
    UNPARSED,
    bool_arg,
    decode_body,
    engine,
    is_json_type,
    json_response,
    json_text,
    media_type,
    parse_json,
    parse_json_fast,
    read_body,
    run_query,
    unsupported_media,
)
from rta.server.security import browser_refusal_reason

bp = Blueprint("events", __name__)

# The API reference's section on Arrow batches (scripts/generate_docs.py puts it in
# docs/api.md after the events operations).
_ARROW_COLUMNS = [
    ("column", "Arrow type", "as in JSON"), ("---", "---", "---"),
    ("`type`", "string (or dictionary of strings)", "required, 1-200 characters"),
    ("`userId`, `sessionId`", "string", "null or \"\" = none; at most 200 characters"),
    ("`id`", "string or integer", "null = the server generates one; duplicates are dropped"),
    ("`timestamp`", "integer ms since the epoch, `timestamp` (any unit; no zone = UTC), or "
     "ISO-8601 string", "null = the server's clock"),
    ("`properties.<key>`", "bool, integer, float32/64, string, dictionary of strings, or a "
     "list of those (stored as its JSON text)", "null = absent; `<key>` may be dotted "
     "(`properties.utm.source`)"),
    ("`properties`", "a struct of property columns (nested structs give dotted keys), or "
     "strings of JSON object text (then no `properties.<key>` columns)", ""),
]
ARROW_BATCH_DOC = """\
#### Arrow batches

`POST /events/batch` also takes an [Arrow IPC stream](https://arrow.apache.org/docs/format/Columnar.html#ipc-streaming-format)
(`Content-Type: application/vnd.apache.arrow.stream`), one row per event, in one or more
record batches; its buffers may be compressed by Arrow (`zstd` or `lz4_frame` IPC
compression), and the whole body gzip-encoded like JSON. `rta ingest FILE` sends NDJSON and
Parquet files this way (and JSON to a daemon that answers 415; as with `--local`, pyarrow
types a key holding both integers and decimals in one chunk of an NDJSON file as float, so
those integers are stored as floats). Columns:

{columns}

Other columns are ignored, as unknown fields of a JSON event are. Each row is validated
exactly as the same event sent as JSON: the same limits (event size, `max_batch_events`
rows, property keys per event and per batch, distinct keys and types in the store), the
same deduplication, the same answer, and the same `invalid_batch` 400 listing each invalid
row as `index` (0-based over the whole stream), or with `partial=true` the valid rows stored
and the others in `rejected`; the 202 comes after the WAL fsync. Errors only Arrow can have
are a 400 for the whole body, nothing stored, with or without `partial`:
`invalid_arrow_schema` for a column of a type the table does not list (a union, binary,
date, ...) or a name given twice, with `details[0].field` naming the column;
`invalid_arrow` for a body that is not an Arrow stream, a truncated stream, a record batch
that does not decompress or whose columns disagree with its length, or a column whose data
is malformed (e.g. not UTF-8: `field` names the column and `row` the row). A stream of more
than `max_batch_events` rows, or whose record batches decompress to more than 16 times
`max_batch_bytes`, is a 413 `batch_too_large`.

```python
import httpx, pyarrow as pa

events = pa.table({"type": ["pageview", "click"], "userId": ["user_1", "user_2"],
                   "timestamp": pa.array([1699564800000, 1699564801000], pa.int64()),
                   "properties.page": ["/home", "/pricing"],
                   "properties.duration": pa.array([1200, None], pa.int64())})
sink = pa.BufferOutputStream()
zstd = pa.ipc.IpcWriteOptions(compression="zstd")
with pa.ipc.new_stream(sink, events.schema, options=zstd) as writer:
    writer.write_table(events)
r = httpx.post("http://127.0.0.1:8080/events/batch", content=sink.getvalue().to_pybytes(),
               headers={"Content-Type": "application/vnd.apache.arrow.stream"})
print(r.json())  # {"success": true, "accepted": 2, "duplicates": 0, "rejected": []}
```
""".replace("{columns}", "\n".join("| " + " | ".join(row) + " |"
                                   for row in _ARROW_COLUMNS))
log = logging.getLogger("rta.server.events")
# Collect the youngest generation every 50k container allocations, not 700: a 1,000-event
# batch allocates ~3,000 while it is parsed and validated, and each collection in between
# would traverse and promote them all (only cycles wait for the collector; the rest is freed
# by reference counting as before).
GC_THRESHOLDS = (50_000, 20, 100)

# Decompressed Arrow batches may hold this many times the body limit: dense columns of
# sparse property keys are mostly nulls, so they outgrow the same events' JSON.
ARROW_BYTES_FACTOR = 16

_LANES: weakref.WeakKeyDictionary[Engine, FastIngest] = weakref.WeakKeyDictionary()


def fast_lane(eng: Engine) -> FastIngest | None:
    """The ingest fast lane serving `eng` (None when it is switched off); for tests."""
    return _LANES.get(eng)


def setup(app: QuartTrio, eng: Engine) -> None:
    """Put `FastIngest` in front of Quart, and keep the collector's full passes short.

    Everything alive once the server starts (modules, the app, the engine, the store's
    dictionaries) is moved out of the collector's generations with `gc.freeze()`; a full
    collection then walks only what was allocated since, instead of ~100k startup objects
    (40 ms pauses under batch ingest, straight into the p99). Unfrozen when serving stops,
    so a process that serves several times (the tests) can still free it.
    """
    fast = FastIngest(app.asgi_app, app, eng)
    if app.config["RTA_OPTIONS"].get("fast_ingest", True):
        app.asgi_app = fast  # type: ignore[method-assign, assignment]
        _LANES[eng] = fast

    thresholds = gc.get_threshold()

    @app.before_serving
    async def _start() -> None:
        try:
            await fast.learn_headers()
        except Exception:  # a hook that cannot run outside a real request: Quart answers all
            log.exception("ingest fast lane disabled: the after-request hooks failed")
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    @app.after_serving
    async def _unfreeze_heap() -> None:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# -- the ingest fast lane --------------------------------------------------------------------

_FAST_PATHS = ("/events", "/events/batch")
_FAST_QUERIES = {b""} | {b"partial=" + v for v in (
    b"", b"1", b"true", b"yes", b"on", b"0", b"false", b"no", b"off")}
_DELEGATE_HEADERS = {b"origin", b"authorization", b"x-rta-token"}
_WANTED_HEADERS = {b"content-type", b"content-length", b"content-encoding", b"accept-encoding",
                   b"host", b":authority"}


class FastIngest:
    """ASGI middleware: the common case of POST /events and /events/batch, without Quart.

    Quart's request machinery (contexts, routing, hooks, the response object) costs several
    times what validating and logging one event does. So a request whose answer is a 202
    is answered here: no query string but `partial=`, no Origin or token header, security
    settings that need neither a token nor a rate limit, a body that decodes, parses with
    orjson and passes `EventValidator.fast_batch`. The response carries the headers Quart's
    own after-request hooks give a small JSON 202 (learnt from them before serving).
    A request the security module's browser rules refuse (a foreign `Host`: the same
    `browser_refusal_reason` the routes apply; any `Origin` is delegated outright) goes to
    Quart too. Body size and stall limits are the transport guard's, in front of this.
    Anything else, every error included, is handed to Quart with the body replayed, so its
    answer is exactly the routes' (with one exception: a failed WAL write is answered here
    too, since the events were reserved and released once already).
    """

    def __init__(self, inner: Any, app: QuartTrio, eng: Engine) -> None:
        self.inner = inner
        self.app = app
        self.engine = eng
        self.headers: list[tuple[bytes, bytes]] | None = None  # None: not learnt, all to Quart
        self.compress = False
        self.answered = 0  # requests answered here (the rest went to Quart)

    async def learn_headers(self) -> None:
        """The headers the app's after-request hooks put on a small JSON 202 of the ingest
        routes, and whether they gzip a large body for a client that accepts it."""
        async with self.app.test_request_context("/events", method="POST"):
            small = await self.app.process_response(
                Response("{}", 202, mimetype="application/json"))
        async with self.app.test_request_context("/events", method="POST",
                                                 headers={"Accept-Encoding": "gzip"}):
            large = await self.app.process_response(
                Response("{}" + " " * 2048, 202, mimetype="application/json"))
        self.compress = large.headers.get("Content-Encoding") == "gzip"
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in small.headers.items() if k.lower() != "content-length"]

    def _open(self) -> bool:
        """Whether Quart's security hook lets a request with no token, from anywhere, pass
        without side effects (no token required, no rate limit)."""
        sec = self.app.config.get("RTA_SECURITY")
        if sec is None:
            return True
        try:
            return sec["limiter"] is None and (sec["mode"] == "off" or not sec["auth_required"])
        except (KeyError, TypeError):
            return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST" or self.headers is None
                or scope.get("path") not in _FAST_PATHS or scope.get("root_path")
                or scope.get("query_string", b"").lower() not in _FAST_QUERIES
                or not self._open()):
            await self.inner(scope, receive, send)
            return
        fields: dict[bytes, str] = {}
        for name, value in scope.get("headers") or ():
            if name in _DELEGATE_HEADERS:
                await self.inner(scope, receive, send)
                return
            if name in _WANTED_HEADERS and name not in fields:
                fields[name] = value.decode("latin-1")
        sec = self.app.config.get("RTA_SECURITY")
        if sec is not None and browser_refusal_reason(
                "POST", scope["path"], fields.get(b"host") or fields.get(b":authority", ""),
                None, sec) is not None:
            await self.inner(scope, receive, send)  # refused there, by the same rule
            return
        limit = self.engine.validator.limits.max_batch_bytes
        length = fields.get(b"content-length")
        size_said = None if length is None else int_text(length)
        if length is not None and (size_said is None or not 0 <= size_said <= limit):
            await self.inner(scope, receive, send)  # Quart drains it and answers 413
            return
        messages: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                await self._quart(scope, messages, receive, send)
                return
            body = message.get("body", b"")
            if body:
                chunks.append(body)
                size += len(body)
            if size > limit:
                await self._quart(scope, messages, receive, send)
                return
            if not message.get("more_body", False):
                break
        try:
            prepared = self._batch(scope["path"], b"".join(chunks), fields, limit)
        except Exception:  # an error to report: the route does that, exactly
            prepared = None
        if prepared is None:
            await self._quart(scope, messages, receive, send)
            return
        del chunks, messages
        batch, single = prepared
        try:
            result = await self.engine.ingest(batch)
        except RtaError as exc:  # could not be made durable (nothing was acknowledged)
            await self._respond(send, exc.status, exc.to_dict(), fields)
            return
        payload = (accepted_one(batch, result) if single
                   else accepted_many(Admitted(batch), result))
        await self._respond(send, 202, payload, fields)

    def _batch(self, path: str, raw: bytes, fields: dict[bytes, str],
               limit: int) -> tuple[EventBatch, bool] | None:
        """(validated batch, sent as one event to POST /events), or None when the route
        must answer (errors, unusual input)."""
        raw = decode_body(raw, fields.get(b"content-encoding"), limit)
        kind = (fields.get(b"content-type") or "").split(";")[0].strip().lower()
        eng = self.engine
        if kind == ARROW_STREAM:
            if path != "/events/batch":
                return None
            arrow = fast_arrow(eng.validator, read_arrow_body(eng, raw), now_ms())
            return None if arrow is None else (arrow, False)
        if path == "/events" and kind not in NDJSON_TYPES:
            if not is_json_type(kind):
                return None
            body = parse_json_fast(raw)
            if type(body) is dict:
                one = eng.admit_fast([body])
                return None if one is None else (one, True)
            if not isinstance(body, list):
                return None
            del body  # (parsed again below, as the route does)
        elif path == "/events/batch" and kind not in NDJSON_TYPES and is_json_type(kind):
            fast = fast_json_batch(eng.validator, raw, now_ms(),
                                      eng.validator.limits.max_batch_events)
            if fast is not None:
                return fast, False
        parsed = parse_events_body(raw, kind, fast=True)
        if parsed is None or len(parsed[0]) > eng.validator.limits.max_batch_events:
            return None
        many = eng.admit_fast(parsed[0], None, parsed[1])
        return None if many is None else (many, False)

    async def _respond(self, send: Any, status: int, payload: dict[str, Any],
                       fields: dict[bytes, str]) -> None:
        body = json_text(payload).encode()
        headers = list(self.headers or ())
        if self.compress and len(body) >= 1024 and "gzip" in fields.get(b"accept-encoding", ""):
            body = gzip.compress(body, compresslevel=5)
            headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
        headers.append((b"content-length", str(len(body)).encode()))
        self.answered += 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _quart(self, scope: dict[str, Any], messages: list[dict[str, Any]],
                     receive: Any, send: Any) -> None:
        """Hand the request to Quart, replaying the messages already received."""
        pending = list(messages)

        async def replay() -> dict[str, Any]:
            if pending:
                return pending.pop(0)
            message: dict[str, Any] = await receive()
            return message

        await self.inner(scope, replay, send)


def parse_events_body(raw: bytes, kind: str, fast: bool = False
                      ) -> tuple[list[Any], int] | None:
    """A JSON array (or {"events": [...]}) or NDJSON, by content type; with an upper bound
    on any one event's encoded size (a line's length, or the whole body's).

    `fast` parses with orjson and returns None where it cannot (the caller then parses
    again without `fast`, which raises the same errors as ever).
    """
    if kind in NDJSON_TYPES:
        items: list[Any] = []
        longest = 0
        for lineno, line in enumerate(raw.splitlines()):
            longest = max(longest, len(line))
            if not line.strip():
                continue
            if fast:
                value = parse_json_fast(line)
                if value is UNPARSED:
                    return None
                items.append(value)
                continue
            try:
                items.append(jsonstrict.loads(line))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValidationError(f"line {lineno + 1} is not valid JSON: {exc}",
                                      [{"index": len(items), "line": lineno + 1,
                                        "message": str(exc)}], code="invalid_json") from None
        return items, longest
    if not is_json_type(kind):
        raise unsupported_media(kind, ["application/json", "application/x-ndjson",
                                       ARROW_STREAM])
    if fast:
        body = parse_json_fast(raw)
        if body is UNPARSED:
            return None
    else:
        body = parse_json(raw)
    return _event_list(body), len(raw)


def _event_list(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        body = body["events"]
    if not isinstance(body, list):
        raise ValidationError("a batch must be a JSON array of events (or NDJSON)",
                              [{"field": "", "got": type(body).__name__}])
    return body


@bp.post("/events")
async def ingest_one() -> Response:
    eng = engine()
    raw = await read_body(eng.validator.limits.max_batch_bytes)
    kind = media_type()
    if kind in NDJSON_TYPES:
        return await _ingest_many(raw, kind)
    if not is_json_type(kind):
        raise unsupported_media(kind, ["application/json"])
    body = parse_json_fast(raw)
    exact = body is UNPARSED
    if exact:
        body = parse_json(raw)
    if isinstance(body, list):
        del body  # (parsed again there: only that frame may hold the events while waiting)
        return await _ingest_many(raw, kind)
    batch = eng.admit_one(body, now_ms(), None if exact else lambda: parse_json(raw))
    result = await eng.ingest(batch)
    return json_response(accepted_one(batch, result), 202)


@bp.post("/events/batch")
async def ingest_batch() -> Response:
    eng = engine()
    raw = await read_body(eng.validator.limits.max_batch_bytes)
    kind = media_type()
    if kind == ARROW_STREAM:
        return await _ingest_arrow(raw)
    return await _ingest_many(raw, kind)


async def _ingest_arrow(raw: bytes) -> Response:
    """An Arrow IPC stream batch (`rta.core.arrow_ingest`): the JSON path's checks, errors,
    deduplication and group commit, over columns."""
    eng = engine()
    events = read_arrow_body(eng, raw)
    del raw
    admitted = eng.admit_arrow(events, partial=bool_arg("partial"), now=now_ms())
    del events
    result = await eng.ingest(admitted.batch)
    return json_response(accepted_many(admitted, result, ids=bool_arg("ids")), 202)


async def _ingest_many(raw: bytes, kind: str) -> Response:
    """Validate and ingest a batch body: parsed by orjson and validated column-wise when
    that is exact (the usual case), else parsed by `json` and validated event by event."""
    eng = engine()
    limit = eng.validator.limits.max_batch_events
    # (a bad flag is answered below, after the body's own errors, as it always was)
    if kind not in NDJSON_TYPES and is_json_type(kind) and _flags_valid("partial", "ids"):
        fast = fast_json_batch(eng.validator, raw, now_ms(), limit)
        if fast is not None:
            result = await eng.ingest(fast)
            return json_response(accepted_many(Admitted(fast), result, ids=bool_arg("ids")),
                                 202)
    exact = False
    parsed = parse_events_body(raw, kind, fast=True)
    if parsed is None:
        parsed, exact = parse_events_body(raw, kind), True
    assert parsed is not None
    items, size_bound = parsed
    if len(items) > limit:
        raise PayloadTooLarge(f"batch has {len(items)} events; the limit is {limit}",
                              [{"field": "", "count": len(items), "limit": limit}],
                              code="batch_too_large")
    admitted = eng.admit(items, partial=bool_arg("partial"), now=now_ms(),
                         size_bound=size_bound,
                         exact=None if exact else lambda: (parse_events_body(raw, kind)
                                                           or ([], 0))[0])
    # Drop the parsed events before waiting for the fsync: objects alive across collections
    # get promoted, and a thousand dicts per batch would make full collections frequent.
    del items, parsed
    result = await eng.ingest(admitted.batch)
    return json_response(accepted_many(admitted, result, ids=bool_arg("ids")), 202)


def _flags_valid(*names: str) -> bool:
    """Whether the query flags `names` are absent or true/false (`bool_arg` would not raise)."""
    try:
        for name in names:
            bool_arg(name)
    except ValidationError:
        return False
    return True


def read_arrow_body(eng: Engine, raw: bytes) -> ArrowEvents:
    """An Arrow stream body within the batch limits: `max_batch_events` rows, and at most
    ARROW_BYTES_FACTOR x `max_batch_bytes` once decompressed."""
    limits = eng.validator.limits
    return read_stream(raw, limits.max_batch_events,
                       ARROW_BYTES_FACTOR * limits.max_batch_bytes)


def accepted_one(batch: EventBatch, result: IngestResult) -> dict[str, Any]:
    """The 202 body of `POST /events` with one event (the route's and the fast lane's)."""
    return {"success": True, "id": batch.ids[0], "accepted": result.accepted,
            "duplicates": result.duplicates, "duplicate": result.duplicates > 0}


def accepted_many(admitted: Admitted, result: IngestResult, ids: bool = False
                  ) -> dict[str, Any]:
    """The 202 body of a batch (the route's and the fast lane's)."""
    payload: dict[str, Any] = {"success": True, "accepted": result.accepted,
                               "duplicates": result.duplicates, "rejected": admitted.rejected}
    if ids:
        payload["ids"] = admitted.batch.ids
    return payload


@bp.get("/events")
async def get_events() -> Response:
    eng = engine()
    query = parse_event_list(list(request.args.items(multi=True)))
    # (off the event loop like every query: a page over millions of events took 100-250 ms;
    # a saved segment named in it is resolved there too)
    ctx = query_services.context(eng)
    page = await run_query(event_list.execute, query, ctx)
    warnings = query_warnings.for_query(query, ctx.backend.vocabulary())
    return json_response(query_warnings.add_to(page.to_json(), warnings))
