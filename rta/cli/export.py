"""`rta export -o FILE`: stream an export from the daemon into a file (or stdout)."""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

import typer

from rta.cli.output import (
    EXIT_ERROR,
    EXIT_USAGE,
    JsonOption,
    ServerOption,
    call,
    console,
    emit,
    fail,
    get_client,
    message,
)

FORMATS = ("csv", "json", "ndjson", "parquet", "xlsx")


def export(
    output: str = typer.Option(..., "--output", "-o",
                               help="File to write (format from its suffix: .csv, .json, "
                                    ".ndjson/.jsonl, .parquet, .xlsx); - writes to stdout."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help="csv, json, ndjson, parquet or xlsx [default: from the "
                                 "suffix; csv for stdout]."),
    event_type: list[str] = typer.Option(None, "--type", "-t", help="Event type (repeatable)."),
    user: str = typer.Option(None, "--user", "-u", help="Only this user id."),
    since: str = typer.Option(None, "--since", help="Start: ms, ISO-8601, or 15m/24h/7d."),
    until: str = typer.Option(None, "--until", help="End: ms or ISO-8601."),
    where: list[str] = typer.Option(None, "--where", "-w",
                                    help="Property filter: 'page=/x', 'duration>1000', "
                                         "'page~prod', 'email?' (repeatable, all must hold)."),
    segment: str = typer.Option(None, "--segment", help="Only users of this saved segment."),
    fields: str = typer.Option(None, "--fields",
                               help="Comma-separated columns, e.g. id,type,timestamp,"
                                    "properties.page [default: all, properties flattened]."),
    limit: int = typer.Option(None, "--limit", "-n", min=1, help="At most this many events "
                              "(the oldest first)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Export events, oldest first, streamed from the daemon (constant memory both ends)."""
    from rta.core.export import format_for_path
    from rta.core.queries.filters import parse_cli_where, predicate_to_json

    to_stdout = output == "-"
    if fmt is None:
        fmt = "csv" if to_stdout else format_for_path(output)
        if fmt is None:
            fail(f"cannot tell the format from {output!r}; pass --format "
                 f"({', '.join(FORMATS)})", EXIT_USAGE)
    fmt = fmt.lower()
    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", EXIT_USAGE)
    if to_stdout and as_json:
        fail("--json prints a summary to stdout, which -o - already uses for the data",
             EXIT_USAGE)
    flt: dict[str, Any] = {}
    if event_type:
        flt["type"] = list(event_type)
    if user:
        flt["userId"] = user
    if since:
        flt["startTime"] = since
    if until:
        flt["endTime"] = until
    if segment:
        flt["segment"] = segment
    if where:
        try:
            flt["where"] = [predicate_to_json(parse_cli_where(w)) for w in where]
        except Exception as exc:  # ValidationError: a where we cannot read
            fail(getattr(exc, "message", str(exc)), EXIT_USAGE)
    body: dict[str, Any] = {"format": fmt, "filter": flt}
    if fields:
        body["fields"] = [f.strip() for f in fields.split(",") if f.strip()]
    if limit is not None:
        body["limit"] = limit

    started = time.perf_counter()
    with get_client(server) as client:
        summary = call(lambda: _download(client, body, output, quiet or as_json))
    summary.update(format=fmt, output=output,
                   seconds=round(time.perf_counter() - started, 3))
    emit(summary, as_json, _render)


def _download(client: Any, body: dict[str, Any], output: str, quiet: bool) -> dict[str, Any]:
    """Stream the response into `output` (via a .part file renamed at the end)."""
    from rich.progress import (
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    to_stdout = output == "-"
    written = 0
    with client.stream("POST", "/export", json_body=body) as response:
        rows = int(response.headers.get("X-Export-Rows") or 0)
        tmp = None if to_stdout else output + ".part"
        try:
            out: IO[bytes] = sys.stdout.buffer if tmp is None else open(tmp, "wb")  # noqa: SIM115
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_ERROR)
        progress = Progress(SpinnerColumn(), TextColumn(f"[bold]exporting {rows:,} events"),
                            DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                            console=console(stderr=True), transient=True, disable=quiet)
        try:
            with progress:
                task = progress.add_task("export", total=None)
                for data in response.iter_bytes():
                    out.write(data)
                    written += len(data)
                    progress.update(task, advance=len(data))
            out.flush()
        except BaseException:
            if tmp is not None:
                out.close()
                os.unlink(tmp)
            raise
        if tmp is not None:
            out.close()
            os.replace(tmp, output)
    return {"rows": rows, "bytes": written}


def _render(summary: dict[str, Any]) -> None:
    where = "stdout" if summary["output"] == "-" else summary["output"]
    message(f"exported {summary['rows']:,} events ({summary['bytes']:,} bytes, "
            f"{summary['format']}) to {where} in {summary['seconds']}s")


def register(app: typer.Typer) -> None:
    """Add `rta export` to `app`."""
    app.command("export")(export)
