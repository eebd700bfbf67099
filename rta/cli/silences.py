"""`rta alerts silence|silences|unsilence`: mute one alert or every alert for a while.

Registered onto the `rta alerts` group (defined in rta.cli.alerts)."""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.output import (
    EXIT_USAGE,
    JsonOption,
    ServerOption,
    call,
    console,
    delete_and_say,
    fail,
    get_and_emit,
    get_client,
    message,
    print_json,
    when_text,
)


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['total']} silences", title_justify="left")
    for col in ("id", "alert", "from", "until", "active", "reason"):
        table.add_column(col, no_wrap=col == "id", overflow="fold")
    for s in data["silences"]:
        table.add_row(s["id"], s.get("alertId") or "(every alert)", when_text(s["startsAt"]),
                      when_text(s["endsAt"]), "yes" if s["active"] else "no", s.get("reason", ""))
    console().print(table)


def silence(alert_id: str = typer.Argument(None, help="Alert id (or --all)."),
            every: bool = typer.Option(False, "--all", help="Mute every alert."),
            duration: str = typer.Option(..., "--for", help="How long: 30m, 2h, 1d."),
            reason: str = typer.Option(None, "--reason", help="Why (shown in the list)."),
            server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Mute an alert (or --all) for a while: it is still evaluated, and its notifications
    go to the history marked muted."""
    if (alert_id is None) == (not every):
        fail("give an alert id or --all (not both)", EXIT_USAGE)
    body: dict[str, Any] = {"for": duration}
    if reason is not None:
        body["reason"] = reason
    path = "/alerts/silences" if every else f"/alerts/{alert_id}/silence"
    with get_client(server) as client:
        data = call(lambda: client.post(path, body))
    if as_json:
        print_json(data)
    else:
        what = "every alert" if every else f"alert {alert_id}"
        message(f"muted {what} until {when_text(data['endsAt'])} (silence {data['id']})")


def silences(active: bool = typer.Option(False, "--active", help="Only those muting now."),
             server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Silences, active and expired."""
    get_and_emit(server, "/alerts/silences", as_json, _render_list,
                 active="true" if active else None)


def unsilence(silence_id: str = typer.Argument(..., help="Silence id."),
              server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """End a silence now."""
    delete_and_say(server, f"/alerts/silences/{silence_id}", as_json,
                   lambda _: f"ended silence {silence_id}")


def register(app: typer.Typer) -> None:
    """Add `rta alerts silence|silences|unsilence` to the alerts group."""
    from rta.cli.alerts import alerts_app

    alerts_app.command("silence")(silence)
    alerts_app.command("silences")(silences)
    alerts_app.command("unsilence")(unsilence)
