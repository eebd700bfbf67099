"""`rta ingest FILE...`: send events to the daemon, or bulk-load a store with --local."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Protocol

import typer

from rta.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    JsonOption,
    ServerOption,
    console,
    emit,
    fail,
    get_client,
    message,
    print_json,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from rta.client.readers import Batch, Source

MAX_ERRORS = 100  # rejected events listed in the result (all are counted)
SHOWN_ERRORS = 20  # of those, printed for humans


def ingest(
    files: list[str] = typer.Argument(..., help="Files to ingest (NDJSON, JSON array, CSV, "
                                      "Parquet; gzip accepted); - reads stdin."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help="ndjson, json, csv or parquet [default: from the suffix; "
                                 "stdin is sniffed, but CSV there needs --format csv]."),
    batch_size: int = typer.Option(5000, "--batch-size", min=1, help="Events per request."),
    local: bool = typer.Option(False, "--local", help="Write straight into a data directory "
                               "with no daemon (refused while a daemon holds it)."),
    data_dir: str = typer.Option(None, "--data-dir", "-d", help="Data directory for --local."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first batch holding an "
                                "invalid event and store none of that batch; with --local, "
                                "store nothing unless every event is valid (default: store "
                                "the valid ones)."),
    stream: bool = typer.Option(False, "--stream", help="Send over one WebSocket connection "
                                "(acknowledged once durable) instead of HTTP requests."),
    wire: str = typer.Option("arrow", "--wire", hidden=True, help="arrow or json: how "
                             "batches travel to a daemon (json: as an older daemon takes "
                             "them; for benchmarks)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Ingest events from files; prints accepted, duplicates and rejected counts.

    To a daemon, NDJSON and Parquet are read by pyarrow and sent as Arrow batches over three
    concurrent requests (one with --strict); a daemon that predates Arrow batches gets JSON.

    Stdin is sniffed (gzip, Parquet, JSON array, NDJSON; CSV needs --format csv). An input
    with no events is a warning, not an error (exit 0). Positions are 1-based, as in
    `line 2 (event 2)`; the --json `errors` keep the API's 0-based `index` and add `line`.

    If ingest stops early (invalid JSON, a --strict refusal, the daemon gone), the events
    accepted so far stay stored and the counts go to stderr; --json then prints the result
    with an `error` key, once any events were sent.
    """
    from rta.client.readers import FORMATS, ReadError

    if fmt is not None and fmt not in FORMATS:
        fail(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", EXIT_USAGE)
    if stream and local:
        fail("--stream sends to a daemon; it cannot be combined with --local", EXIT_USAGE)
    run = _Run(fmt, batch_size, as_json)
    sink: _Sink = _LocalSink(data_dir) if local else _StreamSink(server, strict) if stream \
        else _RemoteSink(server, strict, arrow=wire != "json")
    stop: _Stop | None = None
    try:
        with run.progress, run.spooled_stdin(files if local and strict else []):
            if isinstance(sink, _LocalSink) and strict:
                run.check_all(files, sink)
            for path in files:
                run.ingest_file(path, sink)
    except _Stop as exc:
        stop = exc
    except ReadError as exc:
        stop = _Stop(str(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:  # say what was stored before Ctrl-C, not just "Aborted!"
        stop = _Stop("interrupted (the batch being sent then may be stored too)", EXIT_ERROR)
    finally:
        sink.close()
    run.finish(stop)


class _Stop(Exception):
    """Ends an ingest early: a message, the exit code, and for a --strict refusal the
    invalid events (entries like those of `errors`) that caused it."""

    def __init__(self, text: str, code: int, rejected: list[dict[str, Any]] | None = None,
                 count: int = 0) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.rejected = rejected or []
        self.count = count or len(self.rejected)


class _Unsupported(Exception):
    """The daemon does not take Arrow bodies (415): send JSON."""


class _Refused(Exception):
    """A sink's --strict refusal: `rejected` holds `{index, error: {message}}` relative to
    the batch sent, like a partial answer's `rejected`; `count` all the invalid events
    (the WebSocket answer lists only the first few)."""

    def __init__(self, rejected: list[dict[str, Any]], count: int = 0) -> None:
        super().__init__("refused")
        self.rejected = rejected
        self.count = max(count, len(rejected))


def _position(err: dict[str, Any]) -> str:
    """`line 7 (event 5)` for humans: both 1-based (the JSON `index` is 0-based)."""
    event = f"event {err['index'] + 1:,}"
    return f"line {err['line']:,} ({event})" if err.get("line") else event


def _say(text: str) -> None:
    """A message on stderr, printed as is (no markup: file names and messages may hold
    brackets) and not wrapped, so each one stays on one line for grep."""
    console(stderr=True).print(text, markup=False, highlight=False, soft_wrap=True)


def _strict_text(count: int, of: int, where: str, lost: str) -> str:
    return (f"{count:,} of {of:,} events {where} invalid, so {lost} stored (drop --strict "
            "to store the valid ones)")


class _Run:
    """Totals and progress across the files of one `rta ingest`."""

    def __init__(self, fmt: str | None, batch_size: int, as_json: bool) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.fmt = fmt
        self.batch_size = batch_size
        self.as_json = as_json
        self.totals: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": 0,
                                       "errors": []}
        self.started = self.rate_started = time.perf_counter()
        self.events = 0  # events read from every input so far (for the rate)
        self.spool: IO[bytes] | None = None
        # The bar and percentage follow the bytes read when the input's size is known (a
        # file, or stdin redirected from one); the count is of events sent.
        self.progress: Progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[events]:,} events  {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(), console=console(stderr=True), transient=True,
            disable=as_json or not console(stderr=True).is_terminal)

    # -- inputs ----------------------------------------------------------------------------

    @contextmanager
    def spooled_stdin(self, files: list[str]) -> Iterator[None]:
        """Keep a copy of stdin when it must be read twice (--local --strict checks every
        event before storing any)."""
        if "-" not in files:
            yield
            return
        import shutil
        import sys
        import tempfile

        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            self.spool = spool
            try:
                yield
            finally:
                self.spool = None

    def open(self, path: str) -> Source:
        from rta.client.readers import Source

        if path == "-" and self.spool is not None:
            self.spool.seek(0)
            return Source("-", self.fmt, stream=self.spool)
        return Source(path, self.fmt)

    def task(self, source: Source, verb: str = "") -> TaskID:
        from rich.markup import escape

        return self.progress.add_task(escape(verb + source.name), total=source.total,
                                      events=0, rate=0.0)

    def show(self, task: TaskID, events: int, done: int, total: int | None) -> None:
        rate = self.events / max(time.perf_counter() - self.rate_started, 1e-9)
        self.progress.update(task, completed=done, total=total, events=events, rate=rate)

    def ingest_file(self, path: str, sink: _Sink) -> None:
        with self.open(path) as source:
            task = self.task(source)
            if isinstance(sink, _LocalSink) and source.fmt == "ndjson" and path != "-" \
                    and source.compressed == path.endswith(".gz"):
                source.close()  # the columnar loader reads the file itself
                count = self._bulk(path, source, sink, task)
            elif isinstance(sink, _RemoteSink):
                count = self._remote(source, sink, task)
            else:
                count = self._batches(source, sink, task)
        if count == 0:
            _say(f"warning: no events in {source.name}")

    def _batches(self, source: Source, sink: _Sink, task: TaskID) -> int:
        offset = 0
        for batch in source.batches(self.batch_size):
            try:
                result = sink.send(batch.events)
            except _Refused as exc:
                rejected = [self._entry(source.name, offset, r, batch) for r in exc.rejected]
                raise _Stop(_strict_text(exc.count, len(batch.events),
                                         f"in a batch of {source.name} are",
                                         "that batch was not"), EXIT_BAD_INPUT, rejected,
                            exc.count) from None
            self.add(source.name, offset, result, batch)
            offset += len(batch.events)
            self.events += len(batch.events)
            self.show(task, offset, source.done, source.total)
        return offset

    def _remote(self, source: Source, sink: _RemoteSink, task: TaskID) -> int:
        """Batches read by pyarrow (`Source.arrow_batches`) sent over `sink.connections`
        concurrent requests; answers are taken in file order, so positions, totals and a
        --strict stop (one connection then) are as with one request at a time."""
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        pending: deque[tuple[Future[dict[str, Any]], Batch, int]] = deque()
        offset = 0

        def settle() -> None:
            future, batch, start = pending.popleft()
            try:
                result = future.result()
            except _Refused as exc:
                rejected = [self._entry(source.name, start, r, batch) for r in exc.rejected]
                raise _Stop(_strict_text(exc.count, len(batch), f"in a batch of {source.name} "
                                         "are", "that batch was not"), EXIT_BAD_INPUT,
                            rejected, exc.count) from None
            self.add(source.name, start, result, batch)
            self.events += len(batch)
            self.show(task, start + len(batch), source.done, source.total)

        with ThreadPoolExecutor(sink.connections) as pool:
            try:
                read = source.arrow_batches if sink.arrow else source.batches
                for batch in read(self.batch_size):
                    pending.append((pool.submit(sink.send_batch, batch), batch, offset))
                    offset += len(batch)
                    while len(pending) >= sink.connections:
                        settle()
                while pending:
                    settle()
            finally:  # (an early stop: what was sent is stored, and counted)
                while pending:
                    try:
                        settle()
                    except (_Stop, _Refused):
                        pass
        return offset

    def _bulk(self, path: str, source: Source, sink: _LocalSink, task: TaskID) -> int:
        from rta.core.embedded.store.bulk import NDJSON_CHUNK_BYTES

        calls = [0, 0]  # progress callbacks, events read
        total = None if source.compressed else source.total

        def show(events: int) -> None:
            calls[0] += 1
            self.events += events - calls[1]
            calls[1] = events
            # The loader reads the file in chunks of NDJSON_CHUNK_BYTES: bytes done, nearly.
            done = min(calls[0] * NDJSON_CHUNK_BYTES, total) if total else 0
            self.show(task, events, done, total)

        result = sink.bulk_ndjson(path, show)
        first = sorted(r["index"] for r in result["rejected"][:MAX_ERRORS])
        lines = _ndjson_lines(path, first) if first else {}
        for r in result["rejected"]:
            r["line"] = lines.get(r["index"])
        self.add(source.name, 0, result, None)
        return calls[1]

    def check_all(self, files: list[str], sink: _LocalSink) -> None:
        """--local --strict: validate every event of every input first; one invalid event
        and nothing is stored (a store has no rollback, so this is a pass of its own)."""
        rejected: list[dict[str, Any]] = []
        count = events = 0
        for path in files:
            with self.open(path) as source:
                task = self.task(source, "checking ")
                offset = 0
                for batch in source.batches(self.batch_size):
                    self.events += len(batch.events)
                    _, bad = sink.validator.validate_batch(batch.events)
                    count += len(bad)
                    rejected += [self._entry(source.name, offset, r, batch)
                                 for r in bad[:MAX_ERRORS - len(rejected)]]
                    offset += len(batch.events)
                    self.show(task, offset, source.done, source.total)
                events += offset
                self.progress.remove_task(task)
        if count:
            raise _Stop(_strict_text(count, events, "are", "nothing was"), EXIT_BAD_INPUT,
                        rejected, count)
        self.events, self.rate_started = 0, time.perf_counter()  # the load's own rate

    # -- results ---------------------------------------------------------------------------

    @staticmethod
    def _entry(name: str, offset: int, r: dict[str, Any], batch: Batch | None
               ) -> dict[str, Any]:
        """One `errors` entry: the event's 0-based index in its file, and its line."""
        entry: dict[str, Any] = {"file": name, "index": offset + r["index"]}
        line = r.get("line")
        if batch is not None and batch.lines is not None and 0 <= r["index"] < len(batch.lines):
            line = batch.lines[r["index"]]
        if line:
            entry["line"] = line
        entry["message"] = r["error"].get("message", "")
        return entry

    def add(self, name: str, offset: int, result: dict[str, Any], batch: Batch | None) -> None:
        totals = self.totals
        totals["accepted"] += result["accepted"]
        totals["duplicates"] += result["duplicates"]
        for r in result.get("rejected", []):
            totals["rejected"] += 1
            if len(totals["errors"]) < MAX_ERRORS:
                totals["errors"].append(self._entry(name, offset, r, batch))

    def finish(self, stop: _Stop | None) -> None:
        totals = self.totals
        totals["seconds"] = round(time.perf_counter() - self.started, 3)
        totals["eventsPerSecond"] = round(
            (totals["accepted"] + totals["duplicates"]) / max(totals["seconds"], 1e-9))
        if stop is None:
            emit(totals, self.as_json, _render)
            if totals["rejected"]:
                raise typer.Exit(EXIT_BAD_INPUT)
            return
        console(stderr=True).print("[bold red]error:[/] ", end="")
        _say(stop.text)
        shown = stop.rejected[:10]
        for err in shown:
            _say(f"  - {err['file']} {_position(err)}: {err['message']}")
        if stop.count > len(shown):
            _say(f"  ... and {stop.count - len(shown):,} more")
        _print_rejected(totals["errors"])
        if totals["accepted"] + totals["duplicates"] + totals["rejected"]:
            _say(f"before the error: accepted {totals['accepted']:,} (stored)  duplicates "
                 f"{totals['duplicates']:,}  rejected {totals['rejected']:,}")
        # The refused events count as rejected in the result (with their positions).
        totals["rejected"] += stop.count
        totals["errors"] += stop.rejected[:MAX_ERRORS - len(totals["errors"])]
        if self.as_json and totals["accepted"] + totals["duplicates"] + totals["rejected"]:
            totals["error"] = stop.text
            print_json(totals)
        raise typer.Exit(stop.code)


def _ndjson_lines(path: str, indexes: list[int]) -> dict[int, int]:
    """1-based line numbers of the given events (0-based, blank lines not counted) of an
    NDJSON file, read the way the columnar loader splits it."""
    import gzip

    wanted = set(indexes)
    last = max(indexes)
    out: dict[int, int] = {}
    event = 0
    f: Any = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if event in wanted:
                out[event] = lineno
            event += 1
            if event > last:
                break
    return out


def _print_rejected(errors: list[dict[str, Any]]) -> None:
    for err in errors[:SHOWN_ERRORS]:
        _say(f"  rejected {err['file']} {_position(err)}: {err['message']}")


def _render(totals: dict[str, Any]) -> None:
    out = console()
    out.print(f"accepted {totals['accepted']:,}  duplicates {totals['duplicates']:,}  "
              f"rejected {totals['rejected']:,}  in {totals['seconds']}s "
              f"({totals['eventsPerSecond']:,}/s)")
    _print_rejected(totals["errors"])


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

        from rta.cli.output import live_failure
        from rta.client.ws import stream_ingest

        try:
            result: dict[str, Any] = trio.run(partial(
                stream_ingest, self.url, self.token, [batch], partial=self.partial))
        except Exception as exc:  # errors from inside trio's nurseries come grouped
            failure = live_failure(exc, self.url)
            if failure is None:
                raise
            raise _Stop(*failure) from None
        rejected = []
        for e in result.get("errors", []):
            if e.get("index") is not None:  # one event dropped (partial)
                rejected.append({"index": e["index"], "error": {"message": e.get("message")}})
            elif e.get("code") == "invalid_batch":  # --strict: the whole message refused
                raise _Refused([{"index": d.get("index", 0), "error": d}
                                for d in e.get("details", []) if "index" in d],
                               e.get("invalid", 0))
            else:
                raise _Stop(str(e.get("message", e)), EXIT_BAD_INPUT)
        return {"accepted": result["accepted"], "duplicates": result["duplicates"],
                "rejected": rejected}

    def close(self) -> None:
        pass


class _RemoteSink:
    """HTTP batches: Arrow streams over `connections` concurrent requests (one with
    --strict, which stops at the first refused batch), JSON for batches read as objects
    and for a daemon that predates Arrow bodies (it answers 415 once; JSON from then on)."""

    CONNECTIONS = 3

    def __init__(self, server: str | None, strict: bool, arrow: bool = True) -> None:
        self.client = get_client(server)
        self.partial = not strict
        self.connections = 1 if strict else self.CONNECTIONS
        self.arrow = arrow

    def send_batch(self, batch: Batch) -> dict[str, Any]:
        from rta.client.client import arrow_stream

        if batch.table is not None and self.arrow:
            try:
                return self._call(self.client.ingest_arrow, arrow_stream(batch.table), True)
            except _Unsupported:
                self.arrow = False
        return self.send(batch.objects())

    def send(self, batch: list[Any]) -> dict[str, Any]:
        return self._call(self.client.ingest, batch)

    def _call(self, method: Callable[..., dict[str, Any]], body: Any,
              arrow: bool = False) -> dict[str, Any]:
        from rta.client.client import ApiError, DaemonUnreachable

        try:
            result: dict[str, Any] = method(body, partial=self.partial)
        except DaemonUnreachable as exc:
            raise _Stop(str(exc), EXIT_UNREACHABLE) from None
        except ApiError as exc:
            if exc.status == 415 and arrow:
                raise _Unsupported() from None
            if exc.code == "invalid_batch":  # --strict; the server's hint is for API users
                raise _Refused([{"index": d.get("index", 0), "error": d}
                                for d in exc.details if isinstance(d, dict)]) from None
            text = exc.message
            if exc.code == "batch_too_large":
                text += "; give a smaller --batch-size"
            raise _Stop(text, EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_ERROR
                        ) from None
        return result

    def close(self) -> None:
        self.client.close()


class _LocalSink:
    """Validates and appends straight into a ColumnStore (the daemon must not be running)."""

    def __init__(self, data_dir: str | None) -> None:
        from rta.cli.output import load_settings
        from rta.core.embedded.store import ColumnStore, StoreConfig
        from rta.core.errors import RtaError, StoreLockedError
        from rta.core.events import EventValidator

        settings = load_settings({"data_dir": data_dir})
        config = settings.engine_config()
        self.data_dir = config.data_dir
        try:
            self.store = ColumnStore(config.data_dir, StoreConfig(
                max_head_events=config.max_events, retention_ms=config.retention_ms,
                dedup_window_ms=config.dedup_window_ms, fsync=config.fsync))
        except StoreLockedError as exc:
            fail(f"{exc.message}; stop the daemon or ingest through it (drop --local)",
                 EXIT_ERROR)
        except OSError as exc:  # missing parent, read-only, a file in the way, /proc...
            import os

            reason = "it is not a directory" if isinstance(exc, FileExistsError | \
                NotADirectoryError) else exc.strerror or str(exc)
            where = str(exc.filename or config.data_dir)
            inside = os.path.abspath(where) != os.path.abspath(str(config.data_dir))
            fail(f"cannot use data directory {config.data_dir}: {reason}"
                 + (f" ({where})" if inside else ""), EXIT_ERROR)
        except RtaError as exc:
            fail(f"cannot open data directory {config.data_dir}: {exc.message}", EXIT_ERROR)
        self.limits = replace(config.limits, past_horizon_ms=config.retention_ms)
        self.validator = EventValidator(self.limits)
        message(f"loading into {config.data_dir}")

    def _failed(self, exc: Exception) -> _Stop:
        text = getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)
        return _Stop(f"cannot write to {self.data_dir}: {text}", EXIT_ERROR)

    def bulk_ndjson(self, path: str, progress: Callable[[int], None]) -> dict[str, Any]:
        """The columnar loader: pyarrow parses, checks run per column, segments are written
        directly (all-or-nothing per flush; see rta.core.embedded.store.bulk)."""
        import gzip
        import os
        import zlib

        from rta.client.readers import ReadError
        from rta.core.embedded.store.bulk import BulkReadError, bulk_load_ndjson
        from rta.core.errors import RtaError

        try:
            result = bulk_load_ndjson(self.store, path, self.limits, progress=progress)
        except BulkReadError as exc:
            raise ReadError(str(exc)) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ReadError(f"{path}: damaged gzip data: {exc}") from None
        except OSError as exc:
            if exc.filename is not None and os.path.abspath(exc.filename) == os.path.abspath(path):
                raise ReadError(f"cannot read {path}: {exc.strerror or exc}") from None
            raise self._failed(exc) from None
        except RtaError as exc:
            raise self._failed(exc) from None
        return {"accepted": result.accepted, "duplicates": result.duplicates,
                "rejected": result.rejected}

    def send(self, batch: list[Any]) -> dict[str, Any]:
        from rta.core.errors import RtaError

        events, rejected = self.validator.validate_batch(batch)
        try:
            result = self.store.append(events)
        except (OSError, RtaError) as exc:
            raise self._failed(exc) from None
        return {"accepted": result.accepted, "duplicates": result.duplicates,
                "rejected": rejected}

    def close(self) -> None:
        self.store.close()


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
