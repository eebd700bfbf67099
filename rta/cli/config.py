"""`rta config show | path | set`: effective settings and where each came from."""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.output import EXIT_USAGE, JsonOption, console, emit, fail, message, print_json

config_app = typer.Typer(help="Show and change rta's configuration.", no_args_is_help=True)


@config_app.command("show")
def show(as_json: bool = JsonOption) -> None:
    """Every setting with its value and source (flag, env, file or default)."""
    from rta.cli.output import load_settings
    from rta.settings import SECRET_KEYS

    settings = load_settings()
    data = {k: {"value": v, "source": settings.sources[k]} for k, v in settings.values.items()}
    for secret in SECRET_KEYS:
        if secret in data and data[secret]["value"]:
            data[secret]["value"] = "***"
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
def path(as_json: bool = JsonOption) -> None:
    """The config file's path (it need not exist yet)."""
    from rta.settings import config_path

    where = str(config_path())
    if as_json:
        print_json({"path": where})
    else:
        typer.echo(where)


@config_app.command("set")
def set_value(key: str = typer.Argument(..., help="Setting name (see `rta config show`)."),
              value: str = typer.Argument(..., help="New value."),
              as_json: bool = JsonOption) -> None:
    """Set a value in the config file."""
    from rta.settings import SPEC, convert, write_config_value

    name = key.replace("-", "_")
    if name not in SPEC:
        fail(f"unknown setting {key!r}; known: {', '.join(SPEC)}", EXIT_USAGE)
    try:
        written = write_config_value(name, value)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if as_json:
        print_json({"key": name, "value": convert(name, value), "path": str(written)})
    else:
        message(f"set {name} in {written}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
