"""`rta groups list|show`: B2B groups (companies, teams) and their properties (#18,
`docs/people.md`, "Groups").

`list TYPE` pages through a group type's groups (`GET /groups/{type}`); `show TYPE KEY`
prints one (`GET /groups/{type}/{key}`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer

from rta.cli.output import JsonOption, ServerOption, console, get_and_emit

groups_app = typer.Typer(help="Groups: companies, teams and other group types, and their "
                              "properties.", no_args_is_help=True)


def _when(ms: Any) -> str:
    from rta.core.queries.timeparse import iso
    return iso(ms) if isinstance(ms, int) else "-"


def _props(props: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in props.items())


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data.get('type')} groups ({data.get('total', 0)})",
                  title_justify="left")
    for name in ("key", "events", "first seen", "last seen", "properties"):
        table.add_column(name, overflow="fold")
    for g in data.get("groups", []):
        table.add_row(str(g["key"]), str(g["eventCount"]), _when(g.get("firstSeen")),
                      _when(g.get("lastSeen")), _props(g.get("properties", {})))
    console().print(table)
    if data.get("next"):
        console(stderr=True).print(f"more: --cursor {data['next']}")


def _render_group(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['type']} {data['key']}", title_justify="left",
                  show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("events", str(data.get("eventCount", 0)))
    table.add_row("first seen", _when(data.get("firstSeen")))
    table.add_row("last seen", _when(data.get("lastSeen")))
    for k, v in data.get("properties", {}).items():
        table.add_row(f"properties.{k}", str(v))
    console().print(table)


@groups_app.command("list")
def list_groups(
    group_type: str = typer.Argument(..., help="The group type, e.g. company."),
    search: str | None = typer.Option(None, "--search", "-s",
                                      help="Keep groups whose key or a text property "
                                           "contains this (any case)."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000,
                              help="Groups per page."),
    cursor: str | None = typer.Option(None, "--cursor", help="The next page, as the previous "
                                                            "one's `next`."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Groups of a type: key, event count, first and last seen, properties."""
    params: dict[str, Any] = {"limit": limit}
    if search:
        params["search"] = search
    if cursor:
        params["cursor"] = cursor
    get_and_emit(server, f"/groups/{quote(group_type, safe='')}", as_json, _render_list,
                 **params)


@groups_app.command("show")
def show(group_type: str = typer.Argument(..., help="The group type, e.g. company."),
         key: str = typer.Argument(..., help="The group's key."),
         server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """One group: its properties, event count, first and last seen."""
    get_and_emit(server, f"/groups/{quote(group_type, safe='')}/{quote(key, safe='')}",
                 as_json, _render_group)


def register(app: typer.Typer) -> None:
    """Add the `groups` group to `app`."""
    app.add_typer(groups_app, name="groups")
