"""`rta reports create|list|show|send|delete|history`: scheduled dashboard reports."""

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
    emit,
    fail,
    get_and_emit,
    get_client,
    message,
    print_json,
    when_text,
)

reports_app = typer.Typer(help="Scheduled reports: a dashboard's figures by email and Slack.",
                          no_args_is_help=True)


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['total']} reports", title_justify="left")
    for col in ("id", "name", "dashboard", "schedule", "tz", "to", "next run"):
        table.add_column(col, no_wrap=col in ("id", "schedule"), overflow="fold")
    for r in data["reports"]:
        table.add_row(r["id"], r["name"], r["dashboardId"], r["schedule"], r["tz"],
                      "\n".join(r["to"]),
                      when_text(r.get("nextRunAt")) if r.get("enabled") else "disabled")
    console().print(table)


def _render_report(r: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, title=r["name"], title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in (("id", r["id"]), ("dashboard", r["dashboardId"]),
                       ("schedule", f"{r['schedule']} ({r['tz']})"),
                       ("to", "\n".join(r["to"])), ("enabled", str(r["enabled"]).lower()),
                       ("time range", r.get("timeRange") or "the dashboard's"),
                       ("next run", when_text(r.get("nextRunAt")))):
        table.add_row(key, value)
    console().print(table)


def _render_run(data: dict[str, Any]) -> None:
    colour = {"delivered": "green", "partial": "yellow"}.get(data["status"], "bold red")
    console().print(f"[{colour}]{data['status']}[/] (run {data['runId']})")
    for d in data["deliveries"]:
        detail = d["status"] + (f": {d['error']}" if d.get("error") else "")
        console().print(f"  {d['target']}: {detail} after {d['attempt']} attempt(s)")
    if data.get("pictureNote"):
        console().print(f"  {data['pictureNote']}")


def _render_history(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['count']} delivery attempts", title_justify="left")
    for col in ("time", "trigger", "target", "attempt", "status", "error"):
        table.add_column(col, overflow="fold")
    for h in data["history"]:
        table.add_row(when_text(h.get("at")), h.get("trigger", ""), h.get("target", ""),
                      str(h.get("attempt", "")), h.get("status", ""), h.get("error") or "")
    console().print(table)


@reports_app.command("create")
def create(
    dashboard: str = typer.Option(..., "--dashboard", "-d", help="Dashboard id."),
    schedule: str = typer.Option(..., "--schedule", "-s",
                                 help="Cron: minute hour day month weekday, e.g. '0 9 * * 1'."),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone of the schedule."),
    to: list[str] = typer.Option(..., "--to", help="email:ADDRESS or slack:WEBHOOK_URL "
                                 "(repeatable)."),
    name: str = typer.Option(None, "--name", "-n", help="Report name [default: from the "
                             "dashboard]."),
    time_range: str = typer.Option(None, "--range", help="Period to report on (last_7d, ...) "
                                   "[default: the dashboard's]."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Schedule a dashboard report."""
    body: dict[str, Any] = {"dashboardId": dashboard, "schedule": schedule, "tz": tz,
                            "to": list(to)}
    if name is not None:
        body["name"] = name
    if time_range is not None:
        body["timeRange"] = time_range
    if disabled:
        body["enabled"] = False
    with get_client(server) as client:
        data = call(lambda: client.post("/reports", body))
    if as_json:
        print_json(data)
    else:
        message(f"created report [bold]{data['name']}[/] {data['id']}")
        _render_report(data)


@reports_app.command("list")
def list_(server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Scheduled reports with their next run."""
    get_and_emit(server, "/reports", as_json, _render_list)


@reports_app.command("show")
def show(report_id: str = typer.Argument(..., help="Report id."),
         server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """One report."""
    get_and_emit(server, f"/reports/{report_id}", as_json, _render_report)


@reports_app.command("send")
def send(report_id: str = typer.Argument(..., help="Report id."),
         server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Send a report now; exits 1 unless every recipient got it."""
    with get_client(server) as client:
        data = call(lambda: client.post(f"/reports/{report_id}/send", {}))
    data.pop("content", None)
    emit(data, as_json, _render_run)
    if data["status"] != "delivered":
        raise typer.Exit(1)


@reports_app.command("delete")
def delete(report_id: str = typer.Argument(..., help="Report id."),
           server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Delete a report (its history stays)."""
    delete_and_say(server, f"/reports/{report_id}", as_json,
                   lambda _: f"deleted report {report_id}")


@reports_app.command("history")
def history(report_id: str = typer.Argument(..., help="Report id."),
            limit: int = typer.Option(100, "--limit", "-n", help="How many entries."),
            server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Delivery attempts with their outcome, newest first."""
    if limit < 1:
        fail("--limit must be at least 1", EXIT_USAGE)
    get_and_emit(server, f"/reports/{report_id}/history", as_json, _render_history,
                 limit=limit)


def register(app: typer.Typer) -> None:
    """Add `rta reports ...`."""
    app.add_typer(reports_app, name="reports")
