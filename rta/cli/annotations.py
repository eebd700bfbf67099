"""`rta annotate TEXT` and `rta annotations list|delete`: dated notes on the dashboards' charts.

`rta annotate "v2.3 released"` marks now (or `--at TIME`: ms, ISO-8601, or relative such
as 2h for two hours ago) on every dashboard, or on one with `--dashboard ID`. With a token,
the author is the token's name; else `--author`.
"""

from __future__ import annotations

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

annotations_app = typer.Typer(help="Annotations: list and delete the notes on the charts.",
                              no_args_is_help=True)


def _when(ms: Any) -> str:
    from datetime import UTC, datetime

    if not isinstance(ms, int):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['total']} annotations", title_justify="left")
    for col in ("id", "time", "text", "dashboard", "author"):
        table.add_column(col, overflow="fold")
    for a in data["annotations"]:
        table.add_row(a["id"], _when(a.get("timestamp")), a.get("text", ""),
                      a.get("dashboardId") or "(all)", a.get("author") or "")
    console().print(table)


def annotate(
    text: str = typer.Argument(..., help="What happened, e.g. \"v2.3 released\"."),
    at: str | None = typer.Option(None, "--at", help="When: ms, ISO-8601, or relative such as "
                                                     "2h (two hours ago). Default: now."),
    dashboard: str | None = typer.Option(None, "--dashboard", help="Show it on this dashboard "
                                                                   "only (default: on all)."),
    author: str | None = typer.Option(None, "--author", help="Who wrote it (a token's name "
                                                             "takes precedence)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Mark a moment (a release, an incident) on the dashboards' time-series charts."""
    body: dict[str, Any] = {"text": text}
    if at is not None:
        body["timestamp"] = int(at) if at.strip().lstrip("-").isdigit() else at
    if dashboard:
        body["dashboardId"] = dashboard
    if author:
        body["author"] = author
    with get_client(server) as client:
        doc = call(lambda: client.post("/annotations", body))
    emit(doc, as_json, lambda d: message(f"annotated {_when(d['timestamp'])}: {d['text']} "
                                         f"({d['id']})"))


@annotations_app.command("list")
def list_annotations(
    since: str | None = typer.Option(None, "--from", help="From this time (ms, ISO-8601 or "
                                                          "relative such as last_7d)."),
    until: str | None = typer.Option(None, "--to", help="Up to this time (inclusive)."),
    dashboard: str | None = typer.Option(None, "--dashboard", help="Those shown on this "
                                                                   "dashboard (its own and "
                                                                   "the global ones)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Annotations, oldest first."""
    params = {"from": since, "to": until, "dashboard": dashboard}
    get_and_emit(server, "/annotations", as_json, _render_list, **params)


@annotations_app.command("delete")
def delete(annotation_id: str = typer.Argument(..., help="Annotation id."),
           server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Delete an annotation."""
    delete_and_say(server, f"/annotations/{quote(annotation_id, safe='')}", as_json,
                   lambda d: f"deleted annotation {d['id']}")


def register(app: typer.Typer) -> None:
    """Add `annotate` and the `annotations` group to `app`."""
    app.command("annotate")(annotate)
    app.add_typer(annotations_app, name="annotations")
