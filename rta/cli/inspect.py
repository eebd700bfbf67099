"""`rta events`, `rta stats`, `rta health`: look at what the daemon holds."""

from __future__ import annotations

import json
from typing import Any

import typer

from rta.cli.output import (
    EXIT_USAGE,
    JsonOption,
    ServerOption,
    call,
    console,
    emit,
    fail,
    get_client,
)


def events(
    event_type: list[str] = typer.Option(None, "--type", "-t", help="Event type (repeatable)."),
    user: str = typer.Option(None, "--user", "-u", help="Only this user id."),
    since: str = typer.Option(None, "--since", help="Start: ms, ISO-8601, or 15m/24h/7d."),
    until: str = typer.Option(None, "--until", help="End: ms or ISO-8601."),
    where: list[str] = typer.Option(None, "--where", "-w",
                                    help="Property filter: 'page=/x', 'duration>1000', "
                                         "'page~prod', 'email?' (repeatable)."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=10_000,
                              help="How many events (max 10000)."),
    cursor: str = typer.Option(None, "--cursor", help="Continue from a previous page."),
    all_properties: bool = typer.Option(
        False, "--all-properties", help="Show every property: the SDKs' own `$` ones "
        "(PostHog's $browser, $lib...) are otherwise counted, not listed."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Recent events, newest first (the properties you sent first)."""
    from rta.core.errors import ValidationError
    from rta.core.queries.filters import parse_cli_where, predicate_to_json

    params: dict[str, Any] = {"type": ",".join(event_type) if event_type else None,
                              "userId": user, "startTime": since, "endTime": until,
                              "limit": limit, "cursor": cursor}
    if where:
        try:
            params["where"] = json.dumps([predicate_to_json(parse_cli_where(w))
                                          for w in where])
        except ValidationError as exc:
            fail(exc.message, EXIT_USAGE)
    with get_client(server) as client:
        data = call(lambda: client.get("/events", **params))
    emit(data, as_json, lambda d: render_events(d, all_properties))


def properties_text(props: dict[str, Any], all_properties: bool = False) -> str:
    """The user's own properties first, then the SDK's `$` ones: with PostHog data these
    are dozens per event ($browser, $current_url, $lib...), so unless `all_properties`
    they are only counted, and one event stays a line or two instead of sixty."""
    own = [f"{k}={v}" for k, v in props.items() if not k.startswith("$")]
    sdk = [f"{k}={v}" for k, v in props.items() if k.startswith("$")]
    if all_properties:
        return ", ".join(own + sdk)
    text = ", ".join(own)
    return f"{text} (+{len(sdk)} $ properties)".lstrip() if sdk else text


def render_events(data: dict[str, Any], all_properties: bool = False) -> None:
    from rich.table import Table

    from rta.core.queries.timeparse import iso

    table = Table(title=f"{data['count']} events", title_justify="left")
    for col in ("time", "type", "user", "session", "properties"):
        table.add_column(col, overflow="fold")
    for ev in data["events"]:
        props = properties_text(ev["properties"], all_properties)
        table.add_row(iso(ev["timestamp"]), ev["type"], ev.get("userId") or "",
                      ev.get("sessionId") or "", props)
    console().print(table)
    if data.get("nextCursor"):
        console(stderr=True).print(f"more: --cursor {data['nextCursor']}")


def stats(server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Ingestion, store, alert and WebSocket statistics."""
    with get_client(server) as client:
        data = call(client.stats)
    emit(data, as_json, _render_sections)


def health(server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Whether the daemon is up, its version, uptime and store state."""
    with get_client(server) as client:
        data = call(client.health)
    emit(data, as_json, _render_sections)
    if data.get("status") != "ok":
        raise typer.Exit(1)


def _render_sections(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
                else str(value)
            table.add_row(prefix, shown)

    walk("", data)
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("events")(events)
    app.command("stats")(stats)
    app.command("health")(health)
