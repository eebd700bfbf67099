"""`rta query stickiness|lifecycle`: how often users come back, and how the active users of
an event split into new, returning, resurrecting and dormant per period.

Output: a bar table; `--json` prints the API's answer unchanged.
"""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.choices import one_of
from rta.cli.output import JsonOption, ServerOption, emit
from rta.cli.query_behaviour import (
    RangeOption,
    SegmentOption,
    SinceOption,
    UntilOption,
    _post,
    _time,
    parse_where_list,
    put_given,
)

STICKINESS_INTERVALS = ("day", "week")
LIFECYCLE_INTERVALS = ("day", "week", "month")
WhereOption = typer.Option(None, "--where", "-w",
                           help="Only events matching this filter, e.g. plan=pro (repeatable).")


def _body(event: str, interval: str | None, where: list[str] | None, since: str | None,
          until: str | None, time_range: str | None, segment: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"eventType": event}
    put_given(body, (("interval", interval), ("segment", segment)))
    filters = parse_where_list(where)
    if filters:
        body["filters"] = filters
    _time(body, since, until, time_range)
    return body


def stickiness(
    event: str = typer.Argument(..., help="The event type."),
    interval: str = typer.Option(None, "--interval", "-i", help="day (default) or week.",
                                 callback=one_of(STICKINESS_INTERVALS)),
    where: list[str] = WhereOption,
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    segment: str = SegmentOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Stickiness: how many users did EVENT on exactly 1, 2, ... N days (or weeks) of the
    range (whole UTC days or Monday weeks; default the last 8)."""
    body = _body(event, interval, where, since, until, time_range, segment)
    emit(_post(server, "/queries/stickiness", body), as_json, render_stickiness)


def lifecycle(
    event: str = typer.Argument(..., help="The event type."),
    interval: str = typer.Option(None, "--interval", "-i",
                                 help="day (default), week or month.",
                                 callback=one_of(LIFECYCLE_INTERVALS)),
    where: list[str] = WhereOption,
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    segment: str = SegmentOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Lifecycle: per period, users of EVENT who are new, returning, resurrecting or gone
    dormant (whole UTC periods; default the last 8)."""
    body = _body(event, interval, where, since, until, time_range, segment)
    emit(_post(server, "/queries/lifecycle", body), as_json, render_lifecycle)


def _bar(share: float, width: int = 30) -> str:
    full = round(share / 100 * width)
    return "█" * full + "·" * (width - full)


def render_stickiness(data: dict[str, Any]) -> None:
    from rich.table import Table

    from rta.cli.output import console

    unit = data["interval"]
    tbl = Table(title=f"Stickiness: {data['eventType']} ({data['totalUsers']:,} users, "
                      f"{data['periods']} {unit}s from {_day(data['startTime'])})",
                title_justify="left")
    for col in (f"{unit}s active", "users", "share", "", "at least"):
        tbl.add_column(col, justify="left" if col == "" else "right")
    for row in data["stickiness"]:
        tbl.add_row(str(row["periods"]), f"{row['users']:,}", f"{row['percentage']:.1f}%",
                    f"[cyan]{_bar(row['percentage'])}[/]",
                    f"{row['cumulativePercentage']:.1f}%")
    console().print(tbl)


def render_lifecycle(data: dict[str, Any]) -> None:
    from rich.table import Table

    from rta.cli.output import console

    tbl = Table(title=f"Lifecycle: {data['eventType']} per {data['interval']}",
                title_justify="left")
    tbl.add_column("period")
    for col, colour in (("new", "green"), ("returning", "blue"),
                        ("resurrecting", "yellow"), ("dormant", "red")):
        tbl.add_column(f"[{colour}]{col}[/]", justify="right")
    for p in data["periods"]:
        tbl.add_row(_day(p["startTime"]), f"{p['new']:,}", f"{p['returning']:,}",
                    f"{p['resurrecting']:,}", f"{p['dormant']:,}")
    t = data["totals"]
    tbl.add_row("[bold]total[/]", f"{t['new']:,}", f"{t['returning']:,}",
                f"{t['resurrecting']:,}", f"{t['dormant']:,}")
    console().print(tbl)


def _day(ms: int) -> str:
    from rta.core.queries.timeparse import iso

    return iso(ms)[:10]


def register(query_app: typer.Typer) -> None:
    """Add these commands to `rta query`."""
    query_app.command("stickiness")(stickiness)
    query_app.command("lifecycle")(lifecycle)
