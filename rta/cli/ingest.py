"""`rta ingest FILE...`: send events to the daemon, or bulk-load a store with --local."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, Protocol

import typer

from rta.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    JsonOption,
    ServerOption,
    call,
    console,
    emit,
    fail,
    get_client,
    message,
)


def ingest(
    files: list[str] = typer.Argument(..., help="Files to ingest (NDJSON, JSON array, CSV, "
                                      "Parquet; .gz accepted); - reads stdin."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help="ndjson, json, csv or parquet [default: from the suffix]."),
    batch_size: int = typer.Option(5000, "--batch-size", help="Events per request."),
    local: bool = typer.Option(False, "--local", help="Write straight into a data directory "
                               "with no daemon (refused while a daemon holds it)."),
    data_dir: str = typer.Option(None, "--data-dir", "-d", help="Data directory for --local."),
    strict: bool = typer.Option(False, "--strict", help="Reject a whole batch when any "
                                "event in it is invalid (default: store the valid ones)."),
    stream: bool = typer.Option(False, "--stream", help="Send over one WebSocket connection "
                                "(acknowledged once durable) instead of HTTP requests."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Ingest events from files; prints accepted, duplicates and rejected counts."""
    from rta.client.readers import ReadError, detect_format, iter_batches

    totals: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": []}
    if stream and local:
        fail("--stream sends to a daemon; it cannot be combined with --local", 2)
    sink: _Sink = _LocalSink(data_dir) if local else _StreamSink(server, strict) if stream \
        else _RemoteSink(server, strict)
    started = time.perf_counter()
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.fields[events]:,} events  {task.fields[rate]:,.0f}/s"),
                        TimeElapsedColumn(), console=console(stderr=True), transient=True,
                        disable=as_json)
    try:
        with progress:
            for path in files:
                fmt_used = detect_format(path, fmt)
                task = progress.add_task(path, total=None, events=0, rate=0.0)

                def show(events: int, task: Any = task) -> None:
                    elapsed = time.perf_counter() - started
                    progress.update(task, events=events, rate=(
                        totals["accepted"] + totals["duplicates"] + events) / elapsed)

                if isinstance(sink, _LocalSink) and fmt_used == "ndjson" and path != "-":
                    _add(totals, path, 0, sink.bulk_ndjson(path, show))
                    continue
                offset = 0
                for batch in iter_batches(path, fmt_used, batch_size):
                    _add(totals, path, offset, sink.send(batch))
                    offset += len(batch)
                    show(0)
    except ReadError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except FileNotFoundError as exc:
        fail(f"no such file: {exc.filename}", EXIT_BAD_INPUT)
    finally:
        sink.close()
    totals["seconds"] = round(time.perf_counter() - started, 3)
    totals["eventsPerSecond"] = round(
        (totals["accepted"] + totals["duplicates"]) / max(totals["seconds"], 1e-9))
    emit(totals, as_json, _render)
    if totals["rejected"]:
        raise typer.Exit(EXIT_BAD_INPUT)


def _add(totals: dict[str, Any], path: str, offset: int, result: dict[str, Any]) -> None:
    totals["accepted"] += result["accepted"]
    totals["duplicates"] += result["duplicates"]
    for r in result.get("rejected", []):
        totals["rejected"] += 1
        if len(totals["errors"]) < 100:
            totals["errors"].append({"file": path, "index": offset + r["index"],
                                     "message": r["error"].get("message", "")})


def _render(totals: dict[str, Any]) -> None:
    out = console()
    out.print(f"accepted {totals['accepted']:,}  duplicates {totals['duplicates']:,}  "
              f"rejected {totals['rejected']:,}  in {totals['seconds']}s "
              f"({totals['eventsPerSecond']:,}/s)")
    for err in totals["errors"][:20]:
        message(f"  rejected {err['file']} event #{err['index']}: {err['message']}")


class _Sink(Protocol):
    def send(self, batch: list[Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class _StreamSink:
    """One WebSocket connection per batch run; acks arrive once events are durable."""

    def __init__(self, server: str | None, strict: bool) -> None:
        from rta.cli.output import load_settings

        settings = load_settings({"server": server})
        self.url = settings.server
        self.token = settings.token or None
        self.partial = not strict

    def send(self, batch: list[Any]) -> dict[str, Any]:
        import trio

        from rta.cli.output import unreachable
        from rta.client.ws import stream_ingest

        try:
            result: dict[str, Any] = trio.run(partial(
                stream_ingest, self.url, self.token, [batch], partial=self.partial))
        except OSError as exc:
            unreachable(self.url, exc)
        except Exception as exc:
            if type(exc).__name__ in ("HandshakeError", "ConnectionRejected",
                                      "ConnectionTimeout", "ConnectionClosed"):
                unreachable(self.url, exc)
            raise
        rejected = [{"index": e.get("index", 0), "error": {"message": e.get("message", "")}}
                    for e in result.get("errors", [])]
        return {"accepted": result["accepted"], "duplicates": result["duplicates"],
                "rejected": rejected}

    def close(self) -> None:
        pass


class _RemoteSink:
    def __init__(self, server: str | None, strict: bool) -> None:
        self.client = get_client(server)
        self.partial = not strict

    def send(self, batch: list[Any]) -> dict[str, Any]:
        result: dict[str, Any] = call(lambda: self.client.ingest(batch, partial=self.partial))
        return result

    def close(self) -> None:
        self.client.close()


class _LocalSink:
    """Validates and appends straight into a ColumnStore (the daemon must not be running)."""

    def __init__(self, data_dir: str | None) -> None:
        from rta.cli.output import load_settings
        from rta.core.errors import StoreLockedError
        from rta.core.events import EventValidator
        from rta.core.store import ColumnStore, StoreConfig

        settings = load_settings({"data_dir": data_dir})
        config = settings.engine_config()
        try:
            self.store = ColumnStore(config.data_dir, StoreConfig(
                max_head_events=config.max_events, retention_ms=config.retention_ms,
                dedup_window_ms=config.dedup_window_ms, fsync=config.fsync))
        except StoreLockedError as exc:
            fail(f"{exc.message}; stop the daemon or ingest through it (drop --local)",
                 EXIT_ERROR)
        self.limits = replace(config.limits, past_horizon_ms=config.retention_ms)
        self.validator = EventValidator(self.limits)
        message(f"loading into {config.data_dir}")

    def bulk_ndjson(self, path: str, progress: Callable[[int], None]) -> dict[str, Any]:
        """The columnar loader: pyarrow parses, checks run per column, segments are written
        directly (all-or-nothing per flush; see rta.core.store.bulk)."""
        from rta.client.readers import ReadError
        from rta.core.store.bulk import BulkReadError, bulk_load_ndjson

        try:
            result = bulk_load_ndjson(self.store, path, self.limits, progress=progress)
        except BulkReadError as exc:
            raise ReadError(str(exc)) from None
        return {"accepted": result.accepted, "duplicates": result.duplicates,
                "rejected": result.rejected}

    def send(self, batch: list[Any]) -> dict[str, Any]:
        events, rejected = self.validator.validate_batch(batch)
        result = self.store.append(events)
        return {"accepted": result.accepted, "duplicates": result.duplicates,
                "rejected": rejected}

    def close(self) -> None:
        self.store.close()


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
