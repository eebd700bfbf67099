"""`rta query web [--by DIMENSION]`: website figures (visits, bounce rate, sources...).

Without `--by`: the six headline figures with the previous period and the change, and the
visitors of the last five minutes; with it, one dimension's top values. Same filter options
as the other query commands; `--json` prints the API's answer.
"""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.choices import WEB_DIMENSIONS, one_of
from rta.cli.output import JsonOption, ServerOption, call, console, emit, get_client
from rta.cli.query_analytics import (
    RangeOption,
    SegmentOption,
    SinceOption,
    TypeOption,
    UntilOption,
    UserOption,
    WhereOption,
    _filter_params,
    _fmt,
    _range_line,
    bar,
)

LABELS = {"visitors": "Visitors", "visits": "Visits", "pageviews": "Pageviews",
          "views_per_visit": "Views per visit", "bounce_rate": "Bounce rate",
          "visit_duration": "Visit duration"}


def web(
    by: str = typer.Option(None, "--by", "-b", help="A dimension: " + ", ".join(
        WEB_DIMENSIONS) + " (default: the headline figures).",
                           callback=one_of(WEB_DIMENSIONS)),
    limit: int = typer.Option(None, "--limit", "-n", help="Values to show with --by "
                                                          "(default 10)."),
    bots: bool = typer.Option(False, "--bots", help="Count events flagged as bots too."),
    event_type: list[str] = TypeOption,
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    where: list[str] = WhereOption,
    user: list[str] = UserOption,
    segment: str = SegmentOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Web analytics: visitors, visits, pageviews, bounce rate, duration, or a breakdown."""
    params = _filter_params(event_type, since, until, time_range, where, user, segment)
    params.update(bots="true" if bots else None)
    if by is not None and by != "realtime":
        params["limit"] = limit
    path = "/analytics/web" if by is None else f"/analytics/web/{by}"
    with get_client(server) as client:
        data = call(lambda: client.get(path, **params))
    emit(data, as_json, _render)


def _change(name: str, change: float | None) -> str:
    if change is None:
        return ""
    unit = " pt" if name == "bounce_rate" else "%"
    return f"{change:+.1f}{unit}"


def _render(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    if "metrics" in data:
        out.print(f"web  {_range_line(data)}  now: {_fmt(data['realtime']['visitors'])} "
                  "visitors")
        table = Table()
        for col in ("metric", "value", "previous", "change"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for name, m in data["metrics"].items():
            table.add_row(LABELS.get(name, name), _fmt(m["value"]), _fmt(m["previous"]),
                          _change(name, m["change"]))
        out.print(table)
        return
    if "windowMs" in data:
        out.print(f"{_fmt(data['visitors'])} visitors in the last "
                  f"{data['windowMs'] // 60_000} minutes")
        return
    out.print(f"{data['dimension']}: {_fmt(data['values'])} values, "
              f"{_fmt(data['visitors'])} visitors  {_range_line(data)}")
    table = Table()
    table.add_column(data["dimension"], overflow="fold")
    for col in ("visitors", "visits", "pageviews", "bounce", "share"):
        table.add_column(col, justify="right")
    table.add_column("")
    for row in data["rows"]:
        share = row["share"] or 0.0
        bounce = "" if row["bounce_rate"] is None else f"{row['bounce_rate']:.1f}%"
        table.add_row("(none)" if row["value"] is None else str(row["value"]),
                      _fmt(row["visitors"]), _fmt(row["visits"]), _fmt(row["pageviews"]),
                      bounce, f"{share:.1f}%", bar(share / 100))
    out.print(table)


def register(query_app: typer.Typer) -> None:
    """Add `web` to `rta query`."""
    query_app.command("web")(web)
