"""`rta clickhouse init|migrate|status`: set up ClickHouse for rta, move a store into it.

These talk to ClickHouse directly (not to a running daemon): `init` creates or migrates the
schema (idempotent; `rta serve --backend clickhouse` does the same at start), `migrate`
copies an embedded store (stop its daemon first: the store is locked while one runs),
`status` shows the schema version and what the events table holds.
"""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.output import (
    EXIT_ERROR,
    EXIT_UNREACHABLE,
    JsonOption,
    console,
    emit,
    fail,
    message,
)

clickhouse_app = typer.Typer(help="Set up ClickHouse for rta and move data into it.",
                             no_args_is_help=True)

UrlOption = typer.Option(None, "--clickhouse-url", envvar="RTA_CLICKHOUSE_URL",
                         help="http(s)://user:pass@host:8123/db or chdb:///path/to/dir.")
ClusterOption = typer.Option(None, "--clickhouse-cluster", envvar="RTA_CLICKHOUSE_CLUSTER",
                             help="Cluster name for ON CLUSTER DDL and a Distributed table.")


def _connect(url: str | None) -> Any:
    from rta.core.clickhouse.connection import ClickHouse
    from rta.core.errors import BackendUnavailable

    if not url:
        fail("no ClickHouse given: --clickhouse-url or RTA_CLICKHOUSE_URL", 2)
    try:
        return ClickHouse.open(url)
    except ValueError as exc:
        fail(f"clickhouse_url {exc}", 2)
    except BackendUnavailable as exc:
        fail(exc.message, EXIT_UNREACHABLE)


def _schema(ch: Any, cluster: str | None, retention_days: float) -> int:
    from rta.core.clickhouse.schema import ensure_schema
    from rta.core.errors import BackendUnavailable

    try:
        return int(ensure_schema(ch, cluster, retention_days, progress=message))
    except BackendUnavailable as exc:
        fail(exc.message, EXIT_ERROR)


@clickhouse_app.command("init")
def init(url: str = UrlOption, cluster: str = ClusterOption,
         retention_days: float = typer.Option(0, "--retention-days",
                                              help="TTL: drop events older than this (0 keeps "
                                                   "them)."),
         as_json: bool = JsonOption) -> None:
    """Create or migrate rta's tables (idempotent)."""
    ch = _connect(url)
    version = _schema(ch, cluster, retention_days)
    emit({"target": ch.target.display, "database": ch.database, "schemaVersion": version},
         as_json, lambda d: message(f"{d['target']}: rta schema version {d['schemaVersion']}"))


@clickhouse_app.command("status")
def status(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Schema version and what the events table holds."""
    from rta.core.clickhouse.schema import schema_version

    ch = _connect(url)
    version = schema_version(ch)
    out: dict[str, Any] = {"target": ch.target.display, "database": ch.database,
                           "schemaVersion": version}
    if version:
        (n, lo, hi, users), = ch.rows(f"SELECT count(), min(ts), max(ts), uniqExact(user) "
                                      f"FROM `{ch.database}`.events")
        out.update(events=int(n), users=int(users),
                   firstTimestamp=int(lo) if n else None, lastTimestamp=int(hi) if n else None)

    def render(d: dict[str, Any]) -> None:
        for key, value in d.items():
            console().print(f"{key:>15}  {value}", highlight=False)
    emit(out, as_json, render)


@clickhouse_app.command("migrate")
def migrate(data_dir: str = typer.Option(..., "--data-dir", "-d",
                                         help="The embedded store to copy (its daemon "
                                              "stopped)."),
            url: str = UrlOption, cluster: str = ClusterOption,
            as_json: bool = JsonOption) -> None:
    """Copy an embedded store into ClickHouse, then verify events per day and type."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from rta.core.clickhouse_migrate import migrate as run_migration
    from rta.core.errors import RtaError

    ch = _connect(url)
    _schema(ch, cluster, 0)
    progress = Progress(BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console(stderr=True), transient=True)
    try:
        with progress:
            task = progress.add_task("migrate", total=None)
            report = run_migration(data_dir, ch, lambda done, total: progress.update(
                task, completed=done, total=total))
    except RtaError as exc:  # a locked store (its daemon runs), ClickHouse failing midway
        fail(exc.message, EXIT_ERROR)
    out = {"events": report.events, "blocks": report.blocks, "verified": not report.mismatches,
           "mismatches": [{"day": d, "type": t, "store": a, "clickhouse": b}
                          for d, t, a, b in report.mismatches]}
    emit(out, as_json, lambda d: message(
        f"copied {d['events']:,} events; counts per day and type "
        + ("match" if d["verified"] else f"differ on {len(d['mismatches'])} (day, type)s")))
    if report.mismatches:
        raise typer.Exit(EXIT_ERROR)


def register(app: typer.Typer) -> None:
    app.add_typer(clickhouse_app, name="clickhouse")
