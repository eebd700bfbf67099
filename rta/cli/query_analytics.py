"""`rta query aggregate|count|unique|top`: analytics queries against the daemon.

Every command takes the same filter options (`--type`, `--since`, `--until`, `--range`,
`--where`, `--user`, `--segment`), prints a rich table (with a sparkline for time series and
bars for shares), or the API's JSON with `--json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import typer

from rta.cli.choices import SERIES_AGGREGATIONS, TOP_SORTS, one_of, unit_of
from rta.cli.output import (
    JsonOption,
    ServerOption,
    call,
    console,
    duration_text,
    emit,
    get_client,
)

SPARKS = "▁▂▃▄▅▆▇█"
TABLE_MAX_BUCKETS = 48

TypeOption = typer.Option(None, "--type", "-t", help="Event type (repeatable).")
SinceOption = typer.Option(None, "--since", help="Start: ms, ISO-8601, or 15m/24h/7d ago.")
UntilOption = typer.Option(None, "--until", help="End (inclusive): ms or ISO-8601.")
RangeOption = typer.Option(None, "--range", "-r",
                           help="Relative range: last_15m, last_24h, last_7d, today, ...")
WhereOption = typer.Option(None, "--where", "-w",
                           help="Property filter: 'page=/x', 'duration>1000', 'page~prod', "
                                "'email?', 'plan in pro,team' (repeatable, ANDed). A "
                                "missing value ('plan=') is a usage error; an unknown "
                                "property or a value of the wrong kind ('amount>abc') "
                                "answers with a warning on stderr.")
UserOption = typer.Option(None, "--user", "-u", help="Only these user ids (repeatable).")
SegmentOption = typer.Option(None, "--segment", help="Only users of this saved segment.")
CompareOption = typer.Option(False, "--compare", help="Also answer the previous period (same "
                             "length, aligned buckets): the change and whether it is "
                             "significant.")


def _filter_params(event_type: list[str] | None, since: str | None, until: str | None,
                   time_range: str | None, where: list[str] | None, user: list[str] | None,
                   segment: str | None) -> dict[str, Any]:
    from rta.cli.output import EXIT_USAGE, fail
    from rta.core.errors import ValidationError
    from rta.core.queries.filters import parse_cli_where, predicate_to_json

    params: dict[str, Any] = {"type": ",".join(event_type) if event_type else None,
                              "startTime": since, "endTime": until, "timeRange": time_range,
                              "segment": segment, "userId": list(user) if user else None}
    if where:
        try:
            params["where"] = json.dumps([predicate_to_json(parse_cli_where(w))
                                          for w in where], ensure_ascii=False)
        except ValidationError as exc:
            fail(exc.message, EXIT_USAGE)
    return params


def aggregate(
    metric: str = typer.Option(None, "--metric", "-m",
                               help="Numeric property to aggregate (omit to count events)."),
    aggregation: str = typer.Option(None, "--agg", "-a",
                                    help="count, sum, avg, min, max, p50, p90, p95, p99, "
                                         "unique_users (default: avg with --metric, else "
                                         "count).", callback=one_of(SERIES_AGGREGATIONS)),
    interval: str = typer.Option(None, "--interval", "-i",
                                 help="Bucket size: ms or 1m/5m/1h/1d (default: automatic)."),
    group_by: str = typer.Option(None, "--group-by", "-g",
                                 help="One series per value of this property (or type)."),
    limit: int = typer.Option(None, "--limit", "-n", help="Series to keep with --group-by."),
    series: list[str] = typer.Option(None, "--series", "-s",
                                     help="A named series for --formula: NAME=TYPE[:AGGREGATION"
                                          "[:PROPERTY]][;WHERE...], e.g. 'A=signup', "
                                          "'R=purchase:sum:amount;plan=pro' (repeatable, up "
                                          "to 10; the filter options apply to every series)."),
    formula: str = typer.Option(None, "--formula", "-f",
                                help="Arithmetic over the series names: + - * / ( ) and "
                                     "numbers, e.g. 'A/B*100'."),
    compare: bool = CompareOption,
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
    """A time series: one aggregation per aligned, zero-filled bucket (or named series and
    a formula over them)."""
    from rta.cli import query_formula

    body = _filter_params(event_type, since, until, time_range, where, user, segment)
    body.update(metric=metric, aggregation=aggregation, interval=interval, groupBy=group_by,
                limit=limit, formula=formula,
                compare="previous_period" if compare else None)
    if series:
        body["series"] = query_formula.parse_series(series)
    body = {k: v for k, v in body.items() if v is not None}
    if "where" in body:
        body["where"] = json.loads(body["where"])
    with get_client(server) as client:
        data = call(lambda: client.post("/analytics/aggregate", body))
    render = query_formula.render_formula if series else _render_aggregate
    emit(data, as_json, query_formula.with_comparison(render))


def count(
    group_by: str = typer.Option(None, "--group-by", "-g",
                                 help="Count per event type ('type') or property value."),
    limit: int = typer.Option(None, "--limit", "-n", help="Groups to show (default 100)."),
    compare: bool = CompareOption,
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
    """Count matching events, in total or per type or property value."""
    params = _filter_params(event_type, since, until, time_range, where, user, segment)
    from rta.cli.query_formula import with_comparison

    params.update(groupBy=group_by, limit=limit,
                  compare="previous_period" if compare else None)
    with get_client(server) as client:
        data = call(lambda: client.get("/analytics/count", **params))
    emit(data, as_json, with_comparison(_render_count))


def unique(
    interval: str = typer.Option(None, "--interval", "-i",
                                 help="Per-bucket distinct users (e.g. 1d for DAU)."),
    approximate: bool = typer.Option(False, "--approximate", "--approx",
                                     help="HyperLogLog estimate with its standard error."),
    unit: str = typer.Option(None, "--unit", help="users (default) or group:<type> "
                             "(e.g. group:company: distinct groups).",
                             callback=unit_of(("users",))),
    compare: bool = CompareOption,
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
    """Distinct users among matching events (exact unless --approximate)."""
    params = _filter_params(event_type, since, until, time_range, where, user, segment)
    params.update(interval=interval, approximate="true" if approximate else None,
                  compare="previous_period" if compare else None, unit=unit)
    with get_client(server) as client:
        data = call(lambda: client.get("/analytics/unique-users", **params))
    from rta.cli.query_formula import with_comparison

    emit(data, as_json, with_comparison(_render_unique))


def top(
    prop: str = typer.Argument(..., metavar="PROPERTY",
                               help="Property (or type, userId) whose values to rank."),
    n: int = typer.Option(10, "--limit", "-n", help="How many values."),
    sort: str = typer.Option("count", "--sort", help="Rank by 'count' or 'users'.",
                             callback=one_of(TOP_SORTS)),
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
    """The most frequent values of a property: count, distinct users and share."""
    params = _filter_params(event_type, since, until, time_range, where, user, segment)
    params.update(property=prop, n=n, sort=sort)
    with get_client(server) as client:
        data = call(lambda: client.get("/analytics/top", **params))
    emit(data, as_json, _render_top)


# -- rendering -----------------------------------------------------------------------------

def sparkline(values: Sequence[float | int | None], width: int | None = None) -> str:
    """Values as block characters (gaps as spaces), averaged down to `width` columns."""
    vals = list(values)
    if width is not None and len(vals) > width > 0:
        step = len(vals) / width
        merged: list[float | None] = []
        for i in range(width):
            chunk = [v for v in vals[int(i * step):int((i + 1) * step)] if v is not None]
            merged.append(sum(chunk) / len(chunk) if chunk else None)
        vals = merged  # type: ignore[assignment]
    present = [float(v) for v in vals if v is not None and math.isfinite(v)]
    if not present:
        return " " * len(vals)
    lo, hi = min(present), max(present)
    span = hi - lo
    out = []
    for v in vals:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif span == 0:
            out.append(SPARKS[-1] if hi > 0 else SPARKS[0])
        else:
            out.append(SPARKS[min(len(SPARKS) - 1, int((v - lo) / span * len(SPARKS)))])
    return "".join(out)


def bar(fraction: float, width: int = 20) -> str:
    """A horizontal bar with eighth-block resolution."""
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    rest = int((cells - full) * 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _time(ms: int | None) -> str:
    from rta.core.queries.timeparse import iso

    return "-" if ms is None else iso(ms)


def _range_line(data: dict[str, Any]) -> str:
    parts = [f"{_time(data.get('startTime'))} → {_time(data.get('endTime'))}"]
    if data.get("interval"):
        parts.append(f"every {duration_text(data['interval'])}")  # (1d, not 1440m)
    if data.get("eventType"):
        et = data["eventType"]
        parts.append("type " + (",".join(et) if isinstance(et, list) else et))
    if data.get("cached"):
        parts.append("(cached)")
    return "  ".join(parts)


def _render_aggregate(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    what = data["aggregation"] + (f"({data['metric']})" if data.get("metric") else "")
    width = max(10, min(out.width - 30, 120))
    total = data["total"]
    out.print(f"[bold]{what}[/]  {_range_line(data)}")
    out.print(f"total {_fmt(total['value'])} over {_fmt(total['count'])} events")
    buckets = data["buckets"]
    if not buckets:
        out.print("(no data)")
        return
    out.print(sparkline([b["value"] for b in buckets], width))
    if data.get("series"):
        table = Table(title_justify="left")
        table.add_column(data.get("groupBy") or "key", overflow="fold")
        table.add_column("total", justify="right")
        table.add_column("events", justify="right")
        table.add_column("trend")
        for s in data["series"]:
            table.add_row(_fmt(s["key"]), _fmt(s["total"]["value"]), _fmt(s["total"]["count"]),
                          sparkline([b["value"] for b in s["buckets"]], min(width, 60)))
        out.print(table)
        hidden = data.get("groups", 0) - len(data["series"])
        if hidden > 0:
            console(stderr=True).print(f"{hidden} more groups not shown (--limit)")
        return
    if len(buckets) > TABLE_MAX_BUCKETS:
        console(stderr=True).print(f"{len(buckets)} buckets; use --json for every value")
        return
    values = [b["value"] for b in buckets if b["value"] is not None]
    peak = max((abs(v) for v in values), default=0) or 1
    table = Table()
    table.add_column("bucket")
    table.add_column("value", justify="right")
    table.add_column("events", justify="right")
    table.add_column("")
    for b in buckets:
        v = b["value"]
        table.add_row(_time(b["timestamp"]), _fmt(v), _fmt(b["count"]),
                      bar(abs(v) / peak) if v is not None else "")
    out.print(table)


def _render_count(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{_fmt(data['count'])}[/] events  {_range_line(data)}")
    if data.get("groupBy") is None:
        return
    table = Table()
    table.add_column(data["groupBy"], overflow="fold")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    for g in data["groups"]:
        table.add_row(_fmt(g["key"]), _fmt(g["count"]), f"{g['share']:.1%}", bar(g["share"]))
    if data.get("otherCount"):
        table.add_row("(other)", _fmt(data["otherCount"]), "", "")
    if data.get("missing"):
        table.add_row("(not set)", _fmt(data["missing"]), "", "")
    out.print(table)


def _render_unique(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    est = " ± " + _fmt(data["standardError"]) if data.get("approximate") else ""
    out.print(f"[bold]{_fmt(data['uniqueUsers'])}[/]{est} unique users  {_range_line(data)}")
    buckets = data.get("buckets")
    if not buckets:
        return
    out.print(sparkline([b["value"] for b in buckets], max(10, min(out.width - 10, 120))))
    if len(buckets) > TABLE_MAX_BUCKETS:
        console(stderr=True).print(f"{len(buckets)} buckets; use --json for every value")
        return
    peak = max(b["value"] for b in buckets) or 1
    table = Table()
    table.add_column("bucket")
    table.add_column("users", justify="right")
    table.add_column("")
    for b in buckets:
        table.add_row(_time(b["timestamp"]), _fmt(b["value"]), bar(b["value"] / peak))
    out.print(table)


def _render_top(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.print(f"top {data['property']}: {_fmt(data['withValue'])} of {_fmt(data['events'])} "
              f"events have it, {_fmt(data['distinct'])} distinct  {_range_line(data)}")
    table = Table()
    table.add_column("#", justify="right")
    table.add_column(data["property"], overflow="fold")
    table.add_column("count", justify="right")
    table.add_column("users", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    for i, v in enumerate(data["values"], 1):
        table.add_row(str(i), _fmt(v["value"]), _fmt(v["count"]), _fmt(v["uniqueUsers"]),
                      f"{v['share']:.1%}", bar(v["share"]))
    if data.get("otherCount"):
        table.add_row("", "(other)", _fmt(data["otherCount"]), "", "", "")
    out.print(table)


def register(query_app: typer.Typer) -> None:
    """Add these commands to `rta query`."""
    query_app.command("aggregate")(aggregate)
    query_app.command("count")(count)
    query_app.command("unique")(unique)
    query_app.command("top")(top)
