"""`rta config show | path | set`: effective settings and where each came from."""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.output import EXIT_BAD_INPUT, JsonOption, console, emit, fail

config_app = typer.Typer(help="Show and change rta's configuration.", no_args_is_help=True)


@config_app.command("show")
def show(as_json: bool = JsonOption) -> None:
    """Every setting with its value and source (flag, env, file or default)."""
    from rta.settings import load_settings

    settings = load_settings()
    data = {k: {"value": v, "source": settings.sources[k]} for k, v in settings.values.items()}
    if "token" in data and data["token"]["value"]:
        data["token"]["value"] = "***"
    emit(data, as_json, _render)


def _render(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table()
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_column("source")
    for k, v in data.items():
        table.add_row(k, str(v["value"]), v["source"])
    console().print(table)


@config_app.command("path")
def path() -> None:
    """The config file's path."""
    from rta.settings import config_path

    typer.echo(str(config_path()))


@config_app.command("set")
def set_value(key: str = typer.Argument(..., help="Setting name (see `rta config show`)."),
              value: str = typer.Argument(..., help="New value.")) -> None:
    """Set a value in the config file."""
    from rta.settings import SPEC, write_config_value

    if key.replace("-", "_") not in SPEC:
        fail(f"unknown setting {key!r}; known: {', '.join(SPEC)}", EXIT_BAD_INPUT)
    try:
        written = write_config_value(key.replace("-", "_"), value)
    except ValueError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    console(stderr=True).print(f"set {key} in {written}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
