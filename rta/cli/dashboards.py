"""`rta dashboards list|templates|create|show|open|delete`: dashboards from the terminal.

`show` prints a dashboard's widgets with their current values (counters and gauges as
numbers, the rest summarised); `open` prints the dashboard's URL and opens a browser when the
machine has one.
"""

from __future__ import annotations

import json
import webbrowser
from typing import Any
from urllib.parse import quote

import typer

from rta.cli.output import (
    JsonOption,
    ServerOption,
    call,
    console,
    delete_and_say,
    emit,
    get_and_emit,
    get_client,
    message,
)

dashboards_app = typer.Typer(help="Dashboards: list, create from templates, show, open.",
                             no_args_is_help=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    if isinstance(value, int | float):
        return f"{int(value):,}"
    return str(value)


def _summary(data: dict[str, Any] | None) -> str:
    """One line for a widget's resolved data."""
    if not data:
        return ""
    kind = data.get("kind")
    if kind == "value":
        return _fmt(data.get("value"))
    if kind == "series":
        parts = []
        for s in data.get("series", [])[:3]:
            vals = [v for v in s.get("values", []) if v is not None]
            last = _fmt(vals[-1]) if vals else "-"
            parts.append(f"{s.get('name')}: {len(s.get('values', []))} points, last {last}")
        return "; ".join(parts)
    if kind == "categories":
        pairs = list(zip(data.get("labels", []), data.get("values", []), strict=False))[:4]
        return ", ".join(f"{k} {_fmt(v)}" for k, v in pairs)
    if kind == "table":
        return f"{len(data.get('rows', []))} rows"
    if kind == "heatmap":
        total = data.get("total")
        return f"{len(data.get('yLabels', []))}x{len(data.get('xLabels', []))} cells" + (
            f", total {_fmt(total)}" if total is not None else "")
    if kind == "funnel":
        steps = data.get("steps", [])
        return " → ".join(f"{s.get('name')} {_fmt(s.get('count'))}" for s in steps)
    return ""


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['total']} dashboards", title_justify="left")
    for col in ("id", "name", "widgets", "time range", "refresh", "template"):
        table.add_column(col, overflow="fold")
    for d in data["dashboards"]:
        table.add_row(d["id"], d["name"], str(len(d.get("widgets", []))),
                      str(d.get("timeRange", "")), f"{d.get('refreshInterval', 0) // 1000}s",
                      str(d.get("template") or ""))
    console().print(table)


def _render_templates(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="dashboard templates", title_justify="left")
    for col in ("template", "description", "widgets", "time range", "kind"):
        table.add_column(col, overflow="fold")
    for t in data["templates"]:
        table.add_row(t["name"], t.get("description", ""), str(t["widgets"]),
                      t.get("timeRange", ""), "built-in" if t.get("builtin") else "custom")
    console().print(table)


def _render_show(payload: dict[str, Any]) -> None:
    from rich.table import Table

    doc, data = payload["dashboard"], payload.get("data")
    results = {w["id"]: w for w in (data or {}).get("widgets", [])}
    title = f"{doc['name']}  [dim]{doc['id']}[/]"
    table = Table(title=title, title_justify="left", caption=doc.get("description") or None,
                  caption_justify="left")
    for col in ("widget", "type", "x,y wxh", "value"):
        table.add_column(col, overflow="fold")
    for w in doc.get("widgets", []):
        p = w.get("position", {})
        res = results.get(w["id"], {})
        if res.get("error"):
            value = f"[red]error:[/] {res['error'].get('message', '')}"
        else:
            value = _summary(res.get("data"))
        table.add_row(w.get("title", ""), w["type"],
                      f"{p.get('x')},{p.get('y')} {p.get('w')}x{p.get('h')}", value)
    console().print(table)


def dashboard_url(server: str, dashboard_id: str) -> str:
    return f"{server.rstrip('/')}/#/dashboards/{quote(dashboard_id, safe='')}"


@dashboards_app.command("list")
def list_dashboards(server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Every dashboard: id, name, widgets, time range."""
    get_and_emit(server, "/dashboards", as_json, _render_list)


@dashboards_app.command("templates")
def list_templates(server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Built-in and registered dashboard templates."""
    get_and_emit(server, "/dashboards/templates", as_json, _render_templates)


@dashboards_app.command("create")
def create(
    template: str = typer.Option(..., "--template", "-t",
                                 help="overview, engagement, performance, errors, or a "
                                      "registered custom template."),
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the template's)."),
    time_range: str | None = typer.Option(None, "--time-range",
                                          help="Default time range, e.g. last_7d."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a dashboard from a template and print its id and URL."""
    body: dict[str, Any] = {"template": template}
    if name:
        body["name"] = name
    if time_range:
        body["timeRange"] = time_range
    with get_client(server) as client:
        doc = call(lambda: client.post("/dashboards/template", body))
        url = dashboard_url(client.base_url, doc["id"])

    def render(d: dict[str, Any]) -> None:
        console().print(f"[bold]{d['name']}[/] created: {d['id']}")
        console().print(url, highlight=False, soft_wrap=True)

    emit({**doc, "url": url}, as_json, render)


@dashboards_app.command("show")
def show(
    dashboard_id: str = typer.Argument(..., help="Dashboard id."),
    time_range: str | None = typer.Option(None, "--time-range",
                                          help="Override the time range, e.g. last_1h."),
    definition_only: bool = typer.Option(False, "--definition", help="Skip resolving data."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """A dashboard's widgets with their current values."""
    with get_client(server) as client:
        doc = call(lambda: client.get(f"/dashboards/{quote(dashboard_id, safe='')}"))
        data = None
        if not definition_only:
            params = {"timeRange": time_range} if time_range else {}
            data = call(lambda: client.get(
                f"/dashboards/{quote(dashboard_id, safe='')}/data", **params))
    emit({"dashboard": doc, "data": data}, as_json, _render_show)


@dashboards_app.command("open")
def open_dashboard(
    dashboard_id: str = typer.Argument(..., help="Dashboard id."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the URL."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the dashboard's URL and open it in a browser where one is available."""
    with get_client(server) as client:
        doc = call(lambda: client.get(f"/dashboards/{quote(dashboard_id, safe='')}"))
        url = dashboard_url(client.base_url, doc["id"])
    opened = False
    if not no_browser:
        try:
            opened = webbrowser.get() is not None and webbrowser.open(url)
        except webbrowser.Error:
            opened = False
    if as_json:
        typer.echo(json.dumps({"id": doc["id"], "url": url, "opened": bool(opened)}))
        return
    typer.echo(url)
    if not no_browser and not opened:
        message("no browser found here; open the URL above")


@dashboards_app.command("delete")
def delete(dashboard_id: str = typer.Argument(..., help="Dashboard id."),
           server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Delete a dashboard."""
    delete_and_say(server, f"/dashboards/{quote(dashboard_id, safe='')}", as_json,
                   lambda d: f"deleted {d.get('id', dashboard_id)}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.add_typer(dashboards_app, name="dashboards")
