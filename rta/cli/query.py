"""`rta query ...`: one Typer group; analytics and behavioural commands register into it."""

from __future__ import annotations

import importlib

import typer

query_app = typer.Typer(help="Run analytics queries against the daemon.", no_args_is_help=True)
QUERY_MODULES = ("rta.cli.query_analytics", "rta.cli.query_behaviour", "rta.cli.query_paths",
                 "rta.cli.query_periods", "rta.cli.query_web")


def register(app: typer.Typer) -> None:
    for name in QUERY_MODULES:
        importlib.import_module(name).register(query_app)
    app.add_typer(query_app, name="query")
