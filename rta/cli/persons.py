"""`rta persons merge|show`: the people behind the distinct ids (#18, `docs/people.md`).

`merge` links distinct ids into one person (`POST /persons/merge`); `show` prints the
person an id belongs to (`GET /persons/{id}`), by its person id or any of its distinct ids.
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

persons_app = typer.Typer(help="People: merge distinct ids into persons, and show them.",
                          no_args_is_help=True)


def _render_person(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"person {data['personId']}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("identified", "yes" if data.get("identified") else "no")
    table.add_row("distinct ids", ", ".join(data.get("distinctIds", [])))
    console().print(table)


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
    """The person a distinct id belongs to."""
    get_and_emit(server, f"/persons/{quote(person_id, safe='')}", as_json, _render_person)


def register(app: typer.Typer) -> None:
    """Add the `persons` group to `app`."""
    app.add_typer(persons_app, name="persons")
