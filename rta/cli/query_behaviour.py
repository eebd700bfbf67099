"""`rta query funnel|cohort|abtest|segment`: behavioural queries against the daemon.

Steps and conditions use the compact CLI filter form: `--step 'click:category=products'`
is a step of type `click` with the filter category=products (join several filters with
`&`). Output: funnel bars, a retention heat table, an A/B verdict panel; `--json` prints the
API's answer unchanged.
"""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.choices import (
    FUNNEL_ORDERS,
    FUNNEL_UNITS,
    RETENTION_CRITERIA,
    RETENTION_TYPES,
    one_of,
    unit_of,
)
from rta.cli.output import EXIT_USAGE, JsonOption, ServerOption, call, emit, fail, get_client

SinceOption = typer.Option(None, "--since", help="Start: ms, ISO-8601, or 15m/24h/7d ago.")
UntilOption = typer.Option(None, "--until", help="End (inclusive): ms or ISO-8601.")
RangeOption = typer.Option(None, "--range", "-r",
                           help="Relative range: last_15m, last_24h, last_7d, today, ...")
SegmentOption = typer.Option(None, "--segment", help="Only users of this saved segment.")


def parse_where_list(items: list[str] | None) -> list[dict[str, Any]]:
    """CLI filter expressions ('plan=pro', 'n>3') as the API's predicate objects."""
    from rta.core.errors import ValidationError
    from rta.core.queries.filters import parse_cli_where, predicate_to_json

    try:
        return [predicate_to_json(parse_cli_where(w)) for w in items or [] if w.strip()]
    except ValidationError as exc:
        fail(exc.message, EXIT_USAGE)


def parse_event_spec(spec: str) -> dict[str, Any]:
    """'type' or 'type:filter&filter' as {"name", "eventType", "filters"}."""
    etype, _, rest = spec.partition(":")
    if not etype.strip():
        fail(f"cannot read {spec!r}: expected 'type' or 'type:key=value'", EXIT_USAGE)
    out: dict[str, Any] = {"name": spec, "eventType": etype.strip()}
    filters = parse_where_list(rest.split("&")) if rest else []
    if filters:
        out["filters"] = filters
    return out


def put_given(body: dict[str, Any], pairs: tuple[tuple[str, Any], ...]) -> None:
    """Set each (key, value) whose value was given: an omitted option leaves the API's
    default in force instead of sending null."""
    for key, value in pairs:
        if value is not None:
            body[key] = value


def _time(body: dict[str, Any], since: str | None, until: str | None,
          time_range: str | None) -> None:
    put_given(body, (("startTime", since), ("endTime", until), ("timeRange", time_range)))


def _post(server: str | None, path: str, body: dict[str, Any]) -> Any:
    with get_client(server) as client:
        return call(lambda: client.post(path, body))


