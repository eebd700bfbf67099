"""`rta persons merge|show|list|delete`: the people behind the distinct ids (#18,
`docs/people.md`).

`merge` links distinct ids into one person (`POST /persons/merge`); `show` prints the
person an id belongs to (`GET /persons/{id}`: ids, properties, activity, newest events), by
its person id or any of its distinct ids; `list` pages through persons (`GET /persons`);
`delete` erases the person (`DELETE /persons/{id}`, asks first unless `--yes`).
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
    emit,
    get_and_emit,
    get_client,
    message,
)

persons_app = typer.Typer(help="People: merge distinct ids into persons, list, show and "
                               "erase them.",
                          no_args_is_help=True)


def _render_person(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"person {data['personId']}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("identified", "yes" if data.get("identified") else "no")
    table.add_row("distinct ids", ", ".join(data.get("distinctIds", [])))
    if "eventCount" in data:
        table.add_row("events", str(data["eventCount"]))
        table.add_row("first seen", _when(data.get("firstSeen")))
        table.add_row("last seen", _when(data.get("lastSeen")))
    for key, value in (data.get("properties") or {}).items():
        table.add_row(f"person.{key}", _text(value))
    console().print(table)
    recent = data.get("recentEvents") or []
    if recent:
        events = Table(title="recent events", title_justify="left")
        for col in ("time", "type", "userId"):
            events.add_column(col)
        for e in recent:
            events.add_row(_when(e.get("timestamp")), str(e.get("type")), str(e.get("userId")))
        console().print(events)


def _when(ms: Any) -> str:
    if ms is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="persons", title_justify="left")
    for col in ("person", "distinct ids", "properties"):
        table.add_column(col, overflow="fold")
    for p in data.get("persons", []):
        props = ", ".join(f"{k}={_text(v)}" for k, v in (p.get("properties") or {}).items())
        table.add_row(p["personId"], ", ".join(p.get("distinctIds", [])), props)
    console().print(table)
    if data.get("nextCursor"):
        message(f"more: --cursor {data['nextCursor']}")


@persons_app.command("merge")
def merge(
    distinct_ids: list[str] = typer.Argument(..., help="Two or more distinct ids to link into "
                                                       "one person."),
    force: bool = typer.Option(False, "--force", help="Merge even when two of them are "
                                                      "already identified persons."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Link distinct ids into one person; their events count as that person, also those sent
    before."""
    with get_client(server) as client:
        doc = call(lambda: client.post("/persons/merge",
                                       {"distinctIds": distinct_ids, "force": force}))
    emit(doc, as_json, lambda d: message(f"merged into person {d.get('personId')}"))


@persons_app.command("show")
def show(person_id: str = typer.Argument(..., help="A person id or any of its distinct ids."),
         server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """The person a distinct id belongs to: ids, properties, first and last seen, event
    count and the newest events."""
    get_and_emit(server, f"/persons/{quote(person_id, safe='')}", as_json, _render_person)


@persons_app.command("list")
def list_persons(
    search: str = typer.Option(None, "--search",
                               help="Only persons with this text in a distinct id or a "
                                    "property value (case-insensitive)."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000,
                              help="At most this many persons."),
    cursor: str = typer.Option(None, "--cursor", help="Continue after a previous page "
                                                      "(its nextCursor)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Persons ordered by person id, with their distinct ids and properties."""
    params: dict[str, Any] = {"limit": limit}
    if search:
        params["search"] = search
    if cursor:
        params["cursor"] = cursor
    get_and_emit(server, "/persons", as_json, _render_list, **params)


@persons_app.command("delete")
def delete(
    person_id: str = typer.Argument(..., help="A person id or any of its distinct ids."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (needed "
                                                        "when stdin is not a terminal)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Erase a person: every event of all its distinct ids, its links and the strings only
    it used, from memory and disk (DELETE /persons/{id}; admin). Prints the receipt."""
    import sys

    from rta.cli.output import EXIT_USAGE, fail

    if not yes:
        if not sys.stdin.isatty():
            fail("refusing to erase without confirmation: pass --yes", EXIT_USAGE)
        if not typer.confirm(f"Erase person {person_id!r} and all its events? This cannot be "
                             "undone", err=True):
            fail("not erased", EXIT_USAGE)
    with get_client(server) as client:
        doc = call(lambda: client.request("DELETE", f"/persons/{quote(person_id, safe='')}"))
    emit(doc, as_json, lambda d: message(
        f"erased person {d.get('personId')}: {d.get('eventsRemoved')} event(s) of "
        f"{d.get('distinctIdsErased')} distinct id(s), {d.get('segmentsRewritten')} "
        f"segment(s) rewritten in {d.get('tookMs')} ms"))


def register(app: typer.Typer) -> None:
    """Add the `persons` group to `app`."""
    app.add_typer(persons_app, name="persons")
