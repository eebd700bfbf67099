"""The `rta` command: runs the daemon and is its client.

Importing this module must stay cheap (`rta --help` and TAB completion run it): command
modules import numpy, pyarrow, rich, httpx, trio and the server stack inside the commands.
Help is Click's plain formatter (`rich_markup_mode=None`), so `--help` never loads rich.
"""

from __future__ import annotations

import importlib
import sys

import typer

from rta import __version__

app = typer.Typer(
    name="rta",
    help="Self-hosted real-time product analytics: run the server, ingest, query, watch.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Each module exposes `register(app)`; one module per command group.
COMMAND_MODULES = (
    "rta.cli.serve",
    "rta.cli.ingest",
    "rta.cli.inspect",
    "rta.cli.query",
    "rta.cli.alerts",
    "rta.cli.silences",  # (adds to the alerts group)
    "rta.cli.reports",
    "rta.cli.live",
    "rta.cli.export",
    "rta.cli.dashboards",
    "rta.cli.dashboards_share",
    "rta.cli.annotations",
    "rta.cli.segments",
    "rta.cli.persons",
    "rta.cli.groups",
    "rta.cli.token",
    "rta.cli.config",
    "rta.cli.demo",
    "rta.cli.clickhouse",
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"rta {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """rta: real-time product analytics."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def run() -> None:
    """Entry point of the `rta` script and of `python -m rta` (same name in help and
    completion either way)."""
    app(prog_name="rta")