def funnel(
    step: list[str] = typer.Option(..., "--step",
                                   help="A step: 'type' or 'type:key=value&key2>3' "
                                        "(repeat, 2 to 20, in order)."),
    window: str = typer.Option(None, "--window", "-W",
                               help="Conversion window from step 1: ms or 30m/1h/14d "
                                    "(default 14d)."),
    order: str = typer.Option(None, "--order", help="ordered (default), strict or any.",
                              callback=one_of(FUNNEL_ORDERS)),
    count_by: str = typer.Option(None, "--count-by", help="users (default), sessions or "
                                 "group:<type> (e.g. group:company).",
                                 callback=unit_of(FUNNEL_UNITS)),
    breakdown: str = typer.Option(None, "--breakdown", "-b",
                                  help="Split by this property (value at step 1)."),
    exclude: list[str] = typer.Option(None, "--exclude", "-x",
                                      help="Drop attempts with this event between two steps: "
                                           "'type:filters@from-to' (step indexes, "
                                           "default first to last)."),
    where: list[str] = typer.Option(None, "--where", "-w",
                                    help="Filter applied to every step (repeatable)."),
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    segment: str = SegmentOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Conversion through a sequence of steps, with drop-off and time to convert."""
    body: dict[str, Any] = {"steps": [parse_event_spec(s) for s in step]}
    if window is not None:
        body["timeLimit"] = window
    put_given(body, (("order", order), ("countBy", count_by), ("breakdown", breakdown),
                     ("segment", segment)))
    if where:
        body["where"] = parse_where_list(where)
    if exclude:
        body["exclusions"] = [_exclusion(x) for x in exclude]
    _time(body, since, until, time_range)
    emit(_post(server, "/queries/funnel", body), as_json, render_funnel)


def _exclusion(spec: str) -> dict[str, Any]:
    event, _, span = spec.partition("@")
    out = parse_event_spec(event)
    out.pop("name")
    if span:
        lo, _, hi = span.partition("-")
        try:
            out["fromStep"], out["toStep"] = int(lo), int(hi)
        except ValueError:
            fail(f"cannot read {spec!r}: expected 'type@from-to' with step indexes", EXIT_USAGE)
    return out


def cohort(
    entry: str = typer.Option(None, "--entry", "-e",
                              help="Event that puts a user in a cohort (or any event "
                                   "matching --entry-where when omitted)."),
    returning: str = typer.Option(None, "--return", "-R",
                                  help="Event that counts as coming back (default: --entry)."),
    periods: int = typer.Option(7, "--periods", "-p", help="Periods after period 0."),
    period: str = typer.Option("1d", "--period", help="Period length: ms or 1h/1d/1w."),
    retention_type: str = typer.Option(None, "--type",
                                       help="first_time (default) or recurring.",
                                       callback=one_of(RETENTION_TYPES)),
    criterion: str = typer.Option(None, "--criterion", help="on (default) or on_or_after.",
                                  callback=one_of(RETENTION_CRITERIA)),
    entry_where: list[str] = typer.Option(None, "--entry-where",
                                          help="Filter on the entry event (repeatable)."),
    breakdown: str = typer.Option(None, "--breakdown", "-b",
                                  help="Split by this property (value at the entry event)."),
    breakdown_limit: int = typer.Option(None, "--breakdown-limit",
                                        help="At most this many values (default 25)."),
    unit: str = typer.Option(None, "--unit", help="users (default) or group:<type> "
                             "(e.g. group:company: cohorts of groups).",
                             callback=unit_of(("users",))),
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    segment: str = SegmentOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Cohort retention: the share of each entry cohort that returns in later periods."""
    body: dict[str, Any] = {"periods": periods, "periodLength": period}
    if entry is not None or returning is not None:
        body.update(entryEvent=entry, retentionEvent=returning or entry)
    filters = parse_where_list(entry_where)
    if filters:
        body["entryFilters"] = filters
    if entry is None and not filters:
        fail("give --entry, or --entry-where for a cohort defined by filters", EXIT_USAGE)
    put_given(body, (("retentionType", retention_type), ("criterion", criterion),
                     ("segment", segment), ("breakdown", breakdown),
                     ("breakdownLimit", breakdown_limit), ("unit", unit)))
    _time(body, since, until, time_range)
    _align_cohort_start(body)
    emit(_post(server, "/queries/cohort", body), as_json, render_cohort)


def _align_cohort_start(body: dict[str, Any]) -> None:
    """Start a `--since`/`--range` grid at a period boundary (UTC midnight for days), as the
    default grid does: the API counts periods from the exact startTime it is given, so
    '--since 7d' made every cohort run from this time of day to the next. Values the CLI
    cannot read go to the daemon unchanged (it names the field at fault)."""
    if "startTime" not in body and "timeRange" not in body:
        return
    from rta.core.errors import RtaError
    from rta.core.queries.timeparse import now_ms, parse_duration, parse_time_range

    now = now_ms()
    try:
        length = parse_duration(body["periodLength"], "periodLength")
        start, end = parse_time_range(body.get("startTime"), body.get("endTime"), now,
                                      time_range=body.get("timeRange"))
    except RtaError:
        return
    if start is None:
        return
    body.pop("timeRange", None)
    body["startTime"] = start // length * length
    if end is not None:
        body["endTime"] = end - 1  # (inclusive, as requests give it)


def abtest(
    metric: str = typer.Option(..., "--metric", "-m", help="Conversion event."),
    assignment: str = typer.Option("experiment_assigned", "--assignment", "-a",
                                   help="Event that assigns a user to a variant."),
    variant_property: str = typer.Option("variant", "--variant-property",
                                         help="Property holding the variant."),
    metric_property: str = typer.Option(None, "--metric-property",
                                        help="Numeric property: mean per exposed user "
                                             "(Welch's t-test)."),
    control: str = typer.Option(None, "--control", help="Control variant (default control)."),
    min_sample: int = typer.Option(None, "--min-sample",
                                   help="Exposures needed per variant (default 100)."),
    confidence: float = typer.Option(None, "--confidence", help="Confidence level (0.95)."),
    where: list[str] = typer.Option(None, "--where", "-w",
                                    help="Filter on assignment events, e.g. experiment=btn."),
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    segment: str = SegmentOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """A/B test: conversion per variant, lift, significance and a verdict."""
    body: dict[str, Any] = {"eventType": assignment, "variantProperty": variant_property,
                            "metricEvent": metric}
    put_given(body, (("metricProperty", metric_property), ("control", control),
                     ("minimumSampleSize", min_sample), ("confidenceLevel", confidence),
                     ("segment", segment)))
    if where:
        body["filters"] = parse_where_list(where)
    _time(body, since, until, time_range)
    emit(_post(server, "/queries/abtest", body), as_json, render_abtest)


def segment_conditions(where: list[str] | None, performed: list[str] | None,
                       ) -> list[dict[str, Any]]:
    """--where (latest user property) and --performed ('type[:filters]') as conditions."""
    out: list[dict[str, Any]] = parse_where_list(where)
    for spec in performed or []:
        cond = parse_event_spec(spec)
        cond.pop("name")
        out.append(cond)
    return out


WhereSegOption = typer.Option(None, "--where", "-w",
                              help="Condition on each user's latest property value: "
                                   "'plan=premium' (repeatable).")
PerformedOption = typer.Option(None, "--performed", "-P",
                               help="Users who performed an event: 'type[:key=value]' "
                                    "(repeatable).")
AnyOption = typer.Option(False, "--any", help="Match any condition (OR) instead of all.")


def segment(
    where: list[str] = WhereSegOption,
    performed: list[str] = PerformedOption,
    any_: bool = AnyOption,
    name: str = typer.Option(None, "--name", help="Name to show (and to save with --save)."),
    save: bool = typer.Option(False, "--save", help="Also save it as a named segment."),
    sample: int = typer.Option(None, "--sample", "-n", help="User ids to list (default 20)."),
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Users matching conditions on their latest properties and on what they did."""
    config: dict[str, Any] = {"filters": segment_conditions(where, performed),
                              "operator": "OR" if any_ else "AND"}
    if name:
        config["name"] = name
    if sample is not None:
        config["sampleSize"] = sample
    _time(config, since, until, time_range)
    if save and not name:
        fail("--save needs --name", EXIT_USAGE)
    body = {"type": "segment", "name": name, "config": config, "save": save}
    emit(_post(server, "/queries/execute", body), as_json, render_segment)


# -- rendering ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    s = value / 1000
    if s < 1:
        return f"{value:.0f}ms"
    if s < 120:
        return f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.1f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def split_percent(part: float, rest: float) -> tuple[str, str]:
    """Two shares of one whole shown to one decimal so they still add up to 100.0 (rounded
    separately, 33.35 and 66.65 both round up: 33.4% + 66.7%)."""
    shown = round(part, 1)
    if abs(part + rest - 100) < 0.5:
        return f"{shown:.1f}%", f"{100 - shown:.1f}%"
    return f"{shown:.1f}%", f"{rest:.1f}%"


def render_funnel(data: dict[str, Any]) -> None:
    from rich.table import Table

    from rta.cli.output import console

    def table(title: str, steps: list[dict[str, Any]]) -> Table:
        tbl = Table(title=title, title_justify="left")
        for col, just in (("#", "right"), ("step", "left"), ("count", "right"),
                          ("", "left"), ("overall", "right"), ("from prev", "right"),
                          ("drop-off", "right"), ("median time", "right")):
            tbl.add_column(col, justify=just)  # type: ignore[arg-type]
        for i, s in enumerate(steps):
            width = round(30 * s["overallConversionRate"] / 100)
            conv, drop = split_percent(s["conversionRate"], s["dropoffRate"])
            tbl.add_row(str(i + 1), s["name"], f"{s['count']:,}",
                        "[green]" + "█" * width + "[/]" + "░" * (30 - width),
                        f"{s['overallConversionRate']:.1f}%", conv, drop,
                        _ms(s.get("medianTimeToConvert")))
        return tbl

    con = console()
    con.print(table(f"Funnel ({data.get('order', 'ordered')}, by {data.get('countBy', 'users')})"
                    f": {data['totalEntered']:,} entered, {data['totalCompleted']:,} completed "
                    f"({data['overallConversionRate']:.1f}%)", data["steps"]))
    for group in data.get("breakdown", []):
        con.print(table(f"{data.get('breakdownProperty')} = {group['value']}: "
                        f"{group['overallConversionRate']:.1f}%", group["steps"]))


_HEAT = ("grey19", "dark_green", "green4", "green3", "bright_green")


def _heat(p: float | None, running: bool = False) -> str:
    """A retention cell; one whose period is not over is marked `…` and not coloured (its
    0.0% an hour into the day means nothing yet)."""
    if p is None:
        return ""
    if running:
        return f"[dim] {p:5.1f}%…[/]"
    level = min(len(_HEAT) - 1, int(p / 100 * len(_HEAT)))
    fg = "black" if level >= 3 else "white"
    return f"[{fg} on {_HEAT[level]}] {p:5.1f}% [/]"


def render_cohort(data: dict[str, Any], now: int | None = None) -> None:
    from rich.table import Table

    from rta.cli.output import console

    width = data["periods"] + 1
    tbl = Table(title=f"Retention: {data['entryEvent'] or 'filtered events'} → "
                      f"{data['retentionEvent'] or 'any event'} "
                      f"({data['retentionType']}, {data['criterion']}, every "
                      f"{_ms(data['periodLength'])})", title_justify="left")
    tbl.add_column("cohort")
    tbl.add_column("users", justify="right")
    for n in range(width):
        tbl.add_column(f"P{n}", justify="right")
    from rta.core.queries.timeparse import now_ms

    now = now_ms() if now is None else now
    length = data["periodLength"]
    end = min(data["endTime"] + 1, now)  # periods ending after this are not over yet
    partial = False
    for c in data["cohorts"]:
        cells = []
        for n, p in enumerate(c["percentages"]):
            running = p is not None and c["startTime"] + (n + 1) * length > end
            partial |= running
            cells.append(_heat(p, running))
        tbl.add_row(c["date"][:16].replace("T", " "), f"{c['size']:,}", *cells)
    avg = data["average"]
    tbl.add_row("[bold]average[/]", f"{avg['size']:,}", *[_heat(p) for p in avg["percentages"]])
    for group in data.get("breakdown", []):  # each value's weighted average row
        g = group["average"]
        tbl.add_row(f"{data['breakdownProperty']} = {group['value']}", f"{g['size']:,}",
                    *[_heat(p) for p in g["percentages"]])
    console().print(tbl)
    if partial:
        console().print("[dim]…: the period is still in progress (or cut by the range's "
                        "end), so its share can still grow[/]")


def render_abtest(data: dict[str, Any]) -> None:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    from rta.cli.output import console

    tbl = Table(title_justify="left")
    for col in ("variant", "exposures", "conversions", "rate", "95% interval"):
        tbl.add_column(col, justify="left" if col == "variant" else "right")
    has_metric = bool(data.get("metricProperty"))
    if has_metric:
        tbl.add_column(f"mean {data['metricProperty']}", justify="right")
    for v in data["variants"]:
        ci = v["conversionInterval"]
        row = [v["name"] + (" (control)" if v["isControl"] else ""), f"{v['exposures']:,}",
               f"{v['conversions']:,}", f"{v['conversionRate']:.2f}%",
               "-" if ci is None else f"{ci[0]:.2f} - {ci[1]:.2f}%"]
        if has_metric:
            row.append(f"{v.get('metricMean', 0):.4g}")
        tbl.add_row(*row)
    comp = Table(title_justify="left")
    for col in ("variant", "lift", "lift interval", "p (adj.)", "P(beats control)", "verdict"):
        comp.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
    colours = {"significant": "green", "not_significant": "yellow",
               "insufficient_sample": "red"}
    for c in data["comparisons"]:
        li = c["liftInterval"]
        p = c["adjustedPValue"]
        comp.add_row(str(c["variant"]), "-" if c["lift"] is None else f"{c['lift']:+.2f}%",
                     "-" if li is None else f"{li[0]:+.1f}% … {li[1]:+.1f}%",
                     "-" if p is None else f"{p:.4f}",
                     f"{100 * c['probabilityToBeatControl']:.1f}%",
                     f"[{colours[c['verdict']]}]{c['verdict']}[/]")
    verdict = data["verdict"]
    lines = [f"[bold {colours[verdict]}]{verdict.replace('_', ' ').upper()}[/]"
             + (f" — winner: [bold]{data['winner']}[/]" if data.get("winner") else "")]
    srm = data["sampleRatioMismatch"]
    if srm["detected"]:
        lines.append(f"[red]sample ratio mismatch (p = {srm['pValue']:.2g}): check the "
                     "assignment before trusting the result[/]")
    if data.get("excludedUsers"):
        lines.append(f"{data['excludedUsers']} users saw several variants and were excluded")
    console().print(Panel(Group(*lines, tbl, comp),
                          title=str(data.get("name") or "A/B test"), expand=False))


def render_segment(data: dict[str, Any]) -> None:
    from rta.cli.output import console

    con = console()
    name = data.get("name") or "segment"
    con.print(f"[bold]{name}[/]: {data['userCount']:,} of {data['totalUsers']:,} users "
              f"({data['percentage']:.1f}%)")
    for user in data.get("sampleUsers", []):
        con.print(f"  {user}", markup=False, highlight=False)
    if data.get("segment"):
        from rta.cli.output import message

        message(f"saved as segment {data['segment']['id']}")


def register(query_app: typer.Typer) -> None:
    """Add these commands to `rta query`."""
    query_app.command("funnel")(funnel)
    query_app.command("cohort")(cohort)
    query_app.command("abtest")(abtest)
    query_app.command("segment")(segment)
