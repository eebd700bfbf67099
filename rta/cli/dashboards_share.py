"""`rta dashboards share ID [--expires 7d]`, `rta dashboards shares ID` and
`rta dashboards unshare ID [LINK]`.

`share` prints a public read-only URL of the dashboard (its secret is shown only now);
`shares` lists the dashboard's links (never their secrets: the hint of each); `unshare`
revokes one link, or every link of the dashboard. All need an admin token where auth
applies. Registered into the `dashboards` group (`cli/dashboards.py`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer

from rta.cli.dashboards import dashboards_app
from rta.cli.output import JsonOption, ServerOption, call, console, emit, get_client, message


def _when(ms: Any) -> str:
    from datetime import UTC, datetime

    if not isinstance(ms, int):
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dashboards_app.command("share")
def share(
    dashboard_id: str = typer.Argument(..., help="Dashboard id."),
    expires: str | None = typer.Option(None, "--expires", help="Expire after this long, e.g. "
                                                               "7d or 12h (default: never)."),
    name: str | None = typer.Option(None, "--name", help="A label for the link."),
    embed: bool = typer.Option(False, "--embed", help="Print the iframe URL (?embed=1: no "
                                                      "header)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Make a read-only link to a dashboard, for people without an rta token."""
    body: dict[str, Any] = {}
    if expires:
        body["expiresIn"] = expires
    if name:
        body["name"] = name
    with get_client(server) as client:
        link = call(lambda: client.post(f"/dashboards/{quote(dashboard_id, safe='')}/share",
                                        body))

    def render(d: dict[str, Any]) -> None:
        console().print(d["embedUrl"] if embed else d["url"], highlight=False, soft_wrap=True)
        message(f"link {d['id']} to dashboard {d['dashboardId']}; expires: "
                f"{_when(d.get('expiresAt'))} (the URL is shown only now)")

    emit(link, as_json, render)


@dashboards_app.command("shares")
def shares(
    dashboard_id: str = typer.Argument(..., help="Dashboard id."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """List a dashboard's share links: id, label, hint, who made it, when it expires."""
    with get_client(server) as client:
        data = call(lambda: client.get(f"/dashboards/{quote(dashboard_id, safe='')}/share"))

    def render(d: dict[str, Any]) -> None:
        from rich.table import Table

        if not d["links"]:
            message(f"dashboard {dashboard_id} has no share links")
            return
        table = Table(title=f"{d['total']} share link{'' if d['total'] == 1 else 's'}",
                      title_justify="left")
        for col in ("id", "name", "hint", "created by", "created", "expires", "status"):
            table.add_column(col, overflow="fold")
        for link in d["links"]:
            table.add_row(str(link.get("id", "")), str(link.get("name") or ""),
                          str(link.get("hint") or ""), str(link.get("createdBy") or ""),
                          _when(link.get("createdAt")), _when(link.get("expiresAt")),
                          "expired" if link.get("expired") else "active")
        console().print(table)

    emit(data, as_json, render)


@dashboards_app.command("unshare")
def unshare(
    dashboard_id: str = typer.Argument(..., help="Dashboard id."),
    link_id: str | None = typer.Argument(None, help="The link's id (default: every link of "
                                                    "the dashboard)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a dashboard's share link (or all of them): refused at once, live views too."""
    path = f"/dashboards/{quote(dashboard_id, safe='')}/share"
    if link_id:
        path += f"/{quote(link_id, safe='')}"
    with get_client(server) as client:
        data = call(lambda: client.request("DELETE", path))
    emit(data, as_json, lambda d: message(f"revoked {d['total']} share link"
                                          f"{'' if d['total'] == 1 else 's'}"))


def register(app: typer.Typer) -> None:
    """The commands are added to the `dashboards` group when this module is imported."""
