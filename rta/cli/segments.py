"""`rta segment create|list|show|delete`: saved user segments.

A saved segment can be named in any query (`--segment "Premium Users"`, or
`"segment": "Premium Users"` in the API) and is evaluated against current data each time.
"""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.output import (
    EXIT_USAGE,
    JsonOption,
    ServerOption,
    call,
    delete_and_say,
    emit,
    fail,
    get_and_emit,
    get_client,
    message,
)
from rta.cli.query_behaviour import (
    AnyOption,
    PerformedOption,
    WhereSegOption,
    render_segment,
    segment_conditions,
)

segment_app = typer.Typer(help="Saved user segments.", no_args_is_help=True)


@segment_app.command("create")
def create(
    name: str = typer.Argument(..., help="Segment name (unique)."),
    where: list[str] = WhereSegOption,
    performed: list[str] = PerformedOption,
    any_: bool = AnyOption,
    description: str = typer.Option(None, "--description", "-d", help="What it is for."),
    time_range: str = typer.Option(None, "--range", "-r",
                                   help="Only consider events in this relative range "
                                        "(last_30d, ...), evaluated at query time."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Save a segment: users matching --where (latest property values) and --performed."""
    if not where and not performed:  # (no condition would match every user: a slip)
        fail("a segment needs at least one --where or --performed condition", EXIT_USAGE)
    body: dict[str, Any] = {"name": name, "filters": segment_conditions(where, performed),
                            "operator": "OR" if any_ else "AND"}
    if description:
        body["description"] = description
    if time_range:
        body["timeRange"] = time_range
    with get_client(server) as client:
        doc = call(lambda: client.post("/segments", body))
    if as_json:
        emit(doc, True, lambda d: None)
    else:
        message(f"created segment {doc['name']!r} ({doc['id']})")


@segment_app.command("list")
def list_(server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """All saved segments."""
    get_and_emit(server, "/segments", as_json, _render_list)


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    from rta.cli.output import console

    tbl = Table()
    for col in ("name", "id", "conditions", "description"):
        tbl.add_column(col)
    for doc in data["segments"]:
        tbl.add_row(doc["name"], doc["id"], _describe(doc), doc.get("description") or "")
    console().print(tbl)


def _describe(doc: dict[str, Any]) -> str:
    joiner = f" {str(doc.get('operator', 'AND')).upper()} "
    parts = []
    for f in doc.get("filters") or []:
        if isinstance(f, dict) and "property" in f:
            parts.append(f"{f['property']} {f.get('operator', 'eq')} {f.get('value', '')}".strip())
        elif isinstance(f, dict) and f.get("eventType"):
            parts.append(f"did {f['eventType']}")
        else:
            parts.append("(group)")
    return joiner.join(parts) or "(all users)"


@segment_app.command("show")
def show(ref: str = typer.Argument(..., help="Segment id or name."),
         sample: int = typer.Option(None, "--sample", "-n", help="User ids to list."),
         server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """A segment's definition and its current members (count and a sample)."""
    get_and_emit(server, f"/segments/{ref}", as_json, _render_show, sampleSize=sample)


def _render_show(data: dict[str, Any]) -> None:
    from rta.cli.output import console

    console().print(f"[dim]{data['id']}[/]  {_describe(data)}")
    render_segment(data)


@segment_app.command("delete")
def delete(ref: str = typer.Argument(..., help="Segment id or name."),
           server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Delete a saved segment."""
    delete_and_say(server, f"/segments/{ref}", as_json,
                   lambda d: f"deleted segment {d.get('name')!r} ({d['deleted']})")


def register(app: typer.Typer) -> None:
    """Add `rta segment ...`."""
    app.add_typer(segment_app, name="segment")
