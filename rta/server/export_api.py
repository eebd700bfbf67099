"""POST /export: a streamed export (chunked transfer) in CSV, JSON, NDJSON, Parquet or XLSX.

The body is validated before any byte is sent (bad input is a 400 naming the field). The
export then holds one snapshot and encodes a chunk of rows at a time in a worker thread, so
the event loop keeps serving other requests and memory stays bounded whatever the size.
When the client goes away the response task is cancelled: the encoder generator is closed
at once (after the chunk in flight, bounded by the chunk size) and the snapshot released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from quart import Blueprint, Response, current_app
from quart_trio import QuartTrio

from rta.core import query_services
from rta.core.engine import Engine
from rta.core.export import Export, PreparedExport, parse_export
from rta.core.export_clickhouse import ClickHouseExport
from rta.server.http import engine, json_object

bp = Blueprint("export_api", __name__)

EXPORT_THREADS = 2  # exports in flight encode on at most this many threads together


@dataclass
class ExportStats:
    """Counters for the `export` section of /stats."""

    limiter: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(EXPORT_THREADS))
    active: int = 0
    started: int = 0
    completed: int = 0
    aborted: int = 0
    rows: int = 0
    bytes: int = 0

    def statistics(self) -> dict[str, Any]:
        return {"activeExports": self.active, "exportsStarted": self.started,
                "exportsCompleted": self.completed, "exportsAborted": self.aborted,
                "rowsExported": self.rows, "bytesExported": self.bytes}


def setup(app: QuartTrio, eng: Engine) -> None:
    state = ExportStats()
    app.config["RTA_EXPORT"] = state
    eng.services.stats_providers["export"] = state.statistics


def _state() -> ExportStats:
    state = current_app.config.get("RTA_EXPORT")
    if not isinstance(state, ExportStats):  # app built without setup (tests)
        state = current_app.config["RTA_EXPORT"] = ExportStats()
    return state


@bp.post("/export")
async def export() -> Response:
    eng = engine()
    body = await json_object()
    spec = parse_export(body)
    state = _state()
    # (the saved segment, if any, is evaluated here, in the worker that plans the export)
    prepared: PreparedExport
    if eng.clickhouse is not None:  # ClickHouse holds the history: export from it
        segments = query_services.context(eng).segments
        mark = eng.clickhouse.ack_mark()
        prepared = await trio.to_thread.run_sync(
            partial(ClickHouseExport, eng.clickhouse.ch, spec, segments=segments,
                    ready=partial(eng.clickhouse.shipper.wait_shipped, mark)),
            limiter=state.limiter)
    else:
        prepared = await trio.to_thread.run_sync(
            partial(Export, eng.snapshot(), spec, segments=eng.services.segment_resolver),
            limiter=state.limiter)
    headers = {
        "Content-Disposition": f'attachment; filename="{prepared.filename}"',
        "X-Export-Rows": str(prepared.rows),
        "X-Export-Format": spec.format,
        "Cache-Control": "no-store",
    }
    response = Response(_stream(prepared, state), status=200,
                        content_type=prepared.media_type, headers=headers)
    response.timeout = None  # a large export may take longer than any fixed timeout
    return response


async def _stream(prepared: PreparedExport, state: ExportStats) -> AsyncIterator[bytes]:
    chunks: Generator[bytes, None, None] = prepared.chunks()
    state.active += 1
    state.started += 1
    finished = False
    try:
        while True:
            data = await trio.to_thread.run_sync(next, chunks, None, limiter=state.limiter)
            if data is None:
                finished = True
                break
            state.bytes += len(data)
            yield data
            del data  # (freed before the next chunk is rendered and memory trimmed)
    finally:
        chunks.close()  # runs the writers' cleanup; drops the snapshot's blocks
        state.active -= 1
        state.rows += prepared.rows_written
        if finished:
            state.completed += 1
        else:
            state.aborted += 1
