"""`rta serve`: run the daemon."""

from __future__ import annotations

import sys
from typing import Any

import typer

from rta.cli.output import EXIT_ERROR, EXIT_OK, EXIT_UNREACHABLE, fail, leaf_exception


def serve(
    host: str = typer.Option(None, "--host", help="Address to bind [default: 127.0.0.1]."),
    port: int = typer.Option(None, "--port", "-p", help="Port to listen on [default: 8080]; "
                             "0 picks a free one."),
    data_dir: str = typer.Option(None, "--data-dir", "-d", envvar=None,
                                 help="Data directory [default: the user data dir]."),
    max_events: int = typer.Option(None, "--max-events", help="Events held in memory before "
                                   "sealing to disk [default: 100000]."),
    retention_days: float = typer.Option(None, "--retention-days",
                                         help="Drop data older than this (0 keeps all)."),
    demo: bool = typer.Option(False, "--demo", help="Load demo data (if the store is empty) "
                              "and keep a live trickle of demo events going."),
    log_format: str = typer.Option(None, "--log-format", help="text or json."),
    auth: str = typer.Option(None, "--auth", help="auto (required off loopback), on or off."),
    backend: str = typer.Option(None, "--backend", help="embedded (this machine's store) or "
                                "clickhouse (ship events to --clickhouse-url and query it) "
                                "[default: embedded]."),
    clickhouse_url: str = typer.Option(None, "--clickhouse-url", help="ClickHouse for "
                                       "--backend clickhouse: http(s)://user:pass@host:8123/db "
                                       "or chdb:///path/to/dir (in-process)."),
    clickhouse_cluster: str = typer.Option(None, "--clickhouse-cluster", help="Cluster name "
                                           "for ON CLUSTER DDL and a Distributed table."),
) -> None:
    """Start the rta daemon: REST API, WebSocket streams and the dashboard at /."""
    import trio

    from rta.core.errors import BackendUnavailable, StoreLockedError
    from rta.daemon import configure_logging, run_daemon
    from rta.settings import load_settings

    try:
        settings = load_settings({"host": host, "port": port, "data_dir": data_dir,
                                  "max_events": max_events, "retention_days": retention_days,
                                  "log_format": log_format, "auth": auth, "backend": backend,
                                  "clickhouse_url": clickhouse_url,
                                  "clickhouse_cluster": clickhouse_cluster})
    except ValueError as exc:
        fail(str(exc), 2)
    configure_logging(settings.log_format)
    config = settings.engine_config()
    startup = []
    if demo:
        from rta.cli.demo import demo_startup_hooks

        startup = demo_startup_hooks()

    def ready(binds: list[str], engine: Any) -> None:
        stats = engine.store.stats()
        from rta.server.security import is_loopback

        required = settings.auth == "on" or (settings.auth == "auto"
                                             and not is_loopback(settings.host))
        auth_line = "required (Bearer token)" if required else "optional (loopback)" \
            if settings.auth == "auto" else "off"
        lines = [f"rta {engine.version} listening on {', '.join(binds)}",
                 f"  dashboard: {binds[0]}/",
                 f"  data dir:  {config.data_dir} ({stats['events']} events)",
                 f"  auth:      {auth_line}"]
        if engine.clickhouse is not None:
            lines.append(f"  backend:   clickhouse at {engine.clickhouse.ch.target.display} "
                         f"(the local store keeps {config.clickhouse_local_days:g} days)")
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()

    try:
        options = settings.server_options()
        options.pop("host")
        trio.run(lambda: run_daemon(config, settings.host, settings.port, settings.compression,
                                    on_ready=ready, startup=startup, **options))
    except BaseException as exc:  # errors from inside trio's nurseries come grouped
        leaf = leaf_exception(exc)
        if isinstance(leaf, StoreLockedError):
            fail(leaf.message, EXIT_ERROR)
        if isinstance(leaf, BackendUnavailable):  # ClickHouse unreachable or misconfigured
            fail(leaf.message, EXIT_UNREACHABLE)
        if isinstance(leaf, OSError):  # address in use, unknown host, unwritable data dir
            where = f"{settings.host}:{settings.port}"
            fail(f"cannot start on {where}: {leaf.strerror or leaf}", EXIT_ERROR)
        if isinstance(leaf, KeyboardInterrupt):
            raise typer.Exit(EXIT_OK) from None
        raise


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
